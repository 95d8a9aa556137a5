//go:build linux

package edge

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kubecdn/kubecdn/internal/httpcache"
	"github.com/kubecdn/kubecdn/internal/rtt"
)

// ioModes are the two ways the plain listener is served; tests of the fast
// path run in both.
var ioModes = []string{IOUringAuto, IOUringOff}

// uringEdge starts an edge served by the io_uring loop, or skips the test
// when this kernel has none for it (the edge then runs without, as
// TestUringUnavailableFallsBack checks).
func uringEdge(t *testing.T, origin string, before ...func(*Server)) *testEdge {
	t.Helper()
	e := startEdge(t, Config{Origin: origin}, before...)
	if e.uring.Load() == nil {
		t.Skip("io_uring is not available here: the edge serves with goroutines")
	}
	return e
}

// uringEdges starts two edges with cfg, one served by the io_uring loop
// and one with ioUring off, or skips the test where io_uring is
// unavailable.
func uringEdges(t *testing.T, cfg Config) (loop, goroutines *testEdge) {
	t.Helper()
	loop = startEdge(t, cfg)
	if loop.uring.Load() == nil {
		t.Skip("io_uring is not available here")
	}
	cfg.IOUring = IOUringOff
	return loop, startEdge(t, cfg)
}

func uringOrigin(t *testing.T) (string, *countingOrigin) {
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"e"`)
		var size int
		if _, err := fmt.Sscanf(r.URL.Path, "/big/%d", &size); err == nil {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bytes.Repeat([]byte("b"), size)))
			return
		}
		io.WriteString(w, "body"+r.URL.Path)
	})
	return origin.URL, co
}

func uringDial(t *testing.T, e *testEdge) (net.Conn, *bufio.Reader) {
	t.Helper()
	return rawGet(t, e, "")
}

// readResp reads one response and checks its status, body and cache status.
func readResp(t *testing.T, br *bufio.Reader, head bool, code int, body, cache string) *http.Response {
	t.Helper()
	method := "GET"
	if head {
		method = "HEAD"
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code || string(b) != body {
		t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, code, body)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, cache) {
		t.Fatalf("Cache-Status %q, want %q in it", cs, cache)
	}
	return resp
}

func waitUringConns(t *testing.T, e *testEdge, n int) {
	t.Helper()
	waitCount(t, "connections on the io_uring loop", e.uring.Load().connections, n)
}

func hitCount(e *testEdge) float64 {
	var m dto.Metric
	e.metrics.hits.Write(&m)
	return m.GetCounter().GetValue()
}

// TestUringServesHits: pipelined requests, a HEAD and a request split over
// two writes are answered by the loop, which keeps the connection.
func TestUringServesHits(t *testing.T) {
	origin, co := uringOrigin(t)
	e := uringEdge(t, origin)
	primeHit(t, e, "/p")
	hits := hitCount(e)
	c, br := uringDial(t, e)
	io.WriteString(c, "GET /p HTTP/1.1\r\nHost: h\r\n\r\nGET /p HTTP/1.1\r\nHost: h\r\n\r\nHEAD /p HTTP/1.1\r\nHost: h\r\n\r\n")
	readResp(t, br, false, 200, "body/p", "hit")
	readResp(t, br, false, 200, "body/p", "hit")
	resp := readResp(t, br, true, 200, "", "hit")
	if resp.ContentLength != int64(len("body/p")) {
		t.Fatalf("HEAD Content-Length %d", resp.ContentLength)
	}
	// A body too large to copy goes out from the memory tier's copy, after
	// its header; the requests behind it wait their turn.
	primeHit(t, e, "/big/300000")
	io.WriteString(c, "GET /big/300000 HTTP/1.1\r\nHost: h\r\n\r\nGET /p HTTP/1.1\r\nHost: h\r\n\r\n")
	readResp(t, br, false, 200, strings.Repeat("b", 300000), "hit")
	readResp(t, br, false, 200, "body/p", "hit")
	hits += 3 // primeHit's, and these two
	io.WriteString(c, "GET /p HTTP/1.1\r\nHo")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "st: h\r\n\r\n")
	readResp(t, br, false, 200, "body/p", "hit")
	waitUringConns(t, e, 1)
	if got := hitCount(e) - hits; got != 4 {
		t.Fatalf("%v hits counted, want 4", got)
	}
	if n := co.n("/p"); n != 1 {
		t.Fatalf("origin saw %d requests, want 1", n)
	}
}

// TestUringMatchesGoroutinePath: the loop's answers are, byte for byte
// (Date and Age aside), those of the goroutine fast path.
func TestUringMatchesGoroutinePath(t *testing.T) {
	origin, _ := uringOrigin(t)
	e, g := uringEdges(t, Config{Origin: origin})
	// The stored fields come in the order each edge stored them, and the
	// TTL may cross a second between the two.
	ttl := regexp.MustCompile(`ttl=\d+`)
	norm := func(b []byte) string {
		head, body, _ := strings.Cut(string(b), "\r\n\r\n")
		var out []string
		for _, l := range strings.Split(head, "\r\n") {
			if !strings.HasPrefix(l, "Date: ") && !strings.HasPrefix(l, "Age: ") {
				out = append(out, ttl.ReplaceAllString(l, "ttl=N"))
			}
		}
		sort.Strings(out)
		return strings.Join(out, "\r\n") + "\r\n\r\n" + body
	}
	for _, req := range []string{
		"GET /p HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /p HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
	} {
		var got [2]string
		for i, x := range []*testEdge{e, g} {
			primeHit(t, x, "/p")
			c, _ := uringDial(t, x)
			io.WriteString(c, req)
			c.(*net.TCPConn).CloseWrite()
			b, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			got[i] = norm(b)
		}
		if got[0] != got[1] {
			t.Fatalf("%q:\nio_uring:\n%s\ngoroutines:\n%s", req, got[0], got[1])
		}
		if !strings.Contains(got[0], "hit") {
			t.Fatalf("%q: not a hit:\n%s", req, got[0])
		}
	}
}

// TestUringServesSliced: an object stored in slices, all in the memory
// tier, is sent by the loop slice after slice, with the header net/http's
// way gives it.
func TestUringServesSliced(t *testing.T) {
	origin, co := uringOrigin(t)
	e, g := uringEdges(t, Config{Origin: origin, SliceBytes: 64 << 10})
	const size = 300000 // five slices, the last one short
	want := strings.Repeat("b", size)
	var got [2]string
	for i, x := range []*testEdge{e, g} {
		primeHit(t, x, fmt.Sprintf("/big/%d", size))
		primeHit(t, x, "/p")
		c, br := uringDial(t, x)
		io.WriteString(c, fmt.Sprintf("GET /big/%d HTTP/1.1\r\nHost: h\r\n\r\nGET /p HTTP/1.1\r\nHost: h\r\n\r\n", size))
		resp := readResp(t, br, false, 200, want, "hit")
		readResp(t, br, false, 200, "body/p", "hit")
		resp.Header.Del("Date")
		resp.Header.Del("Age")
		// The two stored it at different times: the TTL may differ by a second.
		resp.Header.Set("Cache-Status", regexp.MustCompile(`ttl=\d+`).ReplaceAllString(resp.Header.Get("Cache-Status"), "ttl=N"))
		got[i] = fmt.Sprint(resp.Header)
	}
	if got[0] != got[1] {
		t.Fatalf("header from the loop:\n%s\nfrom net/http:\n%s", got[0], got[1])
	}
	if n := e.uring.Load().connections(); n != 1 {
		t.Fatalf("%d connections on the loop, want 1 (the sliced hit was handed over)", n)
	}
	fetched := co.n(fmt.Sprintf("/big/%d", size))

	// With a slice gone from the memory tier, the request goes to net/http,
	// which fetches that slice again.
	e.store.Delete(sliceKey(httpcache.Key("http", "h", fmt.Sprintf("/big/%d", size)), 2))
	c, br := uringDial(t, e)
	io.WriteString(c, fmt.Sprintf("GET /big/%d HTTP/1.1\r\nHost: h\r\n\r\n", size))
	readResp(t, br, false, 200, want, "hit")
	waitUringConns(t, e, 1) // the first connection, still on the loop
	if n := co.n(fmt.Sprintf("/big/%d", size)); n != fetched+1 {
		t.Fatalf("origin saw %d requests, want %d (the missing slice fetched again)", n, fetched+1)
	}
}

// TestUringHandsOver: a miss, a conditional request and a malformed request
// each move the connection off the loop (to the goroutine fast path, which
// passes them on to net/http), with every pipelined request answered in
// order.
func TestUringHandsOver(t *testing.T) {
	origin, _ := uringOrigin(t)
	e := uringEdge(t, origin)
	primeHit(t, e, "/p")
	for _, tc := range []struct {
		name, req string
		code      int
		body      string
		cache     string
	}{
		{"miss", "GET /q HTTP/1.1\r\nHost: h\r\n\r\n", 200, "body/q", "uri-miss"},
		{"conditional", "GET /p HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n", 304, "", "hit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := uringDial(t, e)
			io.WriteString(c, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n"+tc.req+"GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
			readResp(t, br, false, 200, "body/p", "hit")
			readResp(t, br, false, tc.code, tc.body, tc.cache)
			readResp(t, br, false, 200, "body/p", "hit")
			waitUringConns(t, e, 0)
		})
	}
	t.Run("smuggling", func(t *testing.T) {
		c, br := uringDial(t, e)
		io.WriteString(c, "GET /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 400 {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
	})
}

// TestUringHandedOverConnectionParks: a connection handed to the goroutine
// fast path (for a hit on disk only, which it sends with sendfile) parks
// when idle, like any other, and serves again.
func TestUringHandedOverConnectionParks(t *testing.T) {
	origin, _ := uringOrigin(t)
	e := startEdge(t, Config{Origin: origin, MemoryBytes: 64 << 10, CacheDir: t.TempDir()}, parkQuickly(time.Minute))
	if e.uring.Load() == nil {
		t.Skip("io_uring is not available here")
	}
	primeHit(t, e, "/big/100000") // larger than the memory tier: on disk only
	big := strings.Repeat("b", 100000)
	c, br := uringDial(t, e)
	io.WriteString(c, "GET /big/100000 HTTP/1.1\r\nHost: h\r\n\r\n")
	readResp(t, br, false, 200, big, "hit")
	waitUringConns(t, e, 0)
	waitParked(t, e, 1)
	io.WriteString(c, "GET /big/100000 HTTP/1.1\r\nHost: h\r\n\r\n")
	readResp(t, br, false, 200, big, "hit")
}

// TestUringManyConnections: more connections than the loop has receive
// buffers send at once, with more pipelined responses on one of them than
// one send holds: every request is answered.
func TestUringManyConnections(t *testing.T) {
	origin, _ := uringOrigin(t)
	e := uringEdge(t, origin)
	primeHit(t, e, "/p")
	const conns = uringBufCount + 200
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		cs[i] = c
	}
	waitUringConns(t, e, conns)
	const pipelined = 2000 // ~2000 × 200 bytes of responses: many sends
	for i, c := range cs {
		n := 1
		if i == 0 {
			n = pipelined
		}
		if _, err := io.WriteString(c, strings.Repeat("GET /p HTTP/1.1\r\nHost: h\r\n\r\n", n)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(c)
			n := 1
			if i == 0 {
				n = pipelined
			}
			for j := 0; j < n; j++ {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("conn %d response %d: %v", i, j, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				if string(b) != "body/p" {
					errs <- fmt.Errorf("conn %d response %d: %q", i, j, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.uring.Load().connections(); n != conns {
		t.Fatalf("%d connections on the loop, want %d", n, conns)
	}
}

// TestUringConnectionEnds: Connection: close, a client that hangs up and
// the idle timeout each end a connection, and the loop lets go of it.
func TestUringConnectionEnds(t *testing.T) {
	origin, _ := uringOrigin(t)
	e := uringEdge(t, origin, func(s *Server) { s.fastIdle = 1500 * time.Millisecond })
	primeHit(t, e, "/p")

	c, br := uringDial(t, e)
	io.WriteString(c, "GET /p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /p HTTP/1.1\r\nHost: h\r\n\r\n")
	resp := readResp(t, br, false, 200, "body/p", "hit")
	if !resp.Close {
		t.Fatal("no Connection: close in the answer")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after Connection: close: %v, want EOF", err)
	}
	waitUringConns(t, e, 0)

	c, _ = uringDial(t, e)
	waitUringConns(t, e, 1)
	c.Close()
	waitUringConns(t, e, 0)

	c, br = uringDial(t, e)
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	// The idle timeout is 1.5 s and the loop checks it every second.
	if d := time.Since(start); d < time.Second || d > 4*time.Second {
		t.Fatalf("idle connection closed after %v, want about 1.5 s to 2.5 s", d)
	}
	waitUringConns(t, e, 0)
}

// TestUringShutdown: a shutdown closes the loop's idle connections and
// returns at once.
func TestUringShutdown(t *testing.T) {
	origin, _ := uringOrigin(t)
	e := uringEdge(t, origin)
	primeHit(t, e, "/p")
	c, br := uringDial(t, e)
	io.WriteString(c, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
	readResp(t, br, false, 200, "body/p", "hit")
	start := time.Now()
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after shutdown: %v, want EOF", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(e.url, "http://"), time.Second); err == nil {
		t.Fatal("the listener still accepts after shutdown")
	}
}

// TestUringOffServesWithGoroutines: ioUring off serves as before.
func TestUringOffServesWithGoroutines(t *testing.T) {
	origin, _ := uringOrigin(t)
	e := startEdge(t, Config{Origin: origin, IOUring: IOUringOff})
	if e.uring.Load() != nil {
		t.Fatal("io_uring loop running with ioUring off")
	}
	primeHit(t, e, "/p")
}

// TestUringMatchesGoroutinePathInPieces sends the same pipelined requests
// to an edge with the loop and one without, cut in random pieces written
// one by one: the answers (status, length, cache status, body) are the
// same, in the same order.
func TestUringMatchesGoroutinePathInPieces(t *testing.T) {
	origin, _ := uringOrigin(t)
	e, g := uringEdges(t, Config{Origin: origin, SliceBytes: 64 << 10})
	for _, x := range []*testEdge{e, g} {
		for _, p := range []string{"/p", "/q", "/big/20000", "/big/300000"} {
			primeHit(t, x, p)
		}
	}
	stream := "GET /p HTTP/1.1\r\nHost: h\r\n\r\n" +
		"HEAD /big/300000 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /big/20000 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /q HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /big/300000 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /p HTTP/1.1\r\nHost: h\r\nUser-Agent: x\r\n\r\n" +
		"GET /p HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n" +
		"GET /q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	methods := []string{"GET", "HEAD", "GET", "GET", "GET", "GET", "GET", "GET"}
	cs := regexp.MustCompile(`ttl=\d+`)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		// The same pieces, with the same pauses, for both edges.
		var pieces []string
		var pauses []time.Duration
		for rest := stream; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(60))
			if round == 0 {
				n = len(rest) // all at once
			}
			pieces, pauses = append(pieces, rest[:n]), append(pauses, time.Duration(rng.IntN(300))*time.Microsecond)
			rest = rest[n:]
		}
		var got [2][]string
		for i, x := range []*testEdge{e, g} {
			c, br := uringDial(t, x)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j, p := range pieces {
					if _, err := io.WriteString(c, p); err != nil {
						return
					}
					time.Sleep(pauses[j])
				}
			}()
			defer wg.Wait()
			for j, m := range methods {
				resp, err := http.ReadResponse(br, &http.Request{Method: m})
				if err != nil {
					t.Fatalf("round %d, edge %d, response %d (after %q): %v", round, i, j, got[i], err)
				}
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("round %d, edge %d: %v", round, i, err)
				}
				got[i] = append(got[i], fmt.Sprintf("%d len=%d %s body=%d:%x", resp.StatusCode, resp.ContentLength,
					cs.ReplaceAllString(resp.Header.Get("Cache-Status"), "ttl=N"), len(body), sha256.Sum256(body)))
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("round %d, edge %d: after Connection: close: %v", round, i, err)
			}
		}
		if !slices.Equal(got[0], got[1]) {
			t.Fatalf("round %d:\nio_uring:\n%s\ngoroutines:\n%s", round, strings.Join(got[0], "\n"), strings.Join(got[1], "\n"))
		}
	}
}

// TestUringStalledClient: a client that stops reading a large body is cut
// off once a send has made no progress for the write timeout, and the loop
// lets go of it; one that reads slowly but steadily is not.
func TestUringStalledClient(t *testing.T) {
	origin, _ := uringOrigin(t)
	e := uringEdge(t, origin, func(s *Server) { s.fastWrite = 1500 * time.Millisecond })
	const size = 8 << 20 // far more than the socket buffers hold
	path := fmt.Sprintf("/big/%d", size)
	primeHit(t, e, path)

	slow, br := uringDial(t, e)
	slow.(*net.TCPConn).SetReadBuffer(64 << 10)
	slow.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(slow, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
	stalled, _ := uringDial(t, e)
	stalled.(*net.TCPConn).SetReadBuffer(64 << 10)
	io.WriteString(stalled, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
	waitUringConns(t, e, 2)

	// The slow client reads 1 MiB every half second: four seconds in all,
	// past the write timeout, and it gets the whole body.
	done := make(chan error, 1)
	go func() {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			done <- err
			return
		}
		var n int64
		for err == nil {
			var k int64
			k, err = io.CopyN(io.Discard, resp.Body, 1<<20)
			n += k
			time.Sleep(500 * time.Millisecond)
		}
		if n != size || err != io.EOF {
			done <- fmt.Errorf("slow client read %d bytes, %v", n, err)
			return
		}
		done <- nil
	}()
	// The stalled one reads nothing: within 1.5 s of its last progress
	// (plus the loop's 1 s tick) it is gone.
	deadline := time.Now().Add(6 * time.Second)
	for e.uring.Load().connections() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections on the loop, want the stalled one gone", e.uring.Load().connections())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestUringObservesRTT: the loop reports each connection it accepts, with
// its client's address and a socket TCP_INFO can be read from (the rtt
// feed the dns's latency policy uses).
func TestUringObservesRTT(t *testing.T) {
	origin, _ := uringOrigin(t)
	type seen struct {
		client netip.Addr
		rtt    time.Duration
		ok     bool
	}
	got := make(chan seen, 4)
	e := uringEdge(t, origin, func(s *Server) {
		s.opts.Observer = fdObserver(func(client netip.Addr, fd int) {
			d, ok := rtt.FDRTT(fd)
			got <- seen{client, d, ok}
		})
	})
	uringDial(t, e)
	select {
	case s := <-got:
		if s.client != netip.MustParseAddr("127.0.0.1") || !s.ok || s.rtt <= 0 || s.rtt > time.Second {
			t.Fatalf("observed %+v, want 127.0.0.1 with a loopback RTT", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the accepted connection was not observed")
	}
}

// randomOrigin serves seeded random bodies of any size at /r/SIZE (with
// ranges, as slice fetches need), cacheable.
func randomOrigin(t *testing.T, seed uint64) string {
	var mu sync.Mutex
	bodies := map[int][]byte{}
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		var size int
		if _, err := fmt.Sscanf(r.URL.Path, "/r/%d", &size); err != nil || size > 64<<20 {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		b, ok := bodies[size]
		if !ok {
			b = make([]byte, size)
			rng := rand.New(rand.NewPCG(seed, uint64(size)))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			bodies[size] = b
		}
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"r"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
	return origin.URL
}

// TestUringSlowReaderOfWholeSlices: the loop sends a body slice by slice,
// each in one send that the kernel finishes (MSG_WAITALL). A client that
// reads slowly but steadily takes far longer than the write timeout for one
// slice and must still get every byte; the timeout counts from its last
// progress (TCP_INFO's bytes acknowledged), not from the send.
func TestUringSlowReaderOfWholeSlices(t *testing.T) {
	origin := randomOrigin(t, 17)
	e := startEdgeOnLoop(t, Config{Origin: origin, SliceBytes: 8 << 20, MemoryBytes: 256 << 20},
		func(s *Server) { s.fastWrite = 700 * time.Millisecond })
	const size = 10 << 20 // two slices, the first 8 MiB
	path := fmt.Sprintf("/r/%d", size)
	primeHit(t, e, path)
	want := sha256.Sum256(getBody(t, origin+path))

	rng := rand.New(rand.NewPCG(17, 1))
	c, br := uringDial(t, e)
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var n int64
	for {
		// 2.5 MiB/s on average: an 8 MiB slice takes about 3 s.
		k, err := io.CopyN(h, resp.Body, int64(64<<10+rng.IntN(128<<10)))
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		time.Sleep(time.Duration(25+rng.IntN(50)) * time.Millisecond)
	}
	if n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("read %d bytes (want %d), same bytes as the origin: %v", n, size, bytes.Equal(h.Sum(nil), want[:]))
	}
	waitUringConns(t, e, 1) // still kept alive on the loop
}

// TestUringClientHangsUpMidBody: clients that close in the middle of large
// bodies (at seeded random points) leave the loop, which goes on serving
// byte-exact bodies to the next.
func TestUringClientHangsUpMidBody(t *testing.T) {
	origin := randomOrigin(t, 18)
	e := startEdgeOnLoop(t, Config{Origin: origin, SliceBytes: 1 << 20})
	const size = 5<<20 + 12345
	path := fmt.Sprintf("/r/%d", size)
	primeHit(t, e, path)
	want := getBody(t, origin+path)
	rng := rand.New(rand.NewPCG(18, 1))
	for i := 0; i < 8; i++ {
		c, br := uringDial(t, e)
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, resp.Body, int64(rng.IntN(size)))
		c.Close()
	}
	waitUringConns(t, e, 0)
	c, br := uringDial(t, e)
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the hang-ups: %d bytes (%v), want the origin's %d", len(got), err, len(want))
	}
}

// startEdgeOnLoop is uringEdge with a whole config.
func startEdgeOnLoop(t *testing.T, cfg Config, before ...func(*Server)) *testEdge {
	t.Helper()
	e := startEdge(t, cfg, before...)
	if e.uring.Load() == nil {
		t.Skip("io_uring is not available here")
	}
	return e
}

func getBody(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
