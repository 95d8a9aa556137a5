package edge

import (
	"context"
	"strings"
	"sync"
	"time"
)

// index remembers which stored objects exist per primary key and per tag, so
// a purge by prefix or tag does not read the store.
//
// It is bounded by the store: the store's OnEvict hook calls evicted, which
// forgets a storage key the moment no tier holds it, so the index never
// names more objects than the tiers hold. Its keys cost no bytes of their
// own: a primary key is kept as a substring of a storage key the store holds
// (the same bytes), so the tier's weight, which counts the key, counts it
// here too. A sweep (sweepIndex) remains as a backstop for a store without
// the hook.
type index struct {
	mu sync.Mutex
	// has reports whether the store still holds a storage key (the store's
	// Contains); nil means always.
	has  func(storageKey string) bool
	keys map[string]*indexEntry         // primary key -> its variants and tags
	tags map[string]map[string]struct{} // tag -> primary keys
}

// manyVariants is the number of variants from which an entry keeps a set
// beside its list, so adding a variant stays O(1) for an object that varies
// on a header with many values.
const manyVariants = 16

type indexEntry struct {
	variants []string            // storage keys (objKey) of each variant
	set      map[string]struct{} // variants as a set, once there are manyVariants
	tags     []string
}

func (e *indexEntry) hasVariant(sk string) bool {
	if e.set != nil {
		_, ok := e.set[sk]
		return ok
	}
	for _, v := range e.variants {
		if v == sk {
			return true
		}
	}
	return false
}

func (e *indexEntry) addVariant(sk string) {
	if e.hasVariant(sk) {
		return
	}
	e.variants = append(e.variants, sk)
	if e.set != nil {
		e.set[sk] = struct{}{}
	} else if len(e.variants) >= manyVariants {
		e.set = make(map[string]struct{}, len(e.variants))
		for _, v := range e.variants {
			e.set[v] = struct{}{}
		}
	}
}

// dropVariant removes sk and reports whether it was there.
func (e *indexEntry) dropVariant(sk string) bool {
	if !e.hasVariant(sk) {
		return false
	}
	for i, v := range e.variants {
		if v == sk {
			last := len(e.variants) - 1
			e.variants[i] = e.variants[last]
			e.variants[last] = ""
			e.variants = e.variants[:last]
			break
		}
	}
	if e.set != nil {
		delete(e.set, sk)
		if len(e.variants) < manyVariants/2 {
			e.set = nil
		}
	}
	return true
}

func newIndex(has func(storageKey string) bool) *index {
	return &index{has: has, keys: map[string]*indexEntry{}, tags: map[string]map[string]struct{}{}}
}

// primaryOfStorage returns the primary key inside an object's storage key
// as a substring of it, so it shares its bytes.
func primaryOfStorage(storageKey string) (string, bool) {
	vk, ok := variantOf(storageKey)
	if !ok {
		return "", false
	}
	return primaryOf(vk), true
}

// add records that the store holds storageKey, a variant of pk, with tags.
// Call it after the store's Put: if the blob is already gone (refused on
// admission, evicted meanwhile), add forgets it again, so an eviction
// reported before the add cannot leave it behind.
func (x *index) add(pk, storageKey string, tags []string) {
	if p, ok := primaryOfStorage(storageKey); ok && p == pk {
		pk = p // the store's bytes, not a copy
	}
	x.mu.Lock()
	e := x.keys[pk]
	if e == nil {
		e = &indexEntry{}
		x.keys[pk] = e
	}
	e.addVariant(storageKey)
	for _, t := range tags {
		ks := x.tags[t]
		if ks == nil {
			ks = map[string]struct{}{}
			x.tags[t] = ks
		}
		ks[pk] = struct{}{}
		if !containsString(e.tags, t) {
			e.tags = append(e.tags, t)
		}
	}
	x.mu.Unlock()
	if x.has != nil && !x.has(storageKey) {
		x.evicted(storageKey)
	}
}

// evicted forgets storageKey if the store no longer holds it, and reports
// whether that left its primary key with no variant (forgotten). The check
// is made under the lock: a Put of the key that the check missed is
// followed by its add, which then comes after this removal.
func (x *index) evicted(storageKey string) (forgotten bool) {
	pk, ok := primaryOfStorage(storageKey)
	if !ok {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.keys[pk]
	if e == nil || !e.hasVariant(storageKey) || (x.has != nil && x.has(storageKey)) {
		return false
	}
	e.dropVariant(storageKey)
	if len(e.variants) > 0 {
		return false
	}
	x.forgetLocked(pk, e)
	return true
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// remove forgets pk and returns its storage keys.
func (x *index) remove(pk string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.keys[pk]
	if e == nil {
		return nil
	}
	x.forgetLocked(pk, e)
	return append([]string(nil), e.variants...)
}

func (x *index) forgetLocked(pk string, e *indexEntry) {
	delete(x.keys, pk)
	for _, t := range e.tags {
		if ks := x.tags[t]; ks != nil {
			delete(ks, pk)
			if len(ks) == 0 {
				delete(x.tags, t)
			}
		}
	}
}

// variants returns the storage keys of pk without forgetting them.
func (x *index) variants(pk string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.keys[pk]
	if e == nil {
		return nil
	}
	return append([]string(nil), e.variants...)
}

// sample returns up to n primary keys, from wherever map iteration starts.
func (x *index) sample(n int) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, min(n, len(x.keys)))
	for k := range x.keys {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}

func (x *index) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.keys)
}

// match returns the primary keys selected by a purge: exact keys, keys with
// one of the prefixes, and keys tagged with one of the tags. forget drops
// the tags from the index (a hard purge); a soft purge keeps them, so a
// later purge by the same tag still finds the objects.
func (x *index) match(keys, prefixes, tags []string, forget bool) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := map[string]struct{}{}
	for _, k := range keys {
		if _, ok := x.keys[k]; ok {
			seen[k] = struct{}{}
		}
	}
	if len(prefixes) > 0 {
		for k := range x.keys {
			for _, p := range prefixes {
				if strings.HasPrefix(k, p) {
					seen[k] = struct{}{}
					break
				}
			}
		}
	}
	for _, t := range tags {
		for k := range x.tags[t] {
			seen[k] = struct{}{}
		}
		if forget {
			delete(x.tags, t)
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	return out
}

// sweepIndex forgets, a batch at a time, the storage keys the store no
// longer holds, until ctx ends. With the store's OnEvict hook (the edge's
// own tiers) nothing is left for it; it covers a store given through
// Options.Store.
func (s *Server) sweepIndex(ctx context.Context, every time.Duration, batch int) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweepOnce(batch)
		}
	}
}

func (s *Server) sweepOnce(batch int) (forgotten int) {
	for _, pk := range s.index.sample(batch) {
		for _, sk := range s.index.variants(pk) {
			if !s.store.Contains(sk) && s.index.evicted(sk) {
				forgotten++
			}
		}
	}
	return forgotten
}

// tagsOf parses the purge tags of a response: Surrogate-Key is a list
// separated by spaces, Cache-Tag a list separated by commas.
func tagsOf(surrogateKey, cacheTag []string) []string {
	var out []string
	for _, v := range surrogateKey {
		out = append(out, strings.Fields(v)...)
	}
	for _, v := range cacheTag {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}
