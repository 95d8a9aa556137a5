package edge

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// objectBytes is a deterministic body of n bytes that differs per seed.
func objectBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7%251) ^ seed
	}
	return b
}

// noRangeOrigin serves content whole to every request, Range or not, as
// python3 -m http.server does, in small writes so the body streams.
func noRangeOrigin(t *testing.T, content []byte) (url string, co *countingOrigin, sent *atomic.Int64) {
	t.Helper()
	sent = new(atomic.Int64)
	srv, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", "Sat, 01 Jan 2022 00:00:00 GMT")
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Header().Set("Cache-Control", "max-age=600")
		(&pieceWriter{ResponseWriter: w, sent: sent}).Write(content)
	})
	return srv.URL, co, sent
}

// TestWholeGetFromRangeIgnoringOrigin is issue 11's first finding: a cold
// whole GET of an object larger than a slice, from an origin that ignores
// Range, was cut at the first slice boundary.
func TestWholeGetFromRangeIgnoringOrigin(t *testing.T) {
	content := objectBytes(5<<20+77, 1)
	for try := range 4 {
		origin, co, _ := noRangeOrigin(t, content)
		e := startEdge(t, Config{Origin: origin, SliceBytes: 1 << 20})
		resp, body := get(t, e.url+"/big.bin")
		if resp.StatusCode != 200 || body != string(content) {
			t.Fatalf("try %d: status %d, %d of %d bytes", try, resp.StatusCode, len(body), len(content))
		}
		if n := co.n("/big.bin"); n != 1 {
			t.Errorf("try %d: origin saw %d requests, want 1", try, n)
		}
	}
}

// TestWholeGetOneFillFromRangeOrigin: a cold whole GET makes one origin
// request, not one per slice.
func TestWholeGetOneFillFromRangeOrigin(t *testing.T) {
	content := objectBytes(6<<20+5, 2)
	for try := range 4 {
		origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("ETag", `"v1"`)
			http.ServeContent(w, r, "big.bin", time.Unix(1e9, 0), bytes.NewReader(content))
		})
		e := startEdge(t, Config{Origin: origin.URL, SliceBytes: 1 << 20})
		resp, body := get(t, e.url+"/big.bin")
		if resp.StatusCode != 200 || body != string(content) {
			t.Fatalf("try %d: status %d, %d of %d bytes", try, resp.StatusCode, len(body), len(content))
		}
		if n := co.n("/big.bin"); n != 1 {
			t.Errorf("try %d: origin saw %d requests, want 1", try, n)
		}
	}
}

// rawRange sends a GET with a Range header on a fresh connection and
// returns the status line's code and the body read, or the error.
func rawRange(t *testing.T, base, path, rng string, readN int) (int, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Range", rng)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if readN >= 0 {
		r = io.LimitReader(resp.Body, int64(readN))
	}
	b, err := io.ReadAll(r)
	return resp.StatusCode, b, err
}

// TestSeekOnRangeIgnoringOrigin is the video player's pattern: read the
// start of bytes=0-, hang up, then seek far into the object.
func TestSeekOnRangeIgnoringOrigin(t *testing.T) {
	content := objectBytes(6<<20+3, 3)
	for try := range 3 {
		origin, _, _ := noRangeOrigin(t, content)
		e := startEdge(t, Config{Origin: origin, SliceBytes: 1 << 20})
		code, b, err := rawRange(t, e.url, "/v.mp4", "bytes=0-", 64<<10)
		if err != nil || code != 206 || !bytes.Equal(b, content[:64<<10]) {
			t.Fatalf("try %d: first read: %d %v", try, code, err)
		}
		off := 4<<20 + 12345
		code, b, err = rawRange(t, e.url, "/v.mp4", fmt.Sprintf("bytes=%d-", off), -1)
		if err != nil || code != 206 || !bytes.Equal(b, content[off:]) {
			t.Fatalf("try %d: seek: status %d, %d bytes (want %d), err %v", try, code, len(b), len(content)-off, err)
		}
	}
}

// TestLateReaderSharesTheFill: from an origin that ignores Range, a reader
// that arrives a moment after the first one left still shares its fill
// (CI's busy edge accepted a herd's readers 200 ms apart, and the fill had
// stopped: each later reader cost the origin the object again).
func TestLateReaderSharesTheFill(t *testing.T) {
	content := objectBytes(6<<20+3, 6)
	origin, co, sent := noRangeOrigin(t, content)
	e := startEdge(t, Config{Origin: origin, SliceBytes: 256 << 10})
	code, b, err := rawRange(t, e.url, "/late.bin", "bytes=300000-300099", -1)
	if err != nil || code != 206 || !bytes.Equal(b, content[300000:300100]) {
		t.Fatalf("first reader: %d %v", code, err)
	}
	time.Sleep(300 * time.Millisecond)
	resp, body := get(t, e.url+"/late.bin")
	if resp.StatusCode != 200 || body != string(content) {
		t.Fatalf("late reader: status %d, %d of %d bytes", resp.StatusCode, len(body), len(content))
	}
	if n := co.n("/late.bin"); n != 1 {
		t.Errorf("origin saw %d requests and sent %.2fx the object; want 1: the late reader did not share the fill",
			n, float64(sent.Load())/float64(len(content)))
	}
}

// TestMissingSliceOriginDown: a sliced object partly in cache and the origin
// gone: a range in a missing slice gets a clean 502, not an empty reply.
func TestMissingSliceOriginDown(t *testing.T) {
	content := objectBytes(4<<20, 4)
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "big.bin", time.Unix(1e9, 0), bytes.NewReader(content))
	})
	e := startEdge(t, Config{Origin: origin.URL, SliceBytes: 1 << 20})
	if code, b, err := rawRange(t, e.url, "/big.bin", "bytes=0-99", -1); err != nil || code != 206 || !bytes.Equal(b, content[:100]) {
		t.Fatalf("prime: %d %v", code, err)
	}
	origin.Close()
	code, _, err := rawRange(t, e.url, "/big.bin", "bytes=3000000-3000099", -1)
	if err != nil || code != http.StatusBadGateway {
		t.Fatalf("missing slice, origin down: status %d, err %v; want a clean 502", code, err)
	}
	// A whole GET must not start a 200 it cannot finish.
	code, _, err = rawRange(t, e.url, "/big.bin", "bytes=0-", -1)
	if err != nil || code != http.StatusBadGateway {
		t.Fatalf("whole, origin down: status %d, err %v; want a clean 502", code, err)
	}
	// What is cached is still served.
	if code, b, err := rawRange(t, e.url, "/big.bin", "bytes=10-19", -1); err != nil || code != 206 || !bytes.Equal(b, content[10:20]) {
		t.Fatalf("cached slice: %d %v", code, err)
	}
}

// TestOriginClosesEarly: the origin promises a length and closes early; the
// client sees an aborted connection, never a short body passed off as whole,
// and nothing is stored.
func TestOriginClosesEarly(t *testing.T) {
	content := objectBytes(300<<10, 5)
	var n atomic.Int32
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		if n.Add(1) == 1 {
			w.Write(content[:100<<10])
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
		w.Write(content)
	})
	e := startEdge(t, Config{Origin: origin.URL, SliceBytes: 1 << 20})
	code, b, err := rawRange(t, e.url, "/c.bin", "bytes=0-", -1)
	if err == nil {
		t.Fatalf("first: status %d with %d bytes and no error; want an aborted body", code, len(b))
	}
	resp, body := get(t, e.url+"/c.bin")
	if resp.StatusCode != 200 || body != string(content) {
		t.Fatalf("second: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if cs := resp.Header.Get("Cache-Status"); !bytes.Contains([]byte(cs), []byte("miss")) {
		t.Errorf("second Cache-Status %q: the cut body must not have been stored", cs)
	}
}

// TestSlowOriginServesStale: with a stale copy in the cache, a slow origin
// gets StaleDeadline, then the copy is served; the fetch goes on and
// refreshes the cache.
func TestSlowOriginServesStale(t *testing.T) {
	var n atomic.Int32
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=1")
		if n.Add(1) > 1 {
			time.Sleep(1500 * time.Millisecond)
			io.WriteString(w, "v2")
			return
		}
		io.WriteString(w, "v1")
	})
	e := startEdge(t, Config{Origin: origin.URL, StaleDeadline: 300 * time.Millisecond})
	if _, body := get(t, e.url+"/p"); body != "v1" {
		t.Fatalf("prime: %q", body)
	}
	time.Sleep(1100 * time.Millisecond)
	start := time.Now()
	resp, body := get(t, e.url+"/p")
	if took := time.Since(start); took > time.Second {
		t.Errorf("stale copy after %v, want about the 300ms deadline", took)
	}
	if body != "v1" || !strings.Contains(resp.Header.Get("Cache-Status"), "upstream-slow") {
		t.Fatalf("got %q, Cache-Status %q; want the stale v1 marked upstream-slow", body, resp.Header.Get("Cache-Status"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, body := get(t, e.url+"/p"); body == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow fetch never refreshed the cache")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestObjectChangedBetweenSlices: slice 0 of version 1 is cached, then the
// origin changes the object; a whole GET must never stitch the versions:
// it is served as version 2, fetched anew.
func TestObjectChangedBetweenSlices(t *testing.T) {
	v1, v2 := objectBytes(3<<20+10, 6), objectBytes(3<<20+10, 7)
	var cur atomic.Pointer[[]byte]
	cur.Store(&v1)
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b := *cur.Load()
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, b[1]))
		http.ServeContent(w, r, "o.bin", time.Time{}, bytes.NewReader(b))
	})
	e := startEdge(t, Config{Origin: origin.URL, SliceBytes: 1 << 20})
	if code, b, err := rawRange(t, e.url, "/o.bin", "bytes=0-9", -1); err != nil || code != 206 || !bytes.Equal(b, v1[:10]) {
		t.Fatalf("prime: %d %v", code, err)
	}
	cur.Store(&v2)
	resp, body := get(t, e.url+"/o.bin")
	if resp.StatusCode != 200 || body != string(v2) {
		same := body == string(v1)
		t.Fatalf("status %d, %d bytes, equal to v1: %v; want v2 whole", resp.StatusCode, len(body), same)
	}
}

// TestStalledBodyFails: an origin that stops sending mid-body fails the
// response after the upstream timeout (aborted, not hung), and nothing is
// stored.
func TestStalledBodyFails(t *testing.T) {
	content := objectBytes(200<<10, 8)
	var n atomic.Int32
	release := make(chan struct{})
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		if n.Add(1) == 1 {
			w.Write(content[:50<<10])
			w.(http.Flusher).Flush()
			<-release
			return
		}
		w.Write(content)
	})
	t.Cleanup(func() { close(release) }) // before the origin's Close, which waits for the handler
	e := startEdge(t, Config{Origin: origin.URL, UpstreamTimeout: 500 * time.Millisecond})
	start := time.Now()
	_, b, err := rawRange(t, e.url, "/s.bin", "bytes=0-", -1)
	if err == nil {
		t.Fatalf("stalled body: %d bytes and no error; want an aborted response", len(b))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("aborted after %v, want about the 500ms upstream timeout", took)
	}
	resp, body := get(t, e.url+"/s.bin")
	if body != string(content) || !strings.Contains(resp.Header.Get("Cache-Status"), "miss") {
		t.Fatalf("after the stall: %d bytes, Cache-Status %q", len(body), resp.Header.Get("Cache-Status"))
	}
}

// TestAbandonedFillsStop is issue 18's "a fill goes on after every client
// waiting on it has left": 20 cold downloads of large objects, each client
// hanging up after 64 KiB, must not make the origin send the objects whole.
// From an origin that honours Range the fills stop at once; from one that
// ignores it they wait unreadLinger for a late reader first, and the kernel
// buffers a few MiB more per download meanwhile.
func TestAbandonedFillsStop(t *testing.T) {
	const size, objects = 16 << 20, 20
	content := objectBytes(size, 10)
	for _, c := range []struct {
		name      string
		ranges    bool
		perObject int64
	}{
		{"origin-honours-range", true, 4 << 20},
		{"origin-ignores-range", false, 8 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sent atomic.Int64
			origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("ETag", `"big"`)
				// About 32 MB/s, as from an origin further away than
				// loopback: what the kernel buffers between origin and
				// edge stays small.
				tw := &pieceWriter{ResponseWriter: w, sent: &sent, pause: time.Millisecond}
				if c.ranges {
					http.ServeContent(tw, r, "big.bin", time.Time{}, bytes.NewReader(content))
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(size))
				tw.Write(content)
			})
			e := startEdge(t, Config{Origin: origin.URL, SliceBytes: 1 << 20})
			var wg sync.WaitGroup
			for i := range objects {
				wg.Go(func() {
					code, b, err := rawRange(t, e.url, fmt.Sprintf("/big%d.bin", i), "bytes=0-", 64<<10)
					if err != nil || code != 206 || !bytes.Equal(b, content[:64<<10]) {
						t.Errorf("download %d: %d %v", i, code, err)
					}
				})
			}
			wg.Wait()
			time.Sleep(unreadLinger + time.Second) // let the fills notice
			got := sent.Load()
			t.Logf("origin sent %d MiB for %d abandoned downloads of %d MiB", got>>20, objects, size>>20)
			if limit := objects * c.perObject; got > limit {
				t.Errorf("origin sent %d bytes, want at most %d (a slice and the socket buffers per download), not the objects whole (%d)", got, limit, objects*size)
			}
		})
	}
}

// pieceWriter writes in 32 KiB pieces, pause apart, and counts what it
// wrote.
type pieceWriter struct {
	http.ResponseWriter
	sent  *atomic.Int64
	pause time.Duration
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		n, err := w.ResponseWriter.Write(p[:min(len(p), 32<<10)])
		total += n
		w.sent.Add(int64(n))
		if err != nil {
			return total, err
		}
		p = p[n:]
		time.Sleep(w.pause)
	}
	return total, nil
}

// TestUncacheableMissStreamsWhole: a response that is not stored, relayed
// to the miss that fetched it, arrives whole however slowly it comes.
func TestUncacheableMissStreamsWhole(t *testing.T) {
	content := objectBytes(128<<10, 11)
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		w.Write(content[:len(content)/2])
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
		w.Write(content[len(content)/2:])
	})
	e := startEdge(t, Config{Origin: origin.URL})
	resp, body := get(t, e.url+"/ns")
	if resp.StatusCode != 200 || body != string(content) {
		t.Fatalf("status %d, %d of %d bytes", resp.StatusCode, len(body), len(content))
	}
}
