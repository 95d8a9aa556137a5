package edge

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestListenWaitsForHeldAddress: listen retries an address another socket
// still holds, logs that it waits, and binds it once it is released; an
// address that stays held fails when the context ends.
func TestListenWaitsForHeldAddress(t *testing.T) {
	var logs syncBuffer
	s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil))}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := held.Addr().String()
	go func(held net.Listener) {
		time.Sleep(300 * time.Millisecond)
		held.Close()
	}(held)
	start := time.Now()
	ln, err := s.listen(context.Background(), "public", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ln.Close()
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("bound after %v, while the address was held for 300ms", d)
	}
	if out := logs.String(); !strings.Contains(out, "still in use") || !strings.Contains(out, "free again") {
		t.Errorf("log:\n%s", out)
	}

	held, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.listen(ctx, "public", held.Addr().String()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("listen on a held address until the context ends: %v", err)
	}
	// Other errors are not retried.
	if _, err := s.listen(context.Background(), "public", "192.0.2.1:1"); err == nil || errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("listen on an address not of this host: %v", err)
	}
}

// TestReadyzOnlyWhileServing: /readyz says 503 before Run serves the
// listeners and after it starts draining, 200 in between.
func TestReadyzOnlyWhileServing(t *testing.T) {
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	readyz := func(s *Server) int {
		rec := httptest.NewRecorder()
		s.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code
	}
	s, err := New(Config{Listen: "127.0.0.1:0", Origin: origin.URL}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if code := readyz(s); code != http.StatusServiceUnavailable {
		t.Errorf("before Run: %d", code)
	}
	e := startEdge(t, Config{Origin: origin.URL})
	if code := readyz(e.Server); code != http.StatusOK {
		t.Errorf("while serving: %d", code)
	}
	e.draining.Store(true)
	if code := readyz(e.Server); code != http.StatusServiceUnavailable {
		t.Errorf("draining: %d", code)
	}
	e.draining.Store(false)
}
