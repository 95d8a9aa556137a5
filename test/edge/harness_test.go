// Package edge_test runs the kubecdn edge binary end to end: the test builds
// `kubecdn` once, starts real origins on loopback (httptest servers it
// controls) and the edge as a child process on free ports, and talks to it
// with real clients (net/http, raw TCP, curl).
//
// Run with `go test ./test/edge/`. Set CI=true to make a missing curl a
// failure instead of a skip, and KUBECDN_BIN=/path/to/kubecdn to test a
// binary built elsewhere instead of building one.
package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// kubecdn is the binary under test, built once by TestMain (set once, read
// only); kubecdn.Start runs an edge of it.
var kubecdn edgetest.Binary

func TestMain(m *testing.M) { edgetest.Main(m, &kubecdn) }

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// newClient is an HTTP client that never uses a proxy and never compresses.
func newClient() *http.Client {
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// result is a response read to its end.
type result struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

// cacheStatus returns our own (last) Cache-Status member.
func (r result) cacheStatus() string {
	vs := r.header.Values("Cache-Status")
	if len(vs) == 0 {
		return ""
	}
	parts := strings.Split(vs[len(vs)-1], ",")
	return strings.TrimSpace(parts[len(parts)-1])
}

// hit reports whether our Cache-Status says hit.
func (r result) hit() bool { return csParam(r.cacheStatus(), "hit") != "" }

// fwd is the fwd parameter of our Cache-Status ("" when absent).
func (r result) fwd() string { return csParam(r.cacheStatus(), "fwd") }

// csParam returns a Cache-Status parameter's value ("?1" for a bare flag).
func csParam(member, name string) string {
	for _, p := range strings.Split(member, ";")[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if k != name {
			continue
		}
		if !ok {
			return "?1"
		}
		return strings.Trim(v, `"`)
	}
	return ""
}

// get requests base+path with the given Host (empty: the URL's) and extra
// header lines, and reads the whole body.
func get(t *testing.T, c *http.Client, base, path, host string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// originReq is what an origin saw of one request.
type originReq struct {
	method, uri string
	header      http.Header
	at          time.Time
}

// origin is a loopback origin that logs every request and delegates to a
// handler the test may swap.
type origin struct {
	*httptest.Server
	mu      sync.Mutex
	log     []originReq
	handler atomic.Pointer[http.HandlerFunc]
	conns   atomic.Int64
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.setHandler(h)
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.log = append(o.log, originReq{method: r.Method, uri: r.URL.RequestURI(), header: r.Header.Clone(), at: time.Now()})
		o.mu.Unlock()
		(*o.handler.Load())(w, r)
	}))
	o.Server.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			o.conns.Add(1)
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	return o
}

func (o *origin) setHandler(h http.HandlerFunc) { o.handler.Store(&h) }

// requests returns the logged requests whose path is path (all if empty).
func (o *origin) requests(path string) []originReq {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []originReq
	for _, r := range o.log {
		p, _, _ := strings.Cut(r.uri, "?")
		if path == "" || p == path {
			out = append(out, r)
		}
	}
	return out
}

func (o *origin) count(path string) int { return len(o.requests(path)) }

// content is the deterministic body of path: n pseudo-random bytes seeded
// by the path, so any byte served can be checked.
func content(path string, n int) []byte {
	seed := sha256.Sum256([]byte(path))
	var key [32]byte
	copy(key[:], seed[:])
	r := rand.NewChaCha8(key)
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// sizeOf is the deterministic size of a path's body for origins that serve
// many objects: from 1 KiB to max.
func sizeOf(path string, max int) int {
	h := sha256.Sum256([]byte("size:" + path))
	return 1024 + int(binary.BigEndian.Uint32(h[:4])%uint32(max-1024))
}

// rawExchange writes req on a new TCP connection, then reads until the
// server closes, nothing arrives for idle, or limit passes. It returns
// everything read.
func rawExchange(t *testing.T, addr string, req []byte, limit time.Duration) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(limit))
	if _, err := c.Write(req); err != nil {
		// The server may close before reading everything (e.g. huge headers).
		t.Logf("write: %v", err)
	}
	const idle = 400 * time.Millisecond
	end := time.Now().Add(limit)
	var out bytes.Buffer
	buf := make([]byte, 32<<10)
	for time.Now().Before(end) {
		d := time.Now().Add(idle)
		if d.After(end) {
			d = end
		}
		_ = c.SetReadDeadline(d)
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return out.Bytes()
}

// statuses parses every HTTP/1.x status line at the start of a response
// (and of each response after a Content-Length body) in raw.
func statuses(raw []byte) []int {
	var codes []int
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		codes = append(codes, resp.StatusCode)
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return codes
		}
		resp.Body.Close()
	}
}

// curlPath returns curl's path; without curl the test is skipped, unless CI
// is "true", where that is a failure.
func curlPath(t *testing.T) string { return e2e.NeedTool(t, "curl", "curl") }

// curl runs curl with args and a time limit; it returns stdout.
func curl(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, curlPath(t), append([]string{"-sS", "--noproxy", "*"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %v: %v: %s", args, err, stderr.String())
	}
	return out
}

// purge posts a purge body to the admin API with the given Authorization
// header value (none if empty).
func purge(t *testing.T, e *edgetest.Edge, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.AdminURL()+"/v1/purge", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
