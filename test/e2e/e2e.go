// Package e2e holds what the end-to-end test packages under test/ share:
// building the kubecdn binary once per package, free loopback ports, tools
// that CI must have, and a buffer for a child's output.
package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Main builds the kubecdn binary into a temporary directory (or takes
// $KUBECDN_BIN, a binary built elsewhere), stores its path in *bin, runs the
// package's tests and exits. Call it from TestMain.
func Main(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "kubecdn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tempdir:", err)
		os.Exit(1)
	}
	*bin = os.Getenv("KUBECDN_BIN")
	if *bin == "" {
		*bin = filepath.Join(dir, "kubecdn")
		build := exec.Command("go", "build", "-o", *bin, "github.com/kubecdn/kubecdn/cmd/kubecdn")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building kubecdn:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// handedOut remembers the ports FreeAddr gave this test binary: a port is
// free again as soon as FreeAddr closes its probe, and the kernel may offer
// it twice in a row, which would give one edge the same port for two
// listeners.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago and that no earlier call of this test binary returned.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t, "127.0.0.1")))
}

// FreePort returns a port free on ip a moment ago that no earlier call of
// this test binary returned (for any ip).
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatalf("free port on %s: %v", ip, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatalf("free port on %s: no new port in 100 tries", ip)
	return 0
}

// NeedTool returns the path of a command-line tool; without it the test is
// skipped, except when CI=true, where that is a failure (CI installs it).
func NeedTool(t testing.TB, name, debianPkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found and CI=true: install Debian's %s", name, debianPkg)
		}
		t.Skipf("%s not found: apt-get install %s to run this test", name, debianPkg)
	}
	return p
}

// SyncBuffer collects a child's output from several pipes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SilentListener accepts TCP connections on loopback and never reads or
// writes a byte: an API server that hangs before HTTP.
func SilentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// AdminDo sends method to path on the admin listener at addr (host:port)
// with the bearer token (none if empty) and body, and returns the status
// and the body read.
func AdminDo(t testing.TB, addr, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
