package store

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync/atomic"
)

const numVersionStripes = 256

// Tiered puts the memory tier in front of the disk tier.
type Tiered struct {
	mem  *Memory
	disk *Disk
	seed maphash.Seed
	// versions counts the changes (Put, Delete, UpdateMeta) started and
	// finished on the keys of each stripe. A blob read from disk is promoted
	// only if no change was in flight when the read began and none started
	// since: a purge must not be undone by a read that was in flight.
	versions [numVersionStripes]version
}

type version struct {
	started, finished atomic.Uint64
}

// NewTiered returns memory in front of disk. disk may be nil (memory only);
// mem may be nil (disk only).
func NewTiered(mem *Memory, disk *Disk) *Tiered {
	if mem == nil {
		mem = NewMemory(0, 0)
	}
	return &Tiered{mem: mem, disk: disk, seed: maphash.MakeSeed()}
}

func (t *Tiered) version(key string) *version {
	return &t.versions[maphash.String(t.seed, key)%numVersionStripes]
}

// change marks the start of a change of key; call the result at its end.
func (t *Tiered) change(key string) func() {
	v := t.version(key)
	v.started.Add(1)
	return func() { v.finished.Add(1) }
}

// Get implements Store: memory first, then disk. A disk hit whose blob fits
// the memory tier's item limit is promoted into memory and returned from
// memory.
func (t *Tiered) Get(key string) (*Entry, bool) {
	if e, ok := t.mem.Get(key); ok {
		return e, true
	}
	if t.disk == nil {
		return nil, false
	}
	ver := t.version(key)
	started := ver.started.Load()
	quiet := ver.finished.Load() == started
	e, ok := t.disk.Get(key)
	if !ok {
		return nil, false
	}
	if !quiet || t.mem.cache == nil || memWeight(key, e.meta, nil)+e.Len() > t.mem.maxItem {
		return e, true
	}
	body := e.Body()
	if body == nil {
		buf := make([]byte, e.Len())
		if _, err := e.ReadAt(buf, 0); err != nil {
			return e, true // serve from the file; no promotion
		}
		body = buf
	}
	meta := e.meta
	t.mem.cache.ComputeIfAbsent(key, func() (*memItem, bool) {
		if ver.started.Load() != started {
			return nil, true // changed meanwhile: do not resurrect an old version
		}
		return &memItem{meta: meta, body: body}, false
	})
	if e.file {
		e.Close()
		return newMemEntry(TierDisk, meta, body), true
	}
	return e, true
}

// Put implements Store: memory (if the blob fits) and disk.
func (t *Tiered) Put(key string, meta, body []byte) error {
	if err := checkSizes(key, meta); err != nil {
		return err
	}
	defer t.change(key)()
	if err := t.mem.Put(key, meta, body); err != nil {
		return err
	}
	if t.disk == nil {
		return nil
	}
	return t.disk.Put(key, meta, body)
}

// UpdateMeta implements Store: both tiers. If the disk tier fails, the blob
// is deleted from both so no tier keeps the old meta.
func (t *Tiered) UpdateMeta(key string, meta []byte) error {
	if err := checkSizes(key, meta); err != nil {
		return err
	}
	defer t.change(key)()
	errMem := t.mem.UpdateMeta(key, meta)
	if t.disk == nil {
		return errMem
	}
	errDisk := t.disk.UpdateMeta(key, meta)
	switch {
	case errDisk != nil && !errors.Is(errDisk, ErrNotFound):
		t.Delete(key)
		return errDisk
	case errMem == nil || errDisk == nil:
		return nil
	}
	return ErrNotFound
}

// Delete implements Store: both tiers.
func (t *Tiered) Delete(key string) bool {
	defer t.change(key)()
	inMem := t.mem.Delete(key)
	onDisk := t.disk != nil && t.disk.Delete(key)
	return inMem || onDisk
}

// Contains implements Store: either tier.
func (t *Tiered) Contains(key string) bool {
	return t.mem.Contains(key) || (t.disk != nil && t.disk.Contains(key))
}

// Scan implements Store: the disk tier if there is one (it holds every blob
// the memory tier holds, except writes it dropped), else the memory tier.
func (t *Tiered) Scan(fn func(key string, meta []byte) bool) error {
	if t.disk != nil {
		return t.disk.Scan(fn)
	}
	return t.mem.Scan(fn)
}

// Stats implements Store.
func (t *Tiered) Stats() Stats {
	s := t.mem.Stats()
	if t.disk != nil {
		d := t.disk.Stats()
		s.DiskBytes, s.DiskItems = d.DiskBytes, d.DiskItems
		s.DiskWriteDrops, s.CorruptFiles, s.DiskWriteErrors = d.DiskWriteDrops, d.CorruptFiles, d.DiskWriteErrors
	}
	return s
}

// Close implements Store: both tiers.
func (t *Tiered) Close() error {
	err := t.mem.Close()
	if t.disk != nil {
		if derr := t.disk.Close(); derr != nil {
			err = errors.Join(err, fmt.Errorf("store: closing disk tier: %w", derr))
		}
	}
	return err
}

// Memory returns the memory tier.
func (t *Tiered) Memory() *Memory { return t.mem }

// Disk returns the disk tier, or nil.
func (t *Tiered) Disk() *Disk { return t.disk }
