//go:build linux

package edge

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// parkQuickly makes idle connections park after 100 ms.
func parkQuickly(idle time.Duration) func(*Server) {
	return func(s *Server) { s.parkAfter, s.fastIdle = 100*time.Millisecond, idle }
}

func parkedOrigin(t *testing.T) string {
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "parked body")
	})
	return origin.URL
}

// warm caches /p, so that a new connection's first request is a hit and
// the connection stays on the fast path (a miss hands it to net/http).
func warm(t *testing.T, e *testEdge) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 2 {
		req, _ := http.NewRequest("GET", e.url+"/p", nil)
		req.Host = "h"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// waitParked waits until n connections are parked.
func waitParked(t *testing.T, e *testEdge, n int) {
	t.Helper()
	waitCount(t, "connections parked", e.waiter.Load().Len, n)
}

func fastConnCount(e *testEdge) int {
	e.fast.mu.Lock()
	defer e.fast.mu.Unlock()
	return len(e.fast.conns)
}

func getOn(t *testing.T, c net.Conn, br *bufio.Reader) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "parked body" {
		t.Fatalf("body %q, %v", body, err)
	}
	return resp
}

// parkOne starts an edge whose idle connections park after 100 ms (and
// close after idle), and returns a connection that made one request and
// is parked.
func parkOne(t *testing.T, idle time.Duration) (*testEdge, net.Conn, *bufio.Reader) {
	t.Helper()
	e := startEdge(t, Config{Origin: parkedOrigin(t), IOUring: IOUringOff}, parkQuickly(idle))
	warm(t, e)
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	getOn(t, c, br)
	waitParked(t, e, 1)
	return e, c, br
}

// TestFastParksIdleConnections: an idle keep-alive connection is parked
// (no goroutine, no buffers) and serves its next request as before, again
// and again; a request that arrives in pieces after parking is served too.
func TestFastParksIdleConnections(t *testing.T) {
	e, c, br := parkOne(t, time.Minute)
	for i := range 3 {
		waitParked(t, e, 1)
		if n := fastConnCount(e); n != 1 {
			t.Fatalf("%d connections tracked by the fast path while parked, want 1", n)
		}
		resp := getOn(t, c, br)
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Fatalf("request %d after parking: Cache-Status %q", i, cs)
		}
	}
	waitParked(t, e, 1)
	// A request that comes in two pieces: the first resumes the connection.
	io.WriteString(c, "GET /p HTTP/1.1\r\nHo")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "st: h\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(body) != "parked body" {
		t.Fatalf("split request after parking: %d %q", resp.StatusCode, body)
	}
}

// TestParkedConnectionHangsUp: a client that closes a parked connection
// leaves nothing behind.
func TestParkedConnectionHangsUp(t *testing.T) {
	e, c, _ := parkOne(t, time.Minute)
	c.Close()
	waitParked(t, e, 0)
	deadline := time.Now().Add(5 * time.Second)
	for fastConnCount(e) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still tracked after the client hung up", fastConnCount(e))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestParkedConnectionIdleTimeout: a parked connection is closed when its
// idle timeout runs out, as an unparked one would be.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	start := time.Now() // before the connection's one request
	e, c, br := parkOne(t, 400*time.Millisecond)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read on an expired idle connection: %v, want EOF", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("closed after %v idle, before the idle timeout", d)
	}
	waitParked(t, e, 0)
	if n := fastConnCount(e); n != 0 {
		t.Fatalf("%d connections still tracked", n)
	}
}

// TestShutdownClosesParked: a shutdown closes parked connections at once
// and does not wait for them.
func TestShutdownClosesParked(t *testing.T) {
	e, c, br := parkOne(t, time.Minute)
	start := time.Now()
	if err := e.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with a parked connection", d)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("parked connection after shutdown: %v, want EOF", err)
	}
}
