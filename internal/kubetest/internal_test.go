package kubetest

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLogWriter(t *testing.T) {
	var lines []string
	w := &logWriter{f: mustTemp(t), onLine: func(l string) { lines = append(lines, l) }}
	for _, chunk := range []string{"one\ntw", "o\n", "three\nfour"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(lines, ","); got != "one,two,three" {
		t.Errorf("lines %q, want one,two,three", got)
	}
	if got := w.lastLines(); got != "    one\n    two\n    three\n    four\n" {
		t.Errorf("last lines %q", got)
	}
	if !w.contains("fou") || w.contains("five") {
		t.Error("contains")
	}
	for range 2 * tailLines {
		w.Write([]byte(strings.Repeat("x", 500) + "\n"))
	}
	last := strings.Split(strings.TrimSuffix(w.lastLines(), "\n"), "\n")
	if len(last) != tailLines || len(last[0]) > 410 {
		t.Errorf("tail: %d lines, first %d bytes; want %d lines cut to 400 bytes", len(last), len(last[0]), tailLines)
	}
}

func mustTemp(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPortTaken: an API server whose port was taken in between reports
// errPortTaken, which Start answers with another port.
func TestPortTaken(t *testing.T) {
	c := &Cluster{Name: "taken", bin: Binaries(t), dir: t.TempDir()}
	t.Cleanup(c.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := newPKI(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := c.startEtcd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	err = c.startAPIServer(ctx, p, etcd, ln.Addr().(*net.TCPAddr).Port)
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("got %v, want errPortTaken", err)
	}
	t.Logf("failed in %v", time.Since(start))
}
