package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// bodyOrigin echoes the size of each body it gets and counts connections.
func bodyOrigin(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "got %d cl=%d", len(b), r.ContentLength)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, &conns
}

// slowPost opens a connection, sends a POST header announcing cl bytes and
// first bytes of body, and returns the connection (the caller sends the
// rest, or not).
func slowPost(t *testing.T, addr string, cl int, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", cl)
	c.Write(first)
	return c
}

func readStatus(t *testing.T, c net.Conn, limit time.Duration) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRequestBodies(t *testing.T) {
	originURL, conns := bodyOrigin(t)
	lim := bodyLimits{bufferMax: 1 << 10, budget: 4 << 10, streams: 1, wait: 300 * time.Millisecond, grace: 500 * time.Millisecond, minRate: 1 << 10}
	e := startEdge(t, Config{Origin: originURL, IOUring: IOUringOff}, func(s *Server) { s.reqBodies = newBodyGate(lim) })
	addr := strings.TrimPrefix(e.url, "http://")

	t.Run("small body whole, then upstream", func(t *testing.T) {
		for _, tc := range []struct {
			name, body string
			chunked    bool
		}{{"sized", "hello", false}, {"chunked", strings.Repeat("z", 700), true}} {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			resp, got := do2(t, e.url+"/up", body)
			// A buffered body goes upstream with its length.
			if want := fmt.Sprintf("got %d cl=%d", len(tc.body), len(tc.body)); resp.StatusCode != 200 || got != want {
				t.Errorf("%s: %d %q, want %q", tc.name, resp.StatusCode, got, want)
			}
		}
	})
	t.Run("slow small body never reaches the origin", func(t *testing.T) {
		before := conns.Load()
		c := slowPost(t, addr, 100, []byte("x"))
		if code := readStatus(t, c, 5*time.Second); code != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408", code)
		}
		if n := conns.Load() - before; n != 0 {
			t.Errorf("%d origin connections for a body that never came", n)
		}
	})
	t.Run("large bodies stream, one at a time", func(t *testing.T) {
		// A large body that trickles holds the one turn...
		c1 := slowPost(t, addr, 8<<10, bytes.Repeat([]byte("a"), 100))
		time.Sleep(100 * time.Millisecond)
		// ...so the next waits, and gives up after lim.wait.
		c2 := slowPost(t, addr, 8<<10, bytes.Repeat([]byte("b"), 100))
		if code := readStatus(t, c2, 5*time.Second); code != http.StatusServiceUnavailable {
			t.Errorf("second large body: %d, want 503", code)
		}
		// The trickle is cut off at the minimum rate.
		if code := readStatus(t, c1, 5*time.Second); code != http.StatusRequestTimeout && code != http.StatusBadGateway {
			t.Errorf("slow large body: %d, want 408 (or 502 when the origin saw it cut first)", code)
		}
		// The turn is free again: an honest large body passes.
		big := strings.Repeat("c", 8<<10)
		if resp, got := do2(t, e.url+"/up", strings.NewReader(big)); resp.StatusCode != 200 || got != fmt.Sprintf("got %d cl=%d", len(big), len(big)) {
			t.Errorf("large body: %d %q", resp.StatusCode, got)
		}
	})
	t.Run("malformed chunked body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
		if code := readStatus(t, c, 5*time.Second); code != http.StatusBadRequest {
			t.Errorf("status %d, want 400", code)
		}
	})
	if n := e.reqBodies.buffered.Load(); n != 0 {
		t.Errorf("%d bytes of budget still held", n)
	}
}

func TestMinRateDeadline(t *testing.T) {
	m := &minRateReader{start: time.Unix(0, 0), lim: bodyLimits{grace: 10 * time.Second, minRate: 1000}}
	for _, tc := range []struct {
		got  int64
		want time.Duration
	}{{0, 10 * time.Second}, {500, 10500 * time.Millisecond}, {1 << 40, 10*time.Second + (1<<40)/1000*time.Second + 776*time.Millisecond}} {
		m.got = tc.got
		if d := m.deadline().Sub(m.start); d != tc.want {
			t.Errorf("deadline after %d bytes: %v, want %v", tc.got, d, tc.want)
		}
	}
}

func do2(t *testing.T, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}
