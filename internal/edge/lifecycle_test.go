package edge

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
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
		for p := content; len(p) > 0; {
			k := min(len(p), 32<<10)
			n, err := w.Write(p[:k])
			sent.Add(int64(n))
			if err != nil {
				return
			}
			p = p[k:]
		}
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
