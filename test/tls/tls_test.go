package tls_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

func origin(t *testing.T) *httptest.Server {
	t.Helper()
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, "content of %s", r.URL.Path)
	}))
	t.Cleanup(o.Close)
	return o
}

func get(t *testing.T, c *http.Client, url, host string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestGoClient(t *testing.T) {
	p := newPKI(t, "www.example.com", "img.example.com")
	e := kubecdn.Start(t, edgetest.Options{Origin: origin(t).URL, TLS: true, Args: append(p.certArgs("www.example.com", "img.example.com"), "--hsts-max-age", "1h")})
	t.Run("sni selects the certificate", func(t *testing.T) {
		for _, host := range []string{"www.example.com", "img.example.com"} {
			resp, body := get(t, p.client(e, host, true), "https://"+host+"/p", host)
			if resp.StatusCode != 200 || body != "content of /p" || resp.Proto != "HTTP/2.0" {
				t.Fatalf("%s: %d %s %q", host, resp.StatusCode, resp.Proto, body)
			}
			if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != host {
				t.Errorf("SNI %s got the certificate of %s", host, cn)
			}
			if hsts := resp.Header.Get("Strict-Transport-Security"); hsts != "max-age=3600" {
				t.Errorf("HSTS %q", hsts)
			}
		}
	})
	t.Run("tls 1.1 refused", func(t *testing.T) {
		c, err := tls.Dial("tcp", e.TLS, &tls.Config{RootCAs: p.ca.Pool(), ServerName: "www.example.com", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
	t.Run("resumption", func(t *testing.T) {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			cfg := &tls.Config{RootCAs: p.ca.Pool(), ServerName: "www.example.com", MaxVersion: v, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			var resumed []bool
			for range 2 {
				c, err := tls.Dial("tcp", e.TLS, cfg)
				if err != nil {
					t.Fatal(err)
				}
				// TLS 1.3 tickets follow the handshake: read a response.
				fmt.Fprint(c, "GET /.well-known/kubecdn/health HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n")
				io.Copy(io.Discard, bufio.NewReader(c))
				resumed = append(resumed, c.ConnectionState().DidResume)
				c.Close()
			}
			if resumed[0] || !resumed[1] {
				t.Errorf("version %x: DidResume = %v, want [false true]", v, resumed)
			}
		}
	})
}

func TestCurlHTTP2CacheHit(t *testing.T) {
	curl := needTool(t, "curl")
	p := newPKI(t, "www.example.com")
	e := kubecdn.Start(t, edgetest.Options{Origin: origin(t).URL, TLS: true, Args: p.certArgs("www.example.com")})
	_, port, _ := net.SplitHostPort(e.TLS)
	url := "https://www.example.com:" + port + "/c.txt"
	var heads []string
	for range 2 {
		out, err := exec.Command(curl, "-sS", "--http2", "--cacert", p.caFile, "--resolve", "www.example.com:"+port+":127.0.0.1",
			"-D", "-", "-o", "/dev/null", "-w", "proto=%{http_version}\n", url).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		heads = append(heads, strings.ToLower(string(out)))
	}
	for i, h := range heads {
		if !strings.HasPrefix(h, "http/2 200") || !strings.Contains(h, "proto=2") {
			t.Errorf("request %d not HTTP/2 200:\n%s", i+1, h)
		}
	}
	if !strings.Contains(heads[1], "cache-status:") || !strings.Contains(heads[1], "hit") {
		t.Errorf("second request not a cache hit:\n%s", heads[1])
	}
}

func TestOpenSSLClient(t *testing.T) {
	openssl := needTool(t, "openssl")
	p := newPKI(t, "www.example.com", "img.example.com")
	e := kubecdn.Start(t, edgetest.Options{Origin: origin(t).URL, TLS: true, Args: p.certArgs("www.example.com", "img.example.com")})
	sess := p.dir + "/sess.pem"
	run := func(args ...string) string {
		cmd := exec.Command(openssl, append([]string{"s_client", "-connect", e.TLS, "-CAfile", p.caFile}, args...)...)
		cmd.Stdin = strings.NewReader("GET /.well-known/kubecdn/health HTTP/1.1\r\nHost: img.example.com\r\nConnection: close\r\n\r\n")
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	out := run("-servername", "img.example.com", "-alpn", "h2,http/1.1", "-sess_out", sess)
	for _, want := range []string{"CN=img.example.com", "Verify return code: 0 (ok)", "ALPN protocol: h2"} {
		if !strings.Contains(strings.ReplaceAll(out, "CN = ", "CN="), want) {
			t.Errorf("openssl s_client -servername img.example.com: no %q in\n%s", want, out)
		}
	}
	if out := run("-servername", "img.example.com", "-sess_in", sess); !strings.Contains(out, "Reused,") {
		t.Errorf("session not reused:\n%s", out)
	}
	// SECLEVEL=0 lets Debian's openssl offer TLS 1.1 at all.
	if out := run("-servername", "www.example.com", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"); !strings.Contains(out, "Cipher is (NONE)") || !strings.Contains(out, "protocol version") {
		t.Errorf("TLS 1.1 accepted:\n%s", out)
	}
}

func TestReloadKeepsGoodCertificate(t *testing.T) {
	p := newPKI(t, "www.example.com")
	e := kubecdn.Start(t, edgetest.Options{Origin: origin(t).URL, TLS: true, Args: p.certArgs("www.example.com")})
	serial := func() string {
		c, err := tls.Dial("tcp", e.TLS, &tls.Config{RootCAs: p.ca.Pool(), ServerName: "www.example.com"})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	certFile := p.files["www.example.com"][0]
	os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o644)
	e.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.Output(), "still serving the previous certificate for www.example.com") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload error naming the file and hostname:\n%s", e.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(e.Output(), certFile) {
		t.Errorf("reload error does not name %s", certFile)
	}
	if got := serial(); got != first {
		t.Errorf("after a bad reload: serial %s, want the old %s", got, first)
	}
	// A good certificate replaces it on the next reload.
	leaf := p.ca.Issue(t, []string{"www.example.com"}, time.Time{}, time.Time{})
	leaf.Write(t, p.dir, "www.example.com")
	e.Signal(syscall.SIGHUP)
	deadline = time.Now().Add(5 * time.Second)
	for serial() != leaf.Cert.SerialNumber.String() {
		if time.Now().After(deadline) {
			t.Fatalf("the good certificate was not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBadCertificateStopsStart(t *testing.T) {
	p := newPKI(t, "www.example.com", "img.example.com")
	// img's certificate with www's key.
	e := kubecdn.Launch(t, edgetest.Options{Origin: origin(t).URL, TLS: true, Args: []string{"--tls-cert", p.files["img.example.com"][0], "--tls-key", p.files["www.example.com"][1]}})
	code, err := e.WaitExit(10 * time.Second)
	if err != nil || code == 0 {
		t.Fatalf("edge with a mismatched key: exit %d, %v", code, err)
	}
	out := e.Output()
	for _, want := range []string{p.files["img.example.com"][0], "img.example.com", "does not match"} {
		if !strings.Contains(out, want) {
			t.Errorf("start error does not mention %q:\n%s", want, out)
		}
	}
}

func TestHTTPSOrigin(t *testing.T) {
	p := newPKI(t, "www.example.com")
	stranger := newPKI(t)
	newOrigin := func(pk *pki) *httptest.Server {
		o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			io.WriteString(w, "from the https origin")
		}))
		o.TLS = &tls.Config{Certificates: []tls.Certificate{pk.ca.Issue(t, []string{"127.0.0.1"}, time.Time{}, time.Time{}).TLSCertificate(t)}}
		o.Config.ErrorLog = log.New(io.Discard, "", 0)
		o.StartTLS()
		t.Cleanup(o.Close)
		return o
	}
	for _, tc := range []struct {
		name   string
		origin *httptest.Server
		want   int
	}{
		{"trusted", newOrigin(p), 200},
		{"untrusted", newOrigin(stranger), 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := kubecdn.Start(t, edgetest.Options{Origin: tc.origin.URL, TLS: true, Args: append(p.certArgs("www.example.com"), "--origin-ca", p.caFile, "--stale-if-error", "0")})
			resp, body := get(t, p.client(e, "www.example.com", true), "https://www.example.com/o", "www.example.com")
			if resp.StatusCode != tc.want {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tc.want)
			}
		})
	}
}

func TestHTTPSRedirect(t *testing.T) {
	p := newPKI(t, "www.example.com")
	e := kubecdn.Start(t, edgetest.Options{Origin: origin(t).URL, TLS: true, Args: append(p.certArgs("www.example.com"), "--https-redirect", "www.example.com", "--https-port", "443")})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := get(t, c, "http://"+e.Listen+"/r?x=1", "www.example.com")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://www.example.com/r?x=1" {
		t.Errorf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(t, c, "http://"+e.Listen+"/r", "other.example.com")
	if resp.StatusCode != 200 {
		t.Errorf("a host without redirect: %d", resp.StatusCode)
	}
}
