package edge_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// These tests perform the attacks of issue 18 against the edge binary: each
// failed before the fix it names.

// echoOrigin answers every request with what it was told about the client
// (the fields an origin uses to build links and redirects), cacheable for a
// minute and tagged.
func echoOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Surrogate-Key", "page-tag")
		fmt.Fprintf(w, "host=%s proto=%s for=%s forwarded=%s",
			r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded"))
	})
}

// TestClientCannotClaimToBeAnEdge: a client that writes Kubecdn-Hop was
// taken for another edge, so its X-Forwarded-Host reached the origin and
// the reflection was cached for everyone.
func TestClientCannotClaimToBeAnEdge(t *testing.T) {
	const host = "www.test"
	o := echoOrigin(t)
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--hostname", host}})
	c := newClient()
	for _, hop := range []string{"child", "peer", "child; t=1767225600; mac=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		path := "/page-" + strings.Fields(strings.ReplaceAll(hop, ";", " "))[0]
		attack := get(t, c, e.URL(), path, host, "Kubecdn-Hop", hop,
			"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.66")
		if attack.status != 200 {
			t.Fatalf("hop %q: attack request: %d %q", hop, attack.status, attack.body)
		}
		if v := attack.header.Get("Surrogate-Key"); v != "" {
			t.Errorf("hop %q: the client sees the edge-only Surrogate-Key %q", hop, v)
		}
		reqs := o.requests(path)
		if len(reqs) != 1 {
			t.Fatalf("hop %q: origin asked %d times", hop, len(reqs))
		}
		h := reqs[0].header
		if h.Get("X-Forwarded-Host") != host || h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-For") != "127.0.0.1" {
			t.Errorf("hop %q: origin told host=%q proto=%q for=%q, want the edge's own %q http 127.0.0.1",
				hop, h.Get("X-Forwarded-Host"), h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-For"), host)
		}
		clean := get(t, c, e.URL(), path, host)
		if !clean.hit() || strings.Contains(string(clean.body), "evil") || strings.Contains(string(clean.body), "203.0.113.66") {
			t.Errorf("hop %q: a clean client got %q (%s): the cache was poisoned", hop, clean.body, clean.cacheStatus())
		}
	}
}

// TestEdgesTrustEachOtherWithTheHopKey: the same fields from an edge that
// holds the region's key are believed (a child's client, not the child, is
// who the origin hears of), and without a shared key the child is a client.
func TestEdgesTrustEachOtherWithTheHopKey(t *testing.T) {
	const host = "www.test"
	// The client comes from 127.0.0.2; the child from 127.0.0.1.
	client := newClient()
	client.Transport.(*http.Transport).DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext
	for _, tc := range []struct {
		name       string
		childEnv   []string
		wantFor    string
		wantTagged bool
	}{
		{"shared key", nil, "127.0.0.2", true},
		{"other key", []string{"KUBECDN_HOP_KEY=another-key-that-the-parent-lacks"}, "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := echoOrigin(t)
			parent := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
			child := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: []string{"--parent", parent.URL()}, Env: tc.childEnv})
			r := get(t, client, child.URL(), "/shielded", host)
			if r.status != 200 {
				t.Fatalf("through the parent: %d %q", r.status, r.body)
			}
			reqs := o.requests("/shielded")
			if len(reqs) != 1 {
				t.Fatalf("origin asked %d times", len(reqs))
			}
			h := reqs[0].header
			if h.Get("X-Forwarded-Host") != host || h.Get("X-Forwarded-For") != tc.wantFor || h.Get("Kubecdn-Hop") != "" {
				t.Errorf("origin told host=%q for=%q hop=%q", h.Get("X-Forwarded-Host"), h.Get("X-Forwarded-For"), h.Get("Kubecdn-Hop"))
			}
			// The parent passes the tags on only to an edge it trusts, so
			// only then can the child purge by tag.
			code, body := purge(t, child, "Bearer "+edgetest.AdminToken, `{"tags":["page-tag"]}`)
			if purged := strings.Contains(body, `"purged":1`); code != 200 || purged != tc.wantTagged {
				t.Errorf("child purge by tag: %d %s, want purged=%v", code, body, tc.wantTagged)
			}
		})
	}
}

// TestStaleIfErrorSparesPersonalPages: a page stored without a lifetime and
// with Set-Cookie was served, cookie and all, to the next client for 24
// hours once the origin failed.
func TestStaleIfErrorSparesPersonalPages(t *testing.T) {
	var fail atomic.Bool
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "origin broken", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/account":
			w.Header().Set("Set-Cookie", "session=alice-secret")
			fmt.Fprint(w, "alice's account page")
		case "/no-lifetime":
			fmt.Fprint(w, "a page the origin gave no lifetime")
		case "/asset":
			w.Header().Set("Cache-Control", "max-age=1")
			fmt.Fprint(w, "an asset")
		}
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
	c := newClient()
	for _, p := range []string{"/account", "/no-lifetime", "/asset"} {
		if r := get(t, c, e.URL(), p, ""); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	time.Sleep(1200 * time.Millisecond) // the asset expires
	fail.Store(true)
	for _, p := range []string{"/account", "/no-lifetime"} {
		r := get(t, c, e.URL(), p, "")
		if r.status == 200 || strings.Contains(string(r.body), "alice") || r.header.Get("Set-Cookie") != "" {
			t.Errorf("%s with the origin failing: %d %q Set-Cookie %q (%s): another client's page", p, r.status, r.body, r.header.Get("Set-Cookie"), r.cacheStatus())
		}
	}
	// Content with a lifetime still flows while the origin is down.
	if r := get(t, c, e.URL(), "/asset", ""); r.status != 200 || string(r.body) != "an asset" || csParam(r.cacheStatus(), "detail") != "stale-if-error" {
		t.Errorf("asset with the origin failing: %d %q (%s)", r.status, r.body, r.cacheStatus())
	}
}

// TestSlowBodiesHoldNoOriginConnection: POSTs sending a byte a second were
// never cut off and each held an origin connection.
func TestSlowBodiesHoldNoOriginConnection(t *testing.T) {
	const n = 40
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d bytes", len(b))
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
	before := o.conns.Load()
	var wg sync.WaitGroup
	answers := make([]string, n)
	stop := make(chan struct{})
	for i := range n {
		conn, err := net.DialTimeout("tcp", e.Listen, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: www.test\r\nContent-Length: 100\r\n\r\n")
		wg.Add(2)
		go func() { // a byte a second, for at most 20 s
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for range 20 {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			_ = conn.SetReadDeadline(time.Now().Add(25 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				answers[i] = "error: " + err.Error()
				return
			}
			resp.Body.Close()
			answers[i] = resp.Status
		}()
	}
	time.Sleep(3 * time.Second)
	if got := o.conns.Load() - before; got != 0 {
		t.Errorf("%d slow bodies hold %d origin connections after 3 s, want none", n, got)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(25 * time.Second):
	}
	close(stop)
	wg.Wait()
	for i, a := range answers {
		if !strings.HasPrefix(a, "408") {
			t.Errorf("slow body %d: %q, want 408", i, a)
			break
		}
	}
	if got := o.conns.Load() - before; got != 0 {
		t.Errorf("slow bodies opened %d origin connections", got)
	}
	// An honest upload still goes through.
	req, _ := http.NewRequest(http.MethodPost, e.URL()+"/upload", bytes.NewReader(bytes.Repeat([]byte("y"), 3<<20)))
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprintf("got %d bytes", 3<<20) {
		t.Errorf("3 MiB upload: %d %q", resp.StatusCode, b)
	}
	e.MustBeHealthy(t)
}

// TestDotSegmentsStayUnderTheBase: "/../secret" reached an origin with a
// base path as "/base/../secret", above the base.
func TestDotSegmentsStayUnderTheBase(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "path %s", r.URL.RequestURI())
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL + "/base"})
	for _, target := range []string{"/../secret", "/%2e%2e/secret", "/%2E%2e/secret", "/a/../../secret", "/./secret", "/x/..%2fsecret"} {
		raw := rawExchange(t, e.Listen, []byte("GET "+target+" HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n"), 5*time.Second)
		if codes := statuses(raw); len(codes) != 1 {
			t.Errorf("%s: answers %v", target, codes)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.log {
		p, _, _ := strings.Cut(r.uri, "?")
		if !strings.HasPrefix(p, "/base/") {
			t.Errorf("origin asked for %q, outside /base", r.uri)
		}
		for _, seg := range strings.Split(strings.ReplaceAll(strings.ToLower(p), "%2e", "."), "/") {
			if seg == ".." || seg == "." {
				t.Errorf("origin asked for %q, with a dot segment", r.uri)
			}
		}
	}
	if n := len(o.log); n != 2 {
		// "/secret" once, then every spelling of it a hit on one key;
		// "/x/..%2fsecret" is a name of its own.
		t.Errorf("origin asked %d times, want 2 (one key for every spelling of /secret)", n)
	}
}

// TestDotSegmentsOnTheFastPath: a fresh object under its normal name is
// what every spelling with dot segments gets, on the fast path's
// connection too.
func TestDotSegmentsOnTheFastPath(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "path %s", r.URL.RequestURI())
	})
	e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
	c := newClient()
	for range 2 {
		get(t, c, e.URL(), "/b/x", "www.test")
	}
	raw := rawExchange(t, e.Listen, []byte("GET /b/x HTTP/1.1\r\nHost: www.test\r\n\r\nGET /a/../b/x HTTP/1.1\r\nHost: www.test\r\n\r\nGET /b/%2e/x HTTP/1.1\r\nHost: www.test\r\nConnection: close\r\n\r\n"), 5*time.Second)
	if codes := statuses(raw); len(codes) != 3 || bytes.Count(raw, []byte("path /b/x")) != 3 {
		t.Errorf("answers %v:\n%s", codes, raw)
	}
	if n := o.count(""); n != 1 {
		t.Errorf("origin asked %d times, want 1", n)
	}
}

// TestForwardingFieldsDropped: Forwarded, X-Forwarded-Port/-Prefix/
// -Server, X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override, X-Host,
// X-Original-Host and underscore spellings reached the origin, unkeyed; a
// field can be passed by name.
func TestForwardingFieldsDropped(t *testing.T) {
	dropped := []string{"Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Original-URL",
		"X-Rewrite-URL", "X-HTTP-Method-Override", "X-Host", "X-Original-Host", "X_Forwarded_Host", "X_Forwarded_Proto", "X-Real-IP"}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
	})
	var req bytes.Buffer
	req.WriteString("GET /fields HTTP/1.1\r\nHost: www.test\r\nX-Kept: yes\r\n")
	for _, n := range dropped {
		fmt.Fprintf(&req, "%s: evil.example\r\n", n)
	}
	req.WriteString("Connection: close\r\n\r\n")
	var passing *edgetest.Edge
	for i, args := range [][]string{nil, {"--pass-header", "X-Forwarded-Prefix", "--pass-header", "X_Forwarded_Host"}} {
		ed := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Args: args})
		if i == 1 {
			passing = ed
		}
		before := len(o.requests("/fields"))
		if codes := statuses(rawExchange(t, ed.Listen, req.Bytes(), 5*time.Second)); len(codes) != 1 || codes[0] != 200 {
			t.Fatalf("answers %v", codes)
		}
		reqs := o.requests("/fields")
		if len(reqs) != before+1 {
			t.Fatalf("origin asked %d times", len(reqs)-before)
		}
		h := reqs[before].header
		if h.Get("X-Kept") != "yes" {
			t.Errorf("an ordinary field was dropped: %v", h)
		}
		for _, n := range dropped {
			want := ed == passing && (n == "X-Forwarded-Prefix" || n == "X_Forwarded_Host")
			got := false
			for k, vs := range h {
				if strings.EqualFold(k, n) && len(vs) > 0 && vs[0] == "evil.example" {
					got = true
				}
			}
			if got != want {
				t.Errorf("edge %s: %s reached the origin: %v, want %v", ed.Listen, n, got, want)
			}
		}
	}
}

// TestOriginHostPreserveNeedsHostnames: --origin-host preserve without
// --hostname let any client pick any virtual host of the origin.
func TestOriginHostPreserveNeedsHostnames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubecdn.Path, "edge", "--listen", e2e.FreeAddr(t), "--admin", e2e.FreeAddr(t), "--origin", "http://127.0.0.1:9", "--origin-host", "preserve")
	b, err := cmd.CombinedOutput()
	out := string(b)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out, "originHost") {
		t.Errorf("edge with --origin-host preserve and no --hostname: %v\n%s", err, out)
	}
}
