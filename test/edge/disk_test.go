package edge_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

// contentOrigin serves content(path, sizeOf(path, max)) for every path,
// cacheable for an hour, with an ETag, and Range support.
func contentOrigin(t *testing.T, max int) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body := content(r.URL.Path, sizeOf(r.URL.Path, max))
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", strconv.Quote(fmt.Sprintf("%x", body[:8])))
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
}

// TestRestartKeepsDiskTier fetches objects (small ones and sliced ones),
// stops the edge with SIGTERM, stops the origin, starts the edge again on the
// same cache directory: every object is still served, as a hit, byte for
// byte.
func TestRestartKeepsDiskTier(t *testing.T) {
	const host = "www.example.com"
	o := contentOrigin(t, 3<<20)
	dir := t.TempDir()
	args := []string{"--hostname", host, "--slice", "256KiB", "--memory", "64MiB", "--disk", "1GiB"}
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL, CacheDir: dir, Args: args})
	c := newClient()
	var paths []string
	for i := range 20 {
		paths = append(paths, fmt.Sprintf("/restart/%d", i))
	}
	for _, p := range paths {
		r := get(t, c, e.URL(), p, host)
		if r.status != 200 || !bytes.Equal(r.body, content(p, sizeOf(p, 3<<20))) {
			t.Fatalf("%s: first fetch: %d, %d bytes", p, r.status, len(r.body))
		}
	}
	if err := e.Stop(15 * time.Second); err != nil {
		t.Fatalf("SIGTERM: exit %v, want 0", err)
	}
	o.Close()
	before := len(o.requests(""))

	e2 := kubecdn.Start(t, edgetest.Options{Origin: o.URL, CacheDir: dir, Args: args})
	for _, p := range paths {
		r := get(t, c, e2.URL(), p, host)
		if r.status != 200 || r.err != nil {
			t.Errorf("%s after restart: status %d, err %v, Cache-Status %q", p, r.status, r.err, r.cacheStatus())
			continue
		}
		if !bytes.Equal(r.body, content(p, sizeOf(p, 3<<20))) {
			t.Errorf("%s after restart: wrong bytes (%d bytes)", p, len(r.body))
		}
		if !r.hit() {
			t.Errorf("%s after restart: not a hit: %q", p, r.cacheStatus())
		}
	}
	if n := len(o.requests("")); n != before {
		t.Errorf("the stopped origin was asked %d times", n-before)
	}
	// A range inside a sliced object, from disk.
	p := paths[0]
	want := content(p, sizeOf(p, 3<<20))
	r := get(t, c, e2.URL(), p, host, "Range", "bytes=1000-1999")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, want[1000:2000]) {
		t.Errorf("range after restart: %d, %d bytes", r.status, len(r.body))
	}
	// The purge index is rebuilt from the disk tier: /restart/1 and
	// /restart/10../restart/19 share a prefix.
	if n := purgeOK(t, e2, `{"prefixes":["http://www.example.com/restart/1"]}`); n != 11 {
		t.Errorf("prefix purge after restart: purged %d, want 11", n)
	}
	if r := get(t, c, e2.URL(), "/restart/15", host); r.status == 200 && r.hit() {
		t.Errorf("/restart/15 still a hit after its purge")
	}
	if r := get(t, c, e2.URL(), "/restart/2", host); !r.hit() {
		t.Errorf("/restart/2 not a hit after purging another prefix: %q", r.cacheStatus())
	}
}

// TestCrashSafety SIGKILLs the edge over and over while it stores many
// distinct objects, then checks that whatever it serves from its cache
// directory is byte-identical to the origin's content: a torn or truncated
// file is never served.
func TestCrashSafety(t *testing.T) {
	const host = "www.example.com"
	const max = 512 << 10
	o := contentOrigin(t, max)
	dir := t.TempDir()
	args := []string{"--hostname", host, "--slice", "64KiB", "--memory", "8MiB", "--disk", "1GiB"}
	rng := rand.New(rand.NewPCG(7, 8))
	var (
		mu    sync.Mutex
		paths []string
	)
	for round := range 5 {
		e := kubecdn.Start(t, edgetest.Options{Origin: o.URL, CacheDir: dir, Args: args})
		c := newClient()
		var next atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					p := fmt.Sprintf("/crash/%d/%d", round, next.Add(1))
					mu.Lock()
					paths = append(paths, p)
					mu.Unlock()
					req, _ := http.NewRequest(http.MethodGet, e.URL()+p, nil)
					req.Host = host
					resp, err := c.Do(req)
					if err != nil {
						continue // the edge was killed
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		time.Sleep(time.Duration(150+rng.IntN(350)) * time.Millisecond)
		e.Kill()
		close(stop)
		wg.Wait()
	}
	t.Logf("%d objects requested over 5 killed runs", len(paths))

	check := func(e *edgetest.Edge, originUp bool) (hits int) {
		c := newClient()
		for _, p := range paths {
			req, _ := http.NewRequest(http.MethodGet, e.URL()+p, nil)
			req.Host = host
			resp, err := c.Do(req)
			if err != nil {
				// With the origin down, a sliced object whose slices were
				// never stored cannot be finished: the edge aborts the
				// connection (before or after the header). Not corrupt.
				if originUp || !e.Alive() {
					t.Errorf("%s: request failed: %v", p, err)
				}
				continue
			}
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			res := result{status: resp.StatusCode, header: resp.Header, body: body, err: rerr}
			if res.hit() {
				hits++
			}
			switch {
			case resp.StatusCode != 200 && originUp:
				t.Errorf("%s (origin up): status %d", p, resp.StatusCode)
			case resp.StatusCode != 200:
				// Not cached and the origin is down: fine.
			case rerr != nil:
				// A truncated transfer is detectable by the client; with
				// the origin up it must not happen.
				if originUp {
					t.Errorf("%s (origin up): body read: %v (%q)", p, rerr, res.cacheStatus())
				}
			case !bytes.Equal(body, content(p, sizeOf(p, max))):
				t.Errorf("%s: CORRUPT body served (%d bytes, want %d; Cache-Status %q)", p, len(body), sizeOf(p, max), res.cacheStatus())
			}
		}
		return hits
	}

	// First with the origin unreachable: everything served comes from disk.
	down := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	down.Close()
	e := kubecdn.Start(t, edgetest.Options{Origin: down.URL, CacheDir: dir, Args: args})
	start := time.Now()
	hits := check(e, false)
	t.Logf("check took %v", time.Since(start))
	t.Logf("origin down: %d of %d objects served from the cache", hits, len(paths))
	if hits == 0 {
		t.Errorf("nothing survived the kills: the test proves nothing")
	}
	if err := e.Stop(15 * time.Second); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	// Then with the origin up: every object is served, whole and right.
	e = kubecdn.Start(t, edgetest.Options{Origin: o.URL, CacheDir: dir, Args: args})
	start = time.Now()
	check(e, true)
	t.Logf("check took %v", time.Since(start))
	e.MustBeHealthy(t)
}
