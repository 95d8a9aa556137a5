package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// testEdge runs an edge in-process on loopback in front of origin.
type testEdge struct {
	*Server
	url, admin string
	stop       func() error // shuts the edge down; returns Run's error
}

func startEdge(t *testing.T, cfg Config, before ...func(*Server)) *testEdge {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Admin = ln.Addr().String(), aln.Addr().String()
	if cfg.AdminToken == "" {
		cfg.AdminToken = "s3cret"
	}
	s, err := New(cfg, Options{Listener: ln, AdminListener: aln, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Started()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("edge Run: %v", err)
		}
	})
	return &testEdge{Server: s, url: "http://" + ln.Addr().String(), admin: "http://" + aln.Addr().String(), stop: stop}
}

// waitCount waits up to 5 s until get returns n; what names the count.
func waitCount(t *testing.T, what string, get func() int, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for get() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s, want %d", get(), what, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodGet, url, hdr...)
}

func do(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// countingOrigin counts requests per path.
type countingOrigin struct {
	mu    sync.Mutex
	count map[string]int
	reqs  []*http.Request
}

func (o *countingOrigin) n(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count[path]
}

func newOrigin(t *testing.T, h http.HandlerFunc) (*httptest.Server, *countingOrigin) {
	t.Helper()
	co := &countingOrigin{count: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		co.mu.Lock()
		co.count[r.URL.Path]++
		co.reqs = append(co.reqs, r.Clone(context.Background()))
		co.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, co
}

func TestMissThenHit(t *testing.T) {
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"v1"`)
		io.WriteString(w, "hello "+r.URL.Path)
	})
	e := startEdge(t, Config{Origin: origin.URL})
	resp, body := get(t, e.url+"/a")
	if body != "hello /a" || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=uri-miss") || !strings.Contains(resp.Header.Get("Cache-Status"), "stored") {
		t.Fatalf("first: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	resp, body = get(t, e.url+"/a")
	if body != "hello /a" || !strings.HasPrefix(resp.Header.Get("Cache-Status"), "kubecdn; hit") {
		t.Fatalf("second: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	if resp.Header.Get("Age") == "" {
		t.Errorf("hit without Age")
	}
	if co.n("/a") != 1 {
		t.Fatalf("origin saw %d requests, want 1", co.n("/a"))
	}
	// A client with a matching validator gets a 304 from the cache.
	resp, body = get(t, e.url+"/a", "If-None-Match", `"v1"`)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("conditional: %d %q", resp.StatusCode, body)
	}
	// HEAD is served from the cache too.
	resp, body = do(t, http.MethodHead, e.url+"/a")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 8 || co.n("/a") != 1 {
		t.Fatalf("HEAD: %d %q len=%d origin=%d", resp.StatusCode, body, resp.ContentLength, co.n("/a"))
	}
}

func TestVaryStoresVariants(t *testing.T) {
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	})
	e := startEdge(t, Config{Origin: origin.URL})
	for i := 0; i < 2; i++ {
		for _, lang := range []string{"en", "fr"} {
			_, body := get(t, e.url+"/v", "Accept-Language", lang)
			if body != "lang="+lang {
				t.Fatalf("round %d %s: got %q", i, lang, body)
			}
		}
	}
	if co.n("/v") != 2 {
		t.Fatalf("origin saw %d requests, want 2 (one per variant)", co.n("/v"))
	}
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	var version atomic.Int32
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			version.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "v%d", version.Load())
	})
	e := startEdge(t, Config{Origin: origin.URL})
	get(t, e.url+"/doc")
	if _, body := get(t, e.url+"/doc"); body != "v0" {
		t.Fatalf("got %q", body)
	}
	resp, _ := do(t, http.MethodPost, e.url+"/doc")
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=bypass") {
		t.Fatalf("POST: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	if _, body := get(t, e.url+"/doc"); body != "v1" {
		t.Fatalf("after POST got %q, want v1", body)
	}
	if co.n("/doc") != 3 {
		t.Fatalf("origin saw %d requests, want 3", co.n("/doc"))
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	var version atomic.Int32
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=100")
		w.Header().Set("Date", time.Unix(0, clock.Load()).UTC().Format(http.TimeFormat))
		fmt.Fprintf(w, "v%d", version.Add(1))
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	aln, _ := net.Listen("tcp", "127.0.0.1:0")
	s, err := New(Config{Listen: ln.Addr().String(), Admin: aln.Addr().String(), Origin: origin.URL},
		Options{Listener: ln, AdminListener: aln, Logger: quietLog, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	<-s.Started()
	url := "http://" + ln.Addr().String() + "/swr"
	if _, body := get(t, url); body != "v1" {
		t.Fatalf("got %q", body)
	}
	clock.Add(int64(20 * time.Second))
	resp, body := get(t, url)
	if body != "v1" || !strings.Contains(resp.Header.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("stale: %q %q", body, resp.Header.Get("Cache-Status"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for co.n("/swr") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if _, body := get(t, url); body != "v2" {
		t.Fatalf("after background refresh got %q, want v2", body)
	}
	if co.n("/swr") != 2 {
		t.Fatalf("origin saw %d requests, want 2", co.n("/swr"))
	}
}

func TestCoalescedMissesStream(t *testing.T) {
	release := make(chan struct{})
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "56789")
	})
	e := startEdge(t, Config{Origin: origin.URL})
	const n = 200
	firstHalf := make(chan struct{}, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.url + "/slow")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 5)
			if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "01234" {
				errs <- fmt.Errorf("first half %q %v", buf, err)
				return
			}
			firstHalf <- struct{}{}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "56789" {
				errs <- fmt.Errorf("second half %q %v", rest, err)
			}
		}()
	}
	// Every waiter reads the first half while the origin is still holding
	// the second: nobody waits for the whole object.
	for i := 0; i < n; i++ {
		select {
		case <-firstHalf:
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d clients got the first half before the body completed", i, n)
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if co.n("/slow") != 1 {
		t.Fatalf("origin saw %d requests for %d concurrent misses, want 1", co.n("/slow"), n)
	}
}

func TestSlicedRangeFetchesOnlyNeededSlices(t *testing.T) {
	const size = 10<<20 + 123
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i * 7 % 251)
	}
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"big1"`)
		http.ServeContent(w, r, "big.bin", time.Unix(1e9, 0), bytes.NewReader(content))
	})
	e := startEdge(t, Config{Origin: origin.URL, SliceBytes: 1 << 20})
	resp, body := get(t, e.url+"/big.bin", "Range", "bytes=5242880-5242889")
	if resp.StatusCode != http.StatusPartialContent || body != string(content[5242880:5242890]) {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 5242880-5242889/%d", size) {
		t.Fatalf("Content-Range %q", cr)
	}
	co.mu.Lock()
	for _, r := range co.reqs {
		if r.Header.Get("Range") != "bytes=5242880-6291455" {
			t.Errorf("origin got Range %q, want only slice 5", r.Header.Get("Range"))
		}
	}
	co.mu.Unlock()
	// A range across a slice boundary: slice 5 from the cache, slice 6 fetched.
	resp, body = get(t, e.url+"/big.bin", "Range", "bytes=6291450-6291460")
	if resp.StatusCode != http.StatusPartialContent || body != string(content[6291450:6291461]) {
		t.Fatalf("cross-slice range: %d", resp.StatusCode)
	}
	if co.n("/big.bin") != 2 {
		t.Fatalf("origin saw %d requests, want 2 (slices 5 and 6)", co.n("/big.bin"))
	}
	// The tail of the file and a suffix range.
	resp, body = get(t, e.url+"/big.bin", "Range", "bytes=-100")
	if resp.StatusCode != http.StatusPartialContent || body != string(content[size-100:]) {
		t.Fatalf("suffix range: %d len %d", resp.StatusCode, len(body))
	}
	resp, _ = get(t, e.url+"/big.bin", "Range", fmt.Sprintf("bytes=%d-", size+10))
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
		t.Fatalf("unsatisfiable: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	// The whole object, assembled from cached and fetched slices.
	resp, body = get(t, e.url+"/big.bin")
	if resp.StatusCode != 200 || body != string(content) {
		t.Fatalf("whole: %d len %d", resp.StatusCode, len(body))
	}
}

func TestPurge(t *testing.T) {
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Surrogate-Key", "all "+strings.Trim(r.URL.Path, "/"))
		io.WriteString(w, r.URL.Path)
	})
	e := startEdge(t, Config{Origin: origin.URL})
	for _, p := range []string{"/a", "/b", "/c/1"} {
		get(t, e.url+p)
	}
	resp, _ := get(t, e.url+"/a")
	if resp.Header.Get("Surrogate-Key") != "" {
		t.Errorf("Surrogate-Key leaked to the client")
	}
	purge := func(token, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.admin+"/v1/purge", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, _ := purge("", `{"tags":["all"]}`); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := purge("wrong", `{"tags":["all"]}`); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, msg := purge("s3cret", `{"urlz":[]}`); code != 400 || !strings.Contains(msg, "urlz") {
		t.Fatalf("bad body: %d %q", code, msg)
	}
	host := strings.TrimPrefix(e.url, "http://")
	if code, msg := purge("s3cret", `{"urls":["http://`+host+`/a"]}`); code != 200 || msg != `{"purged":1}` {
		t.Fatalf("url purge: %d %q", code, msg)
	}
	get(t, e.url+"/a")
	if co.n("/a") != 2 {
		t.Fatalf("after purge /a fetched %d times, want 2", co.n("/a"))
	}
	if code, msg := purge("s3cret", `{"prefixes":["http://`+host+`/c/"]}`); code != 200 || msg != `{"purged":1}` {
		t.Fatalf("prefix purge: %d %q", code, msg)
	}
	if code, msg := purge("s3cret", `{"tags":["b"],"soft":true}`); code != 200 || msg != `{"purged":1}` {
		t.Fatalf("soft tag purge: %d %q", code, msg)
	}
	resp, _ = get(t, e.url+"/b")
	if !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=") {
		t.Fatalf("after soft purge /b was a hit: %q", resp.Header.Get("Cache-Status"))
	}
	// /c/1 is gone already: the tag finds /a and /b.
	if code, msg := purge("s3cret", `{"tags":["all"]}`); code != 200 || msg != `{"purged":2}` {
		t.Fatalf("tag purge: %d %q", code, msg)
	}
}

func TestRefusals(t *testing.T) {
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") })
	e := startEdge(t, Config{Origin: origin.URL, Hostnames: []string{"www.example.com"}})
	resp, _ := get(t, e.url+"/", "Host", "evil.example")
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("unknown host: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/", nil)
	req.Host = "www.example.com"
	req.Header.Set("CDN-Loop", strings.TrimPrefix(e.url, "http://"))
	r2, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusLoopDetected {
		t.Errorf("loop: %d", r2.StatusCode)
	}
	if n := co.n("/"); n != 0 {
		t.Errorf("origin contacted %d times by refused requests", n)
	}
	resp, body := get(t, e.url+HealthPath)
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("health: %d %q", resp.StatusCode, body)
	}
}

// TestIndexForgetsEvicted: objects that leave the store leave the purge
// index with them (the tiers' OnEvict hook), so it does not grow with every
// URL ever seen; the sweep then finds nothing left to forget.
func TestIndexForgetsEvicted(t *testing.T) {
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Cache-Tag", "t")
		io.WriteString(w, r.URL.Path)
	})
	e := startEdge(t, Config{Origin: origin.URL})
	for i := 0; i < 20; i++ {
		get(t, fmt.Sprintf("%s/o/%d", e.url, i))
	}
	if n := e.index.len(); n != 20 {
		t.Fatalf("index holds %d keys, want 20", n)
	}
	// Remove half behind the edge's back, as the store's own eviction would.
	for i := 0; i < 10; i++ {
		host := strings.TrimPrefix(e.url, "http://")
		e.store.Delete("o:http://" + host + fmt.Sprintf("/o/%d", i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.index.len() != 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := e.index.len(); n != 10 {
		t.Fatalf("index holds %d keys after the store dropped 10, want 10", n)
	}
	if got := e.sweepOnce(100); got != 0 {
		t.Fatalf("sweep forgot %d keys the hook had left behind, want 0", got)
	}
	if got := len(e.index.match(nil, nil, []string{"t"}, false)); got != 10 {
		t.Fatalf("tag t names %d keys, want the 10 still stored", got)
	}
}
