// Package edgetest runs `kubecdn edge` as a child process for the end to end
// tests (test/edge, test/tls): it builds the binary once per test package,
// starts an edge on free loopback ports with the flags a test gives, waits
// until it serves, hands out its addresses and URLs, and kills it when the
// test ends, logging its output when the test failed.
package edgetest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
)

// AdminToken is the bearer token of every edge the harness starts
// (KUBECDN_ADMIN_TOKEN): purge and the other admin calls need it.
const AdminToken = "e2e-secret-token"

// HopKey is the hop key every edge the harness starts shares
// (KUBECDN_HOP_KEY), as a region's edges do: they authenticate their
// requests to each other with it.
const HopKey = "e2e-hop-key-shared-by-the-region"

// ReadyWithin is how long Start waits for a new edge to serve.
const ReadyWithin = 10 * time.Second

// Binary is the kubecdn binary under test.
type Binary struct {
	// Path of the executable; Main sets it.
	Path string
}

// Main builds the kubecdn binary (or takes $KUBECDN_BIN) into b, runs the
// package's tests and exits. Call it from TestMain.
func Main(m *testing.M, b *Binary) { e2e.Main(m, &b.Path) }

// Options describe one edge process. Empty addresses mean free loopback
// ports.
type Options struct {
	// Origin is --origin; if empty, none is passed (the origin comes from
	// --config).
	Origin string
	// Listen and Admin are --listen and --admin.
	Listen, Admin string
	// TLS adds --tls-listen on a free loopback port; the edge is ready once
	// that listener accepts too.
	TLS bool
	// CacheDir is --cache-dir when set.
	CacheDir string
	// Args are more flags, after the ones above.
	Args []string
	// Env is more environment, after the test process's own and the
	// harness's tokens; a later entry wins, so Env may replace a token.
	Env []string
}

// Edge is a running `kubecdn edge`.
type Edge struct {
	// Listen, Admin and TLS are the host:port of the public, admin and
	// HTTPS listeners (TLS is empty without Options.TLS).
	Listen, Admin, TLS string

	t      testing.TB
	cmd    *exec.Cmd
	out    *e2e.SyncBuffer
	exited chan struct{}
	err    error // the Wait error, once exited is closed
}

// Start starts an edge and waits until it serves (see WaitReady); an edge
// that exits or does not serve within ReadyWithin fails the test.
func (b Binary) Start(t testing.TB, o Options) *Edge {
	t.Helper()
	e := b.Launch(t, o)
	if err := e.WaitReady(ReadyWithin); err != nil {
		t.Fatalf("edge not ready: %v\n%s", err, tail(e.Output(), 4000))
	}
	return e
}

// Launch starts an edge without waiting for it. The edge is killed when
// the test ends.
func (b Binary) Launch(t testing.TB, o Options) *Edge {
	t.Helper()
	e := &Edge{t: t, Listen: o.Listen, Admin: o.Admin, out: &e2e.SyncBuffer{}, exited: make(chan struct{})}
	if e.Listen == "" {
		e.Listen = e2e.FreeAddr(t)
	}
	if e.Admin == "" {
		e.Admin = e2e.FreeAddr(t)
	}
	args := []string{"edge", "--listen", e.Listen, "--admin", e.Admin}
	if o.TLS {
		e.TLS = e2e.FreeAddr(t)
		args = append(args, "--tls-listen", e.TLS)
	}
	if o.Origin != "" {
		args = append(args, "--origin", o.Origin)
	}
	if o.CacheDir != "" {
		args = append(args, "--cache-dir", o.CacheDir)
	}
	e.cmd = exec.Command(b.Path, append(args, o.Args...)...)
	e.cmd.Env = append(append(os.Environ(), "KUBECDN_ADMIN_TOKEN="+AdminToken, "KUBECDN_HOP_KEY="+HopKey), o.Env...)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("starting edge: %v", err)
	}
	go func() {
		e.err = e.cmd.Wait()
		close(e.exited)
	}()
	t.Cleanup(func() {
		if e.Alive() {
			e.Kill()
		}
		if t.Failed() {
			t.Logf("edge %s output (tail):\n%s", e.Listen, tail(e.Output(), 4000))
		}
	})
	return e
}

// URL is the public base URL, e.g. http://127.0.0.1:1234.
func (e *Edge) URL() string { return "http://" + e.Listen }

// AdminURL is the admin listener's base URL.
func (e *Edge) AdminURL() string { return "http://" + e.Admin }

// Output is everything the edge wrote to stdout and stderr so far.
func (e *Edge) Output() string { return e.out.String() }

// Pid is the edge's process id.
func (e *Edge) Pid() int { return e.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (e *Edge) Exited() <-chan struct{} { return e.exited }

// Alive reports whether the process still runs.
func (e *Edge) Alive() bool {
	select {
	case <-e.exited:
		return false
	default:
		return true
	}
}

// Err is how the process ended (nil for exit status 0, and while it runs).
func (e *Edge) Err() error {
	select {
	case <-e.exited:
		return e.err
	default:
		return nil
	}
}

// WaitReady polls the reserved health path on the public listener until it
// answers 200, then, with TLS, until the HTTPS listener accepts. The edge
// must not exit meanwhile.
func (e *Edge) WaitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	if err := e.poll(e.URL()+"/.well-known/kubecdn/health", deadline); err != nil {
		return err
	}
	for e.TLS != "" {
		if !e.Alive() {
			return fmt.Errorf("edge exited: %v", e.err)
		}
		c, err := net.DialTimeout("tcp", e.TLS, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("https listener not up: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// WaitReadyz polls the admin listener's /readyz until it answers 200, as a
// load balancer's readiness probe would; the edge must not exit meanwhile.
func (e *Edge) WaitReadyz(limit time.Duration) error {
	return e.poll(e.AdminURL()+"/readyz", time.Now().Add(limit))
}

// poll GETs url every 20ms, on a new connection each time, until it
// answers 200 or deadline passes.
func (e *Edge) poll(url string, deadline time.Time) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for time.Now().Before(deadline) {
		if !e.Alive() {
			return fmt.Errorf("edge exited: %v", e.err)
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 in time", url)
}

// MustBeHealthy fails the test unless the edge still runs and answers its
// reserved health path with 200.
func (e *Edge) MustBeHealthy(t testing.TB) {
	t.Helper()
	if !e.Alive() {
		t.Fatalf("edge process died: %v", e.err)
	}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(e.URL() + "/.well-known/kubecdn/health")
	if err != nil {
		t.Fatalf("health: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health: status %d", resp.StatusCode)
	}
}

// Metric scrapes the admin /metrics and returns the value of a metric
// without labels (0 when absent).
func (e *Edge) Metric(t testing.TB, name string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(e.AdminURL() + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == name {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", name, v, err)
			}
			return f
		}
	}
	return 0
}

// Signal sends sig to the edge.
func (e *Edge) Signal(sig os.Signal) {
	e.t.Helper()
	if err := e.cmd.Process.Signal(sig); err != nil {
		e.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Stop sends SIGTERM and waits for the exit; it returns how the process
// ended, and fails the test when it does not exit within limit.
func (e *Edge) Stop(limit time.Duration) error {
	e.t.Helper()
	e.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		return e.err
	case <-time.After(limit):
		e.t.Fatalf("edge did not exit within %v of SIGTERM", limit)
		return nil
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (e *Edge) Kill() {
	_ = e.cmd.Process.Kill()
	<-e.exited
}

// WaitExit waits up to limit for the edge to exit by itself and returns its
// exit code.
func (e *Edge) WaitExit(limit time.Duration) (int, error) {
	select {
	case <-e.exited:
	case <-time.After(limit):
		return 0, errors.New("edge still running")
	}
	var ee *exec.ExitError
	if errors.As(e.err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, e.err
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
