package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// handlePurge serves POST adminapi.PurgePath on the admin listener: an
// adminapi.PurgeRequest in, an adminapi.PurgeResponse out.
func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request) {
	if !s.authorizedOr401(w, r) {
		return
	}
	var req adminapi.PurgeRequest
	if err := decodeJSON(r, 4<<20, &req); err != nil {
		http.Error(w, "bad purge request: "+err.Error(), http.StatusBadRequest)
		return
	}
	keys, prefixes, err := purgeKeys(req)
	if err != nil {
		http.Error(w, "bad purge request: "+err.Error(), http.StatusBadRequest)
		return
	}
	n := s.Purge(keys, prefixes, req.Tags, req.Soft)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(adminapi.PurgeResponse{Purged: n})
}

// purgeKeys turns the URLs and prefixes of a purge into cache keys, for
// both schemes (a user purges a URL, not a URL per scheme).
func purgeKeys(req adminapi.PurgeRequest) (keys, prefixes []string, err error) {
	if len(req.URLs)+len(req.Prefixes)+len(req.Tags) == 0 {
		return nil, nil, fmt.Errorf("nothing to purge: give urls, prefixes or tags")
	}
	conv := func(field string, i int, raw string) ([]string, error) {
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("%s[%d]: %q is not an absolute http(s) URL", field, i, raw)
		}
		uri := u.RequestURI()
		if field == "prefixes" && u.Path == "" && u.RawQuery == "" {
			uri = "/"
		}
		return []string{httpcache.Key("http", u.Host, uri), httpcache.Key("https", u.Host, uri)}, nil
	}
	for i, raw := range req.URLs {
		k, err := conv("urls", i, raw)
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k...)
	}
	for i, raw := range req.Prefixes {
		k, err := conv("prefixes", i, raw)
		if err != nil {
			return nil, nil, err
		}
		prefixes = append(prefixes, k...)
	}
	for i, t := range req.Tags {
		if strings.TrimSpace(t) == "" {
			return nil, nil, fmt.Errorf("tags[%d]: empty tag", i)
		}
	}
	return keys, prefixes, nil
}

// Purge removes (or, soft, marks stale) the objects with the given primary
// keys, key prefixes and tags, and returns how many it touched.
func (s *Server) Purge(keys, prefixes, tags []string, soft bool) int {
	pks := s.index.match(keys, prefixes, tags, !soft)
	seen := map[string]bool{}
	for _, k := range pks {
		seen[k] = true
	}
	for _, k := range keys {
		if !seen[k] {
			pks = append(pks, k)
		}
	}
	n := 0
	for _, pk := range pks {
		n += s.purgeKey(pk, soft)
	}
	s.metrics.purged.Add(float64(n))
	return n
}

// purgeKey purges every variant of one primary key.
func (s *Server) purgeKey(pk string, soft bool) int {
	// Fills in flight for the key must not store what they fetched before
	// the purge, and new requests must not join them.
	s.mu.Lock()
	for k, f := range s.fills {
		if vk, _ := variantOf(k); variantOfPrimary(vk, pk) {
			f.purged.Store(true)
			delete(s.fills, k)
		}
	}
	for vk, fs := range s.bodies {
		if variantOfPrimary(vk, pk) {
			for _, f := range fs {
				f.purged.Store(true)
			}
			delete(s.bodies, vk)
		}
	}
	s.mu.Unlock()
	var skeys []string
	if soft {
		skeys = s.index.variants(pk)
	} else {
		skeys = s.index.remove(pk)
	}
	skeys = append(skeys, objKey(pk))
	n := 0
	done := map[string]bool{}
	for _, sk := range skeys {
		if done[sk] {
			continue
		}
		done[sk] = true
		if !soft {
			if s.deleteObject(sk) {
				n++
			}
			continue
		}
		m, e := s.getMeta(sk)
		if m == nil {
			continue
		}
		e.Close()
		if m.Marker {
			continue
		}
		inv := *m // m is shared with the metadata cache
		inv.Invalidated = true
		if s.store.UpdateMeta(sk, inv.encode()) == nil {
			n++
		}
	}
	return n
}
