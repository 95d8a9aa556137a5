package edge

import (
	"fmt"
	"math"
	"net/http"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// The decoded-metadata cache. Every lookup, on every tier, gets an object's
// metadata from the store as bytes (meta.go's encoding). Rather than decode
// them on every hit, the edge keeps the decoded form here, by storage key,
// for as long as the store hands out the same bytes.

// cachedMeta is a decoded object metadata with its header serialised for the
// fast path; it is valid while the store returns the same metadata bytes.
type cachedMeta struct {
	raw  []byte
	m    *objMeta
	wire []byte // "Name: value\r\n" lines of the stored header, for clients
	date bool   // the stored header has a Date

	fresh atomic.Pointer[freshMemo] // the last Fresh decision for a plain request (decideFast, fastpath.go)
}

// metaCache holds decoded metadata by storage key. It is bounded in bytes
// (see metaWeight), and the store's OnEvict hook drops what the tiers
// evict, so it never keeps an evicted blob's metadata alive.
type metaCache struct {
	c *otter.Cache[string, *cachedMeta]
}

// metaCacheBytes is the bound of the decoded-metadata cache for a memory
// tier of memBytes: an eighth of it, from 1 MiB to 64 MiB (some 50,000
// typical objects; the pods' memory beyond the tier is a fixed 256 MiB).
func metaCacheBytes(memBytes int64) int64 { return min(max(memBytes/8, 1<<20), 64<<20) }

// metaWeight estimates what a decoded metadata costs beyond the store: its
// own copy of the key, the raw bytes (shared with the memory tier while the
// blob is there, not after), their decoded form (about as large again), the
// wire header and the structs.
func metaWeight(key string, cm *cachedMeta) uint32 {
	return uint32(min(int64(len(key))+2*int64(len(cm.raw))+int64(len(cm.wire))+256, math.MaxUint32))
}

func newMetaCache(maxBytes int64) *metaCache {
	c, err := otter.New(&otter.Options[string, *cachedMeta]{MaximumWeight: uint64(maxBytes), Weigher: metaWeight})
	if err != nil {
		// Only invalid options make otter.New fail; ours are valid by construction.
		panic(fmt.Sprintf("edge: metadata cache options: %v", err))
	}
	return &metaCache{c: c}
}

// get returns the decoded form of raw, the metadata stored under key. The
// result is shared: callers copy before they change it.
func (mc *metaCache) get(key string, raw []byte) (*cachedMeta, error) {
	if cm, ok := mc.c.GetIfPresent(key); ok && len(cm.raw) == len(raw) && len(raw) > 0 && &cm.raw[0] == &raw[0] {
		return cm, nil
	}
	m, err := decodeMeta(raw)
	if err != nil {
		return nil, err
	}
	cm := &cachedMeta{raw: raw, m: m}
	if !m.Marker {
		cm.wire, cm.date = wireHeader(m.Header)
	}
	mc.c.Set(key, cm)
	return cm, nil
}

// wireHeader serialises a stored header for a client as "Name: value\r\n"
// lines, leaving out the edge-only fields and those the fast path writes
// itself; date tells whether it has a Date.
func wireHeader(h http.Header) (w []byte, date bool) {
	for k, vs := range h {
		switch k {
		case "Surrogate-Control", "Surrogate-Key", "Cache-Tag", "Age", "Content-Length", "Accept-Ranges":
			continue
		case "Date":
			date = true
		}
		for _, v := range vs {
			w = append(w, k...)
			w = append(w, ": "...)
			w = append(w, v...)
			w = append(w, "\r\n"...)
		}
	}
	return w, date
}

func (mc *metaCache) forget(key string) { mc.c.Invalidate(key) }
