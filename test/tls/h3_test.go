package tls_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/quic-go/quic-go/http3"

	"github.com/kubecdn/kubecdn/test/e2e"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// pageOrigin serves a page and the three assets it loads.
func pageOrigin(t *testing.T) *httptest.Server {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `<!doctype html><html><head><link rel="stylesheet" href="/style.css"><script src="/app.js"></script></head>`+
				`<body><img src="/dot.svg" width="8" height="8"><p id="x">page</p></body></html>`)
		case "/style.css":
			w.Header().Set("Content-Type", "text/css")
			io.WriteString(w, "body{margin:0}")
		case "/app.js":
			w.Header().Set("Content-Type", "text/javascript")
			io.WriteString(w, "window.appLoaded=true;")
		case "/dot.svg":
			w.Header().Set("Content-Type", "image/svg+xml")
			io.WriteString(w, `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(o.Close)
	return o
}

// spkiHash is the base64 SHA-256 of the certificate's public key in
// certFile, as Chromium's --ignore-certificate-errors-spki-list takes it
// (QUIC in Chromium needs a certificate it trusts).
func spkiHash(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

type navEntry struct {
	Name     string `json:"name"`
	Protocol string `json:"nextHopProtocol"`
}

// TestChromiumLoadsPageOverHTTP3: Chromium, with QUIC forced to the edge's
// TLS port, loads a page and its assets through the edge, and the page's
// performance entries report h3 for each; a reload is served from the
// edge's cache over HTTP/3.
func TestChromiumLoadsPageOverHTTP3(t *testing.T) {
	bin := e2e.NeedTool(t, "chromium", "chromium")
	p := newPKI(t, "www.example.com")
	e := kubecdn.Start(t, edgetest.Options{Origin: pageOrigin(t).URL, TLS: true, Args: p.certArgs("www.example.com")})
	_, port, _ := net.SplitHostPort(e.TLS)
	hostPort := "www.example.com:" + port

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("enable-quic", true),
		chromedp.Flag("origin-to-force-quic-on", hostPort),
		chromedp.Flag("host-resolver-rules", "MAP www.example.com 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(t, p.files["www.example.com"][0])))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(ctx, 60*time.Second)
	defer cancelRun()

	const entries = `JSON.stringify(performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => ({name: e.name, nextHopProtocol: e.nextHopProtocol})))`
	load := func() []navEntry {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.Navigate("https://"+hostPort+"/"),
			chromedp.Poll[chromedp.Void](`document.readyState === "complete" && performance.getEntriesByType('resource').length >= 3`,
				chromedp.WithPollingInterval(50*time.Millisecond)))
		var raw string
		var loaded bool
		if err == nil {
			loaded, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`window.appLoaded === true`))
		}
		if err == nil {
			raw, err = chromedp.Run(ctx, chromedp.Evaluate[string](entries))
		}
		if err != nil {
			t.Fatalf("chromium: %v\nedge output:\n%s", err, e.Output())
		}
		var got []navEntry
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatal(err)
		}
		if !loaded {
			t.Errorf("app.js did not run")
		}
		return got
	}
	check := func(round string, got []navEntry) {
		t.Helper()
		names := map[string]bool{}
		for _, g := range got {
			names[strings.TrimPrefix(g.Name, "https://"+hostPort)] = true
			if g.Protocol != "h3" {
				t.Errorf("%s: %s came over %q, want h3", round, g.Name, g.Protocol)
			}
		}
		for _, want := range []string{"/", "/style.css", "/app.js", "/dot.svg"} {
			if !names[want] {
				t.Errorf("%s: no performance entry for %s in %v", round, want, got)
			}
		}
	}
	check("first load", load())
	// Again with the browser's cache emptied (turning it off would send
	// no-cache, which the edge honours): the edge answers from its own,
	// over HTTP/3.
	before := e.Metric(t, `kubecdn_edge_requests_total{cache="hit"}`)
	if _, err := chromedp.Call(ctx, network.ClearBrowserCache, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	check("second load", load())
	if hits := e.Metric(t, `kubecdn_edge_requests_total{cache="hit"}`) - before; hits < 4 {
		t.Errorf("second load: %v cache hits at the edge, want 4", hits)
	}
	if h3 := e.Metric(t, `kubecdn_edge_protocol_requests_total{proto="h3"}`); h3 < 8 {
		t.Errorf("the edge counted %v HTTP/3 requests, want at least 8", h3)
	}
}

// TestHTTP3ClientAgainstBinary: the kubecdn binary serves HTTP/3 where it
// serves TLS, advertises it, and answers a hit over it.
func TestHTTP3ClientAgainstBinary(t *testing.T) {
	p := newPKI(t, "www.example.com")
	e := kubecdn.Start(t, edgetest.Options{Origin: origin(t).URL, TLS: true, Args: p.certArgs("www.example.com")})
	_, port, _ := net.SplitHostPort(e.TLS)
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool(), ServerName: "www.example.com"}, ForceAttemptHTTP2: true}}
	resp, _ := get(t, h2, "https://"+e.TLS+"/alt", "www.example.com")
	if want := fmt.Sprintf(`h3=":%s"; ma=86400`, port); resp.Header.Get("Alt-Svc") != want {
		t.Fatalf("Alt-Svc %q, want %q", resp.Header.Get("Alt-Svc"), want)
	}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool(), ServerName: "www.example.com"}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := range 2 {
		resp, body := get(t, c, "https://"+e.TLS+"/alt", "www.example.com")
		if resp.ProtoMajor != 3 || body != "content of /alt" || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Fatalf("request %d over HTTP/3: %s %q, Cache-Status %q", i, resp.Proto, body, resp.Header.Get("Cache-Status"))
		}
	}
}
