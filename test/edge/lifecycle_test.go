package edge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// TestReloadOnSIGHUP changes the origin in the --config file and sends
// SIGHUP: the new origin is used and open connections stay up. A bad file on
// SIGHUP is refused and the running configuration keeps serving.
func TestReloadOnSIGHUP(t *testing.T) {
	serve := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, name)
		}
	}
	one, two := newOrigin(t, serve("one")), newOrigin(t, serve("two"))
	listen, admin := e2e.FreeAddr(t), e2e.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "edge.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := func(origin string) string {
		return fmt.Sprintf("listen: %s\nadmin: %s\norigin: %s\nhostnames: [www.example.com]\n", listen, admin, origin)
	}
	write(good(one.URL))
	e := kubecdn.Start(t, edgetest.Options{Listen: listen, Admin: admin, Args: []string{"--config", cfg}})

	// A client with one kept-alive connection, and a raw connection.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxConnsPerHost: 1}}
	var reused, fresh int
	fetch := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.URL()+"/which", nil)
		req.Host = "www.example.com"
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused++
				} else {
					fresh++
				}
			},
		}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	raw, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rawBR := bufio.NewReader(raw)
	rawFetch := func() string {
		t.Helper()
		_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(raw, "GET /which HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
		resp, err := http.ReadResponse(rawBR, nil)
		if err != nil {
			t.Fatalf("raw connection after reload: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	if got := fetch(); got != "200 one" {
		t.Fatalf("before reload: %q", got)
	}
	if got := rawFetch(); got != "200 one" {
		t.Fatalf("raw before reload: %q", got)
	}

	write(good(two.URL))
	e.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(3 * time.Second)
	for fetch() != "200 two" {
		if time.Now().After(deadline) {
			t.Fatalf("the new origin is not used 3 s after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	oneAfter := one.count("/which")
	if got := rawFetch(); got != "200 two" {
		t.Errorf("raw connection opened before the reload: %q", got)
	}
	if fresh != 1 {
		t.Errorf("the client opened %d connections (reused %d times): connections did not stay up", fresh, reused)
	}

	// Bad files are refused; "two" keeps serving.
	bad := []struct{ name, body string }{
		{"not yaml", "listen: [\n"},
		{"unknown field", good(two.URL) + "colour: blue\n"},
		{"bad origin", fmt.Sprintf("listen: %s\nadmin: %s\norigin: ftp://nowhere\n", listen, admin)},
		{"bad size", good(two.URL) + "memory: lots\n"},
		{"empty", ""},
	}
	for _, b := range bad {
		write(b.body)
		e.Signal(syscall.SIGHUP)
		time.Sleep(150 * time.Millisecond)
		if !e.Alive() {
			t.Fatalf("%s: the edge exited on a bad reload: %v", b.name, e.Err())
		}
		if got := fetch(); got != "200 two" {
			t.Errorf("%s: after a refused reload: %q, want the old configuration (200 two)", b.name, got)
		}
	}
	if got := rawFetch(); got != "200 two" {
		t.Errorf("raw connection after bad reloads: %q", got)
	}
	if n := bytes.Count([]byte(e.Output()), []byte("reload refused")); n != len(bad) {
		t.Errorf("the log says %q %d times, want %d", "reload refused", n, len(bad))
	}
	if n := one.count("/which"); n != oneAfter {
		t.Errorf("the old origin saw %d requests after the reload took effect", n-oneAfter)
	}
}

// TestGracefulShutdown sends SIGTERM while a slow response is in flight: the
// response completes, and the edge then exits cleanly.
func TestGracefulShutdown(t *testing.T) {
	const size = 128 << 10
	body := content("/slow", size)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body[:size/2])
		w.(http.Flusher).Flush()
		time.Sleep(1500 * time.Millisecond)
		w.Write(body[size/2:])
	})
	for _, path := range []string{"/slow", "/slow?cacheable=no"} {
		e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
		resp, err := newClient().Get(e.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, size)
		if _, err := io.ReadFull(resp.Body, got[:1024]); err != nil {
			t.Fatalf("first bytes: %v", err)
		}
		e.Signal(syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond)
		// New connections are no longer accepted while draining.
		if c, err := net.DialTimeout("tcp", e.Listen, time.Second); err == nil {
			c.Close()
			t.Errorf("%s: the listener still accepts connections after SIGTERM", path)
		}
		_, err = io.ReadFull(resp.Body, got[1024:])
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: in-flight response after SIGTERM: err %v, equal %v", path, err, bytes.Equal(got, body))
		}
		select {
		case <-e.Exited():
			if e.Err() != nil {
				t.Errorf("%s: exit after SIGTERM: %v, want 0", path, e.Err())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: edge still running 10 s after SIGTERM", path)
		}
	}
}
