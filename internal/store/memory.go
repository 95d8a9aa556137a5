package store

import (
	"fmt"
	"math"

	"github.com/maypok86/otter/v2"
)

// memItemOverhead estimates the bytes an item costs beyond its key, meta and
// body: otter's node, the item struct, slice and string headers.
const memItemOverhead = 160

type memItem struct {
	meta []byte
	body []byte
}

func memWeight(key string, meta, body []byte) int64 {
	return int64(len(key)) + int64(len(meta)) + int64(len(body)) + memItemOverhead
}

// Memory is the memory tier: blobs bounded in total bytes, admitted and
// evicted by otter (W-TinyLFU) with a byte weigher.
type Memory struct {
	cache    *otter.Cache[string, *memItem]
	maxBytes int64
	maxItem  int64
}

// MemoryOptions configures NewMemoryWith.
type MemoryOptions struct {
	// MaxBytes bounds the tier: key, meta, body and an overhead estimate
	// per item. If zero or negative the tier keeps nothing.
	MaxBytes int64
	// MaxItem is the largest weight of a blob the tier keeps. If zero,
	// MaxBytes/8.
	MaxItem int64
	// OnEvict, if set, is called with the key of each blob that leaves the
	// tier other than by being replaced: evicted by the bound, refused on
	// admission, deleted or invalidated. It runs on a goroutine of its own,
	// after the blob is gone, so a Put of the same key may already have
	// stored it again: ask Contains. Callers keep their own per-key state
	// (indexes, decoded copies) bounded by the tier this way.
	OnEvict func(key string)
}

// NewMemory returns a memory tier holding at most maxBytes (key, meta, body
// and an overhead estimate per item). Blobs weighing more than maxItem are not
// kept; if maxItem is zero, it defaults to maxBytes/8. If maxBytes is zero or
// negative the tier keeps nothing.
func NewMemory(maxBytes, maxItem int64) *Memory {
	return NewMemoryWith(MemoryOptions{MaxBytes: maxBytes, MaxItem: maxItem})
}

// NewMemoryWith returns a memory tier configured by opt.
func NewMemoryWith(opt MemoryOptions) *Memory {
	maxBytes, maxItem := opt.MaxBytes, opt.MaxItem
	if maxItem <= 0 {
		maxItem = maxBytes / 8
	}
	maxItem = min(maxItem, maxBytes, math.MaxUint32)
	m := &Memory{maxBytes: maxBytes, maxItem: maxItem}
	if maxBytes <= 0 {
		return m
	}
	o := &otter.Options[string, *memItem]{
		MaximumWeight: uint64(maxBytes),
		Weigher: func(key string, v *memItem) uint32 {
			return uint32(min(memWeight(key, v.meta, v.body), math.MaxUint32))
		},
	}
	if onEvict := opt.OnEvict; onEvict != nil {
		o.OnDeletion = func(e otter.DeletionEvent[string, *memItem]) {
			if e.Cause != otter.CauseReplacement {
				onEvict(e.Key)
			}
		}
	}
	c, err := otter.New(o)
	if err != nil {
		// Only invalid options make otter.New fail; ours are valid by construction.
		panic(fmt.Sprintf("store: otter options: %v", err))
	}
	m.cache = c
	return m
}

// MaxItem returns the largest weight of a blob the tier keeps.
func (m *Memory) MaxItem() int64 { return m.maxItem }

// fits reports whether a blob of this shape may be kept.
func (m *Memory) fits(key string, meta, body []byte) bool {
	return m.cache != nil && memWeight(key, meta, body) <= m.maxItem
}

// Get implements Store.
func (m *Memory) Get(key string) (*Entry, bool) {
	if m.cache == nil {
		return nil, false
	}
	it, ok := m.cache.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	return newMemEntry(TierMemory, it.meta, it.body), true
}

// Put implements Store. A blob too large for the tier is not kept, and any
// older blob under key is removed.
func (m *Memory) Put(key string, meta, body []byte) error {
	if err := checkSizes(key, meta); err != nil {
		return err
	}
	if m.cache == nil {
		return nil
	}
	if !m.fits(key, meta, body) {
		m.cache.Invalidate(key)
		return nil
	}
	m.cache.Set(key, &memItem{meta: meta, body: body})
	return nil
}

// UpdateMeta implements Store.
func (m *Memory) UpdateMeta(key string, meta []byte) error {
	if err := checkSizes(key, meta); err != nil {
		return err
	}
	if m.cache == nil {
		return ErrNotFound
	}
	found := false
	m.cache.ComputeIfPresent(key, func(old *memItem) (*memItem, otter.ComputeOp) {
		found = true
		if !m.fits(key, meta, old.body) {
			return nil, otter.InvalidateOp
		}
		// A new item, never a write into old: readers may hold old.meta.
		return &memItem{meta: meta, body: old.body}, otter.WriteOp
	})
	if !found {
		return ErrNotFound
	}
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(key string) bool {
	if m.cache == nil {
		return false
	}
	_, ok := m.cache.Invalidate(key)
	return ok
}

// Contains implements Store.
func (m *Memory) Contains(key string) bool {
	if m.cache == nil {
		return false
	}
	_, ok := m.cache.GetEntryQuietly(key)
	return ok
}

// Scan implements Store.
func (m *Memory) Scan(fn func(key string, meta []byte) bool) error {
	if m.cache == nil {
		return nil
	}
	for k, v := range m.cache.All() {
		if !fn(k, v.meta) {
			break
		}
	}
	return nil
}

// Stats implements Store. It first runs otter's pending maintenance, so the
// sizes reported respect the bound.
func (m *Memory) Stats() Stats {
	if m.cache == nil {
		return Stats{}
	}
	m.cache.CleanUp()
	return Stats{
		MemoryBytes: int64(m.cache.WeightedSize()),
		MemoryItems: int64(m.cache.EstimatedSize()),
	}
}

// Close implements Store. It drops every blob.
func (m *Memory) Close() error {
	if m.cache == nil {
		return nil
	}
	m.cache.InvalidateAll()
	m.cache.StopAllGoroutines()
	return nil
}
