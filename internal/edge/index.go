package edge

import (
	"strings"
	"sync"
)

// index remembers which stored objects exist per primary key and per tag, so
// a purge by prefix or tag does not read the store. It may name objects the
// store has since evicted; a purge of those is a no-op.
type index struct {
	mu   sync.Mutex
	keys map[string]map[string]struct{} // primary key -> storage keys ("o:..." of each variant)
	tags map[string]map[string]struct{} // tag -> primary keys
}

func newIndex() *index {
	return &index{keys: map[string]map[string]struct{}{}, tags: map[string]map[string]struct{}{}}
}

func (x *index) add(pk, storageKey string, tags []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	vs := x.keys[pk]
	if vs == nil {
		vs = map[string]struct{}{}
		x.keys[pk] = vs
	}
	vs[storageKey] = struct{}{}
	for _, t := range tags {
		ks := x.tags[t]
		if ks == nil {
			ks = map[string]struct{}{}
			x.tags[t] = ks
		}
		ks[pk] = struct{}{}
	}
}

// remove forgets pk and returns its storage keys.
func (x *index) remove(pk string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	vs := x.keys[pk]
	delete(x.keys, pk)
	out := make([]string, 0, len(vs))
	for k := range vs {
		out = append(out, k)
	}
	return out
}

// variants returns the storage keys of pk without forgetting them.
func (x *index) variants(pk string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.keys[pk]))
	for k := range x.keys[pk] {
		out = append(out, k)
	}
	return out
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
