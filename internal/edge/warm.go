package edge

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

// Warming (POST adminapi.WarmPath): before a new region enters DNS, the
// autoscaler gives its edges the URLs its users asked for most elsewhere,
// and each edge fetches them as if a client had asked: through the handler
// (the normal miss path: owner peer, parent, origin; an object that may not
// be stored stays unstored), with no client connection and outside the
// counters, since warming is not demand.
const (
	maxWarmURLs    = 1000
	warmConcurrent = 8
)

// handleWarm serves POST adminapi.WarmPath.
func (s *Server) handleWarm(w http.ResponseWriter, r *http.Request) {
	if !s.authorizedOr401(w, r) {
		return
	}
	var req adminapi.WarmRequest
	if err := decodeJSON(r, 4<<20, &req); err != nil {
		http.Error(w, "bad warm request: "+err.Error(), http.StatusBadRequest)
		return
	}
	urls, err := s.warmURLs(req.URLs)
	if err != nil {
		http.Error(w, "bad warm request: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, s.Warm(r.Context(), urls))
}

// warmURLs checks a warm request's URLs: absolute http(s) URLs, at most
// maxWarmURLs, each for one of the edge's hostnames (the edge is no open
// proxy for warming either). An error names every URL refused.
func (s *Server) warmURLs(raw []string) ([]*url.URL, error) {
	if len(raw) > maxWarmURLs {
		return nil, fmt.Errorf("%d urls: at most %d per request", len(raw), maxWarmURLs)
	}
	rt := s.rt.Load()
	var out []*url.URL
	var bad, foreign []string
	for _, v := range raw {
		u, err := url.Parse(v)
		switch {
		case err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil:
			bad = append(bad, v)
		case len(rt.hosts) > 0 && !rt.hosts[hostOnly(u.Host)]:
			foreign = append(foreign, v)
		default:
			if u.Path == "" {
				u.Path = "/"
			}
			out = append(out, u)
		}
	}
	var msgs []string
	if len(bad) > 0 {
		msgs = append(msgs, "not absolute http(s) URLs: "+strings.Join(bad, ", "))
	}
	if len(foreign) > 0 {
		msgs = append(msgs, "not for this edge's hostnames: "+strings.Join(foreign, ", "))
	}
	if len(msgs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return out, nil
}

// Warm fetches urls into the cache, warmConcurrent at a time, until done
// or ctx ends (the URLs not reached then count as failed). An URL counts
// as fetched when the cache holds its object afterwards (a hit, or a miss
// the edge stored); Bytes are the bytes the warming stored.
func (s *Server) Warm(ctx context.Context, urls []*url.URL) adminapi.WarmResult {
	var mu sync.Mutex
	var res adminapi.WarmResult
	next := make(chan *url.URL)
	var wg sync.WaitGroup
	for range min(warmConcurrent, len(urls)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				stored, n := s.warmOne(ctx, u)
				mu.Lock()
				if stored {
					res.Fetched++
					res.Bytes += n
				} else {
					res.Failed++
				}
				mu.Unlock()
			}
		}()
	}
	sent := 0
feed:
	for _, u := range urls {
		select {
		case next <- u:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	res.Failed += len(urls) - sent
	return res
}

// warmOne serves a GET of u through the handler into a discarding writer.
// stored: the cache holds the object now; n: the body bytes the warming
// stored (0 for a hit).
func (s *Server) warmOne(ctx context.Context, u *url.URL) (stored bool, n int64) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, 0
	}
	r.RequestURI, r.Host = u.RequestURI(), u.Host
	if u.Scheme == "https" {
		r.TLS = &tls.ConnectionState{} // keyed and served as an https request
	}
	w := &warmWriter{h: http.Header{}}
	s.ServeHTTP(w, r)
	if ctx.Err() != nil || w.status != http.StatusOK {
		return false, 0
	}
	switch hit, fresh := cacheHeld(w.h); {
	case hit:
		return true, 0
	case fresh:
		return true, w.n
	}
	return false, 0
}

// cacheHeld reads the edge's own Cache-Status member (the last) of a
// response's header h: served from the cache (hit), or fetched and stored.
func cacheHeld(h http.Header) (hit, stored bool) {
	v := h["Cache-Status"]
	if len(v) == 0 {
		return false, false
	}
	for i, p := range strings.Split(v[len(v)-1], ";") {
		switch p = strings.TrimSpace(p); {
		case i == 0: // the cache's name
		case p == "hit":
			hit = true
		case p == "stored":
			stored = true
		}
	}
	return hit, stored
}

// warmWriter is the ResponseWriter of a warming request: it keeps the
// status and header and counts the body it drops.
type warmWriter struct {
	h      http.Header
	status int
	n      int64
}

func (w *warmWriter) Header() http.Header { return w.h }

func (w *warmWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *warmWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += int64(len(p))
	return len(p), nil
}
