package edge

import (
	"context"
	"strings"
	"sync"
	"time"
)

// index remembers which stored objects exist per primary key and per tag, so
// a purge by prefix or tag does not read the store. The store evicts on its
// own, so the index may name objects that are gone: a purge of those is a
// no-op, and a sweep forgets them (see sweepIndex) so the index does not
// grow with every URL ever seen.
type index struct {
	mu   sync.Mutex
	keys map[string]*indexEntry         // primary key -> its variants and tags
	tags map[string]map[string]struct{} // tag -> primary keys
}

type indexEntry struct {
	variants map[string]struct{} // storage keys ("o:...") of each variant
	tags     []string
}

func newIndex() *index {
	return &index{keys: map[string]*indexEntry{}, tags: map[string]map[string]struct{}{}}
}

func (x *index) add(pk, storageKey string, tags []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.keys[pk]
	if e == nil {
		e = &indexEntry{variants: map[string]struct{}{}}
		x.keys[pk] = e
	}
	e.variants[storageKey] = struct{}{}
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
	delete(x.keys, pk)
	for _, t := range e.tags {
		if ks := x.tags[t]; ks != nil {
			delete(ks, pk)
			if len(ks) == 0 {
				delete(x.tags, t)
			}
		}
	}
	out := make([]string, 0, len(e.variants))
	for k := range e.variants {
		out = append(out, k)
	}
	return out
}

// variants returns the storage keys of pk without forgetting them.
func (x *index) variants(pk string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.keys[pk]
	if e == nil {
		return nil
	}
	out := make([]string, 0, len(e.variants))
	for k := range e.variants {
		out = append(out, k)
	}
	return out
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

// sweepIndex forgets, a batch at a time, the primary keys none of whose
// variants the store still holds, until ctx ends.
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
		alive := false
		for _, sk := range s.index.variants(pk) {
			if e, ok := s.store.Get(sk); ok {
				e.Close()
				alive = true
				break
			}
		}
		if !alive {
			s.index.remove(pk)
			forgotten++
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
