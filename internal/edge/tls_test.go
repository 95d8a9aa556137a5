package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/certs/certstest"
)

// tlsFixture is a test CA with certificates for two hostnames.
type tlsFixture struct {
	ca    *certstest.CA
	dir   string
	certs []TLSCert
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	f := &tlsFixture{ca: certstest.NewCA(t, "edge test ca"), dir: t.TempDir()}
	for _, n := range []string{"www.example.com", "img.example.com"} {
		c, k := f.ca.Issue(t, []string{n}, time.Time{}, time.Time{}).Write(t, f.dir, n)
		f.certs = append(f.certs, TLSCert{Cert: c, Key: k})
	}
	return f
}

func (f *tlsFixture) client(sni string, h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: f.ca.Pool(), ServerName: sni},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, url, host string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func cachedOrigin(t *testing.T) *httptest.Server {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "body of %s", r.URL.Path)
	}))
	t.Cleanup(o.Close)
	return o
}

func TestHTTPSServesHTTP2WithCaching(t *testing.T) {
	f := newTLSFixture(t)
	o := cachedOrigin(t)
	e := startEdge(t, Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs, HSTSMaxAge: 24 * time.Hour})
	base := "https://" + e.TLSAddr().String()
	for _, h2 := range []bool{true, false} {
		c := f.client("img.example.com", h2)
		path := fmt.Sprintf("/a-%v", h2)
		resp, body := fetch(t, c, base+path, "img.example.com")
		wantProto := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]
		if resp.Proto != wantProto || resp.StatusCode != 200 || body != "body of "+path {
			t.Fatalf("h2=%v: %s %d %q", h2, resp.Proto, resp.StatusCode, body)
		}
		if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "img.example.com" {
			t.Errorf("SNI img.example.com served the certificate of %s", got)
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=86400" {
			t.Errorf("HSTS = %q", got)
		}
		resp, _ = fetch(t, c, base+path, "img.example.com")
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
			t.Errorf("h2=%v second request: Cache-Status %q, want a hit", h2, cs)
		}
	}
	// No HSTS on plain HTTP.
	resp, _ := get(t, e.url+"/plain")
	if resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("HSTS sent over plain HTTP")
	}
}

func TestTLSPolicyRefusesOldClients(t *testing.T) {
	f := newTLSFixture(t)
	e := startEdge(t, Config{Origin: cachedOrigin(t).URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	addr := e.TLSAddr().String()
	for _, tc := range []struct {
		name     string
		min, max uint16
		suites   []uint16
		ok       bool
	}{
		{"tls1.3", tls.VersionTLS13, 0, nil, true},
		{"tls1.2 ecdhe gcm", 0, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"tls1.1", tls.VersionTLS10, tls.VersionTLS11, nil, false},
		{"tls1.2 cbc only", 0, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{MinVersion: tc.min, MaxVersion: tc.max, CipherSuites: tc.suites, RootCAs: f.ca.Pool(), ServerName: "www.example.com"}
			c, err := tls.Dial("tcp", addr, cfg)
			if c != nil {
				c.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("handshake error %v, want success=%v", err, tc.ok)
			}
		})
	}
}

// TestTicketKeysShared: a session made with one edge resumes on another
// edge of the region when both read the same ticket key file, and not
// otherwise.
func TestTicketKeysShared(t *testing.T) {
	f := newTLSFixture(t)
	o := cachedOrigin(t)
	keyFile := filepath.Join(t.TempDir(), "tickets")
	keys := make([]byte, 64)
	for i := range keys {
		keys[i] = byte(i * 7)
	}
	os.WriteFile(keyFile, keys, 0o600)
	cfg := Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs, TLSTicketKeyFile: keyFile}
	a, b := startEdge(t, cfg), startEdge(t, cfg)
	cfg.TLSTicketKeyFile = ""
	lone := startEdge(t, cfg)
	resumes := func(first, second *testEdge) bool {
		cache := tls.NewLRUClientSessionCache(4)
		cc := &tls.Config{RootCAs: f.ca.Pool(), ServerName: "www.example.com", ClientSessionCache: cache}
		for i, e := range []*testEdge{first, second} {
			c, err := tls.Dial("tcp", e.TLSAddr().String(), cc)
			if err != nil {
				t.Fatal(err)
			}
			// TLS 1.3 tickets arrive after the handshake: read a response.
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n", HealthPath)
			io.Copy(io.Discard, bufio.NewReader(c))
			st := c.ConnectionState()
			c.Close()
			if i == 1 {
				return st.DidResume
			}
		}
		return false
	}
	if !resumes(a, a) {
		t.Errorf("no resumption on the same edge")
	}
	if !resumes(a, b) {
		t.Errorf("no resumption across edges sharing a ticket key file")
	}
	if resumes(a, lone) {
		t.Errorf("resumed on an edge with its own random keys")
	}
}

func TestHTTPSRedirect(t *testing.T) {
	f := newTLSFixture(t)
	o := cachedOrigin(t)
	const hopKey = "redirect-test-hop-key"
	cfg := Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs, HopKeys: []string{hopKey}}
	e := startEdge(t, cfg)
	// Warm the plain cache, so the fast path would serve it.
	get(t, e.url+"/x?q=1", "Host", "www.example.com")
	if resp, _ := get(t, e.url+"/x?q=1", "Host", "www.example.com"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("not cached: %q", resp.Header.Get("Cache-Status"))
	}
	cfg.Listen, cfg.Admin, cfg.AdminToken = e.rt.Load().cfg.Listen, e.rt.Load().cfg.Admin, "s3cret"
	cfg.HTTPSRedirect = []string{"WWW.example.com"}
	if err := e.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(e.TLSAddr().String())
	for _, tc := range []struct {
		name, host, hop, wantLoc string
		want                     int
	}{
		{"redirected host", "www.example.com", "", "https://www.example.com:" + port + "/x?q=1", 308},
		{"with port", "www.example.com:80", "", "https://www.example.com:" + port + "/x?q=1", 308},
		{"other host", "img.example.com", "", "", 200},
		{"from a peer", "www.example.com", signHop([]byte(hopKey), "peer", time.Now(), "GET", "www.example.com", "/x?q=1", http.Header{}), "", 200},
		// Anyone can write the field: without the MAC it is a client.
		{"claiming to be a peer", "www.example.com", "peer", "https://www.example.com:" + port + "/x?q=1", 308},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Raw HTTP/1.1 so the fast path sees it first.
			c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hop := ""
			if tc.hop != "" {
				hop = "Kubecdn-Hop: " + tc.hop + "\r\n"
			}
			fmt.Fprintf(c, "GET /x?q=1 HTTP/1.1\r\nHost: %s\r\n%s\r\n", tc.host, hop)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want || resp.Header.Get("Location") != tc.wantLoc {
				t.Errorf("got %d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tc.want, tc.wantLoc)
			}
		})
	}
	// HTTPS requests for the host are served, not redirected.
	resp, _ := fetch(t, f.client("www.example.com", true), "https://"+e.TLSAddr().String()+"/x", "www.example.com")
	if resp.StatusCode != 200 {
		t.Errorf("https: status %d", resp.StatusCode)
	}
}

func TestRedirectPort(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{TLSListen: ":443"}, ""},
		{Config{TLSListen: "127.0.0.1:8443"}, "8443"},
		{Config{TLSListen: "127.0.0.1:8443", HTTPSPort: 443}, ""},
		{Config{TLSListen: "127.0.0.1:8443", HTTPSPort: 9443}, "9443"},
	} {
		if got := redirectPort(tc.cfg); got != tc.want {
			t.Errorf("redirectPort(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

// TestUpstreamTLS: an https origin is verified against the system roots
// plus OriginCA, with SNI set to the origin URL's host.
func TestUpstreamTLS(t *testing.T) {
	f := newTLSFixture(t)
	stranger := certstest.NewCA(t, "untrusted ca")
	caFile := f.ca.WriteCA(t, f.dir, "ca.pem")
	var mu sync.Mutex
	var snis []string
	newOrigin := func(ca *certstest.CA) *httptest.Server {
		o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "secure origin")
		}))
		o.TLS = &tls.Config{
			Certificates: []tls.Certificate{ca.Issue(t, []string{"origin.test"}, time.Time{}, time.Time{}).TLSCertificate(t)},
			GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				mu.Lock()
				snis = append(snis, h.ServerName)
				mu.Unlock()
				return nil, nil
			},
		}
		o.Config.ErrorLog = log.New(io.Discard, "", 0)
		o.StartTLS()
		t.Cleanup(o.Close)
		return o
	}
	trusted, untrusted := newOrigin(f.ca), newOrigin(stranger)
	for _, tc := range []struct {
		name   string
		origin *httptest.Server
		cfg    Config
		want   int
	}{
		{"trusted via originCA", trusted, Config{OriginCA: caFile}, 200},
		{"unknown CA", untrusted, Config{OriginCA: caFile}, 502},
		{"no originCA", trusted, Config{}, 502},
		{"insecure opt-out", untrusted, Config{OriginInsecure: true}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			_, port, _ := net.SplitHostPort(tc.origin.Listener.Addr().String())
			cfg.Origin = "https://origin.test:" + port
			cfg.StaleIfError = -1
			// origin.test resolves to the test origin's loopback address.
			e := startEdge(t, cfg, func(s *Server) {
				dial := s.transport.DialContext
				s.transport.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
					return dial(ctx, network, tc.origin.Listener.Addr().String())
				}
			})
			mu.Lock()
			snis = nil
			mu.Unlock()
			resp, _ := get(t, e.url+"/s")
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(snis) == 0 || snis[0] != "origin.test" {
				t.Errorf("origin saw SNI %q, want origin.test", snis)
			}
		})
	}
}

func TestTLSStartErrors(t *testing.T) {
	f := newTLSFixture(t)
	bad := filepath.Join(f.dir, "bad.crt")
	os.WriteFile(bad, []byte("junk"), 0o644)
	_, err := New(Config{Listen: "127.0.0.1:0", Origin: "http://127.0.0.1:1", TLSListen: "127.0.0.1:0",
		TLSCerts: []TLSCert{f.certs[0], {Cert: f.certs[1].Cert, Key: f.certs[0].Key}}}, Options{Logger: quietLog})
	if err == nil || !strings.Contains(err.Error(), f.certs[1].Cert) || !strings.Contains(err.Error(), "img.example.com") {
		t.Errorf("mismatched key: error %v, want one naming %s and img.example.com", err, f.certs[1].Cert)
	}
	_, err = New(Config{Listen: "127.0.0.1:0", Origin: "http://127.0.0.1:1", TLSListen: "127.0.0.1:0", OriginCA: bad}, Options{Logger: quietLog})
	if err == nil {
		t.Errorf("New accepted a config with no certificates")
	}
}

func TestTLSConfigValidate(t *testing.T) {
	base := Config{Listen: "127.0.0.1:80", Origin: "http://o"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"plain", func(*Config) {}, ""},
		{"tls ok", func(c *Config) { c.TLSListen, c.TLSCertDirs = ":443", []string{"/certs"} }, ""},
		{"no certs", func(c *Config) { c.TLSListen = ":443" }, "tlsCerts: required"},
		{"certs without listener", func(c *Config) { c.TLSCerts = []TLSCert{{"a", "b"}} }, "tlsListen: required"},
		{"half a pair", func(c *Config) { c.TLSListen, c.TLSCerts = ":443", []TLSCert{{Cert: "a"}} }, "tlsCerts[0]: needs both"},
		{"same as listen", func(c *Config) { c.TLSListen, c.TLSCertDirs = c.Listen, []string{"/d"} }, "tlsListen: must differ"},
		{"redirect without tls", func(c *Config) { c.HTTPSRedirect = []string{"a.example"} }, "httpsRedirect: needs tlsListen"},
		{"redirect with port only", func(c *Config) { c.HTTPSRedirect, c.HTTPSPort = []string{"a.example"}, 443 }, ""},
		{"redirect of unserved host", func(c *Config) {
			c.Hostnames, c.HTTPSRedirect, c.HTTPSPort = []string{"a.example"}, []string{"b.example"}, 443
		}, "httpsRedirect[0]: \"b.example\" is not one of hostnames"},
		{"bad port", func(c *Config) { c.HTTPSPort = 70000 }, "httpsPort"},
		{"negative hsts", func(c *Config) { c.HSTSMaxAge = -1 }, "hstsMaxAge"},
		{"insecure and ca", func(c *Config) { c.OriginInsecure, c.OriginCA = true, "/ca.pem" }, "originInsecure: contradicts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseTicketKeys(t *testing.T) {
	raw := make([]byte, 64)
	raw[0], raw[32] = 1, 2
	b64 := base64.StdEncoding.EncodeToString(raw[:32]) + "\n" + base64.StdEncoding.EncodeToString(raw[32:]) + "\n"
	for _, tc := range []struct {
		name  string
		in    []byte
		first byte
		n     int
		err   bool
	}{
		{"raw", raw, 1, 2, false},
		{"base64 lines", []byte(b64), 1, 2, false},
		{"short", raw[:31], 0, 0, true},
		{"empty", nil, 0, 0, true},
	} {
		keys, err := parseTicketKeys(tc.in)
		if (err != nil) != tc.err || len(keys) != tc.n || (tc.n > 0 && keys[0][0] != tc.first) {
			t.Errorf("%s: %d keys, err %v", tc.name, len(keys), err)
		}
	}
}
