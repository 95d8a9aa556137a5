package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/httpcache"
	dto "github.com/prometheus/client_model/go"
)

// TestFastPathPipelinedAndHandover sends, on one connection, hits (fast
// path), then a request the fast path hands over, then more: every answer
// arrives, in order.
func TestFastPathPipelinedAndHandover(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("ETag", `"e"`)
				io.WriteString(w, "body"+r.URL.Path)
			})
			e := startEdge(t, Config{Origin: origin.URL, IOUring: mode})
			get(t, e.url+"/p") // fill the cache
			c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			reqs := "GET /p HTTP/1.1\r\nHost: h\r\n\r\n" +
				"GET /p HTTP/1.1\r\nHost: h\r\n\r\n" +
				"GET /p HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n" +
				"GET /p HTTP/1.1\r\nHost: h\r\n\r\n"
			// The fill above used another Host, so prime this one first, until the
			// object is stored (the fill stores it just after the body went out).
			primeHit(t, e, "/p")
			if _, err := io.WriteString(c, reqs); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			want := []int{200, 200, 304, 200}
			for i, code := range want {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != code {
					t.Fatalf("response %d: status %d, want %d", i, resp.StatusCode, code)
				}
				if code == 200 && string(body) != "body/p" {
					t.Fatalf("response %d: body %q", i, body)
				}
				if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
					t.Fatalf("response %d: Cache-Status %q", i, resp.Header.Get("Cache-Status"))
				}
			}
			if n := co.n("/p"); n != 2 {
				t.Fatalf("origin saw %d requests, want 2", n)
			}
		})
	}
}

// TestDecideFast checks the fast path's memoised freshness against
// httpcache.Decide at every step of a clock that runs from before the
// response was received to well past its expiry, for the freshness
// sources Decide knows.
func TestDecideFast(t *testing.T) {
	resp := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	date := resp.Add(-2 * time.Second).Truncate(time.Second).Format(http.TimeFormat)
	tests := []struct {
		name   string
		header http.Header
	}{
		{"max-age", http.Header{"Cache-Control": {"max-age=10"}, "Date": {date}}},
		{"s-maxage and swr", http.Header{"Cache-Control": {"max-age=1, s-maxage=7, stale-while-revalidate=5"}, "Date": {date}}},
		{"age field", http.Header{"Cache-Control": {"max-age=10"}, "Age": {"4"}, "Date": {date}}},
		{"age list", http.Header{"Cache-Control": {"max-age=10"}, "Age": {"4, 50"}}},
		{"bad age field", http.Header{"Cache-Control": {"max-age=10"}, "Age": {"50.0"}}},
		{"expires", http.Header{"Expires": {resp.Add(9 * time.Second).Format(http.TimeFormat)}, "Date": {date}}},
		{"heuristic", http.Header{"Last-Modified": {resp.Add(-100 * time.Second).Format(http.TimeFormat)}, "Date": {date}}},
		{"no date", http.Header{"Cache-Control": {"max-age=3"}}},
		{"no-cache", http.Header{"Cache-Control": {"no-cache, max-age=10"}}},
		{"must-revalidate", http.Header{"Cache-Control": {"max-age=2, must-revalidate"}}},
		{"already stale", http.Header{"Cache-Control": {"max-age=1"}, "Age": {"50"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, invalidated := range []bool{false, true} {
				m := &objMeta{Status: http.StatusOK, Header: tt.header, ReqTime: resp.Add(-30 * time.Millisecond), RespTime: resp, Invalidated: invalidated}
				cm := &cachedMeta{m: m}
				rt := &liveConfig{}
				fresh := 0
				for step := -20; step < 400; step++ {
					now := resp.Add(time.Duration(step) * 37 * time.Millisecond)
					if step == 200 {
						rt = &liveConfig{opts: httpcache.Options{HeuristicMax: time.Second}} // a reload
					}
					d, wantAge, wantTTL := httpcache.Decide(emptyHeader, stored(m), now, rt.opts)
					age, ttl, ok := cm.decideFast(rt, now)
					if ok != (d == httpcache.Fresh) {
						t.Fatalf("at %v: fresh %v, Decide says %v", now.Sub(resp), ok, d)
					}
					if ok {
						fresh++
						if age != wantAge || ttl != wantTTL {
							t.Fatalf("at %v: age %v ttl %v, Decide %v %v", now.Sub(resp), age, ttl, wantAge, wantTTL)
						}
					}
				}
				if wantSome := !invalidated && tt.name != "no-cache" && tt.name != "already stale"; (fresh > 0) != wantSome {
					t.Fatalf("invalidated=%v: %d fresh decisions", invalidated, fresh)
				}
			}
		})
	}
}

// TestFastPathKeyPerRequest asks, on one connection, for two cached objects
// in turn, under two spellings of one host: each answer is the object asked
// for, though the connection remembers the key of its last request.
func TestFastPathKeyPerRequest(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				io.WriteString(w, "body"+r.URL.Path)
			})
			e := startEdge(t, Config{Origin: origin.URL, IOUring: mode})
			primeHit(t, e, "/a")
			primeHit(t, e, "/b")
			c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			for i, tc := range []struct{ host, path string }{
				{"h", "/a"}, {"h", "/a"}, {"h", "/b"}, {"H", "/b"}, {"h:80", "/a"}, {"h", "/b"}, {"h", "/a?"},
			} {
				if _, err := io.WriteString(c, "GET "+tc.path+" HTTP/1.1\r\nHost: "+tc.host+"\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				if want := "body" + strings.TrimSuffix(tc.path, "?"); resp.StatusCode != 200 || string(body) != want {
					t.Fatalf("response %d (%s %s): %d %q, want %q", i, tc.host, tc.path, resp.StatusCode, body, want)
				}
				if tc.path != "/a?" && !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
					t.Fatalf("response %d: Cache-Status %q", i, resp.Header.Get("Cache-Status"))
				}
			}
			if n := co.n("/a") + co.n("/b"); n > 3 {
				t.Fatalf("origin saw %d requests, want at most 3", n)
			}
		})
	}
}

// waitFill waits until a fetch for path (plain http, Host h) is in flight.
func waitFill(t *testing.T, e *testEdge, path string) {
	t.Helper()
	key := "o:" + httpcache.Key("http", "h", path)
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		_, ok := e.fills[key]
		e.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fill for %s", path)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitWaiting waits until fast requests wait on the fill of path on the fast
// path and net/http's way counts slow requests waiting on a fill.
func waitWaiting(t *testing.T, e *testEdge, path string, fast int32, slow float64) {
	t.Helper()
	key := "o:" + httpcache.Key("http", "h", path)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var waiting int32
		e.mu.Lock()
		if f := e.fills[key]; f != nil {
			waiting = f.waiting.Load()
		}
		e.mu.Unlock()
		var waiters dto.Metric
		e.metrics.coalesced.Write(&waiters)
		if waiting >= fast && waiters.GetCounter().GetValue() >= slow {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests did not join the fill: %d waiting on the fast path, %v on net/http's", waiting, waiters.GetCounter().GetValue())
		}
		time.Sleep(time.Millisecond)
	}
}

// primeHit makes path a hit for Host h.
func primeHit(t *testing.T, e *testEdge, path string) {
	t.Helper()
	// Generous: a miss of several MiB under the race detector on a busy
	// 2-core machine took over 5 s in CI.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, _ := get(t, e.url+path, "Host", "h")
		if strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became a hit", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawGet sends req (if any) on a new connection and returns the connection
// and a reader of it; the response is read by the caller.
func rawGet(t *testing.T, e *testEdge, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if req != "" {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
	}
	return c, bufio.NewReader(c)
}

// TestFastCollapsedMatchesNetHTTP: a plain miss that joins a fetch in flight
// is served by the fast path; its response must be the one net/http's way
// gives a collapsed request (a Keep-Alive field sends a request that way).
func TestFastCollapsedMatchesNetHTTP(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			release := make(chan struct{})
			origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("ETag", `"c1"`)
				w.Header().Set("Surrogate-Key", "tag1")
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Content-Length", "10")
				w.WriteHeader(http.StatusOK)
				<-release
				io.WriteString(w, "0123456789")
			})
			e := startEdge(t, Config{Origin: origin.URL, IOUring: mode})
			_, leader := rawGet(t, e, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n")
			waitFill(t, e, "/c")
			_, fast := rawGet(t, e, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n")
			_, slow := rawGet(t, e, "GET /c HTTP/1.1\r\nHost: h\r\nKeep-Alive: timeout=5\r\n\r\n")
			_, head := rawGet(t, e, "HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n")
			// Release the body only once all three wait on the fill: the two fast
			// ones counted by the fill as waiting on the fast path, the handed-over
			// one counted as a waiter by net/http's way.
			waitWaiting(t, e, "/c", 2, 1)
			close(release)
			read := func(br *bufio.Reader, method string) (*http.Response, string) {
				t.Helper()
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp, string(body)
			}
			read(leader, "GET")
			fr, fb := read(fast, "GET")
			sr, sb := read(slow, "GET")
			hr, _ := read(head, "HEAD")
			if fb != "0123456789" || sb != fb {
				t.Fatalf("bodies: fast %q, net/http %q", fb, sb)
			}
			ttl := regexp.MustCompile(`; ttl=\d+`)
			norm := func(h http.Header) http.Header {
				h = h.Clone()
				h.Del("Date")
				h["Cache-Status"] = []string{ttl.ReplaceAllString(strings.Join(h["Cache-Status"], ", "), "")}
				return h
			}
			if !reflect.DeepEqual(norm(fr.Header), norm(sr.Header)) {
				t.Fatalf("fast path header\n%v\nnet/http header\n%v", norm(fr.Header), norm(sr.Header))
			}
			if !reflect.DeepEqual(norm(hr.Header), norm(fr.Header)) {
				t.Fatalf("HEAD header\n%v\nGET header\n%v", norm(hr.Header), norm(fr.Header))
			}
			// The fast GET and the HEAD stayed on the (goroutine) fast path;
			// the leader (a miss with nothing in flight) and the Keep-Alive
			// request were handed over to net/http.
			e.fast.mu.Lock()
			onFast := len(e.fast.conns) + e.uring.Load().connections()
			e.fast.mu.Unlock()
			if onFast != 2 {
				t.Fatalf("%d connections on the fast path, want 2", onFast)
			}
			if cs := fr.Header.Get("Cache-Status"); !strings.Contains(cs, "collapsed") || !strings.Contains(cs, "fwd=uri-miss") {
				t.Fatalf("Cache-Status %q", cs)
			}
			if n := co.n("/c"); n != 1 {
				t.Fatalf("origin saw %d requests, want 1", n)
			}
		})
	}
}

// TestFastCollapsedUpstreamFails: when the upstream body breaks off, a
// collapsed request on the fast path gets a connection closed short of its
// Content-Length, never a short body passed off as whole.
func TestFastCollapsedUpstreamFails(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			release := make(chan struct{})
			origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("Content-Length", "10")
				io.WriteString(w, "01234")
				w.(http.Flusher).Flush()
				<-release
				c, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					c.Close()
				}
			})
			e := startEdge(t, Config{Origin: origin.URL, IOUring: mode})
			rawGet(t, e, "GET /broken HTTP/1.1\r\nHost: h\r\n\r\n")
			waitFill(t, e, "/broken")
			_, br := rawGet(t, e, "GET /broken HTTP/1.1\r\nHost: h\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "01234" {
				t.Fatalf("first half %q %v", buf, err)
			}
			close(release)
			rest, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("body ended cleanly after %q; want an error", rest)
			}
		})
	}
}

// TestFastCollapsedUncacheable: a request collapsed into a fetch whose
// answer may not be stored is handed to net/http, which fetches for it.
func TestFastCollapsedUncacheable(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				once.Do(func() { <-release })
				w.Header().Set("Cache-Control", "private")
				io.WriteString(w, "mine")
			})
			e := startEdge(t, Config{Origin: origin.URL, IOUring: mode})
			_, leader := rawGet(t, e, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
			waitFill(t, e, "/p")
			_, waiter := rawGet(t, e, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
			waitWaiting(t, e, "/p", 1, 0)
			close(release)
			for i, br := range []*bufio.Reader{leader, waiter} {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(body) != "mine" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
				}
			}
			if n := co.n("/p"); n != 2 {
				t.Fatalf("origin saw %d requests, want 2 (a private answer is not shared)", n)
			}
		})
	}
}
