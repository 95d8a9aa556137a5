package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/acme/acmetest"
)

// freePorts returns n distinct loopback ports that were free a moment ago
// (all probes are held open together, so the kernel cannot offer one twice).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// TestACMEFromPebble: an edge with --acme-storage and no certificate file
// gets its certificate from a real ACME CA (Pebble, in-process) whose
// validation authority reaches the edge's own listeners on loopback, then
// serves HTTPS with it.
func TestACMEFromPebble(t *testing.T) {
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "secure hello")
	})
	ports := freePorts(t, 2)
	httpPort, tlsPort := ports[0], ports[1]
	p := acmetest.StartPebble(t, httpPort, tlsPort, acmetest.StartDNS(t))
	cfg := Config{
		Listen:      "127.0.0.1:" + strconv.Itoa(httpPort),
		TLSListen:   "127.0.0.1:" + strconv.Itoa(tlsPort),
		Origin:      origin.URL,
		Hostnames:   []string{"www.cdn.localhost"},
		ACMEStorage: t.TempDir(),
		ACMECA:      p.Directory,
		ACMECARoot:  p.CARoot,
		ACMEEmail:   "ops@cdn.localhost",
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin = aln.Addr().String()
	s, err := New(cfg, Options{AdminListener: aln, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Started()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.RootPEM())
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "www.cdn.localhost"},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", cfg.TLSListen)
		},
	}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(45 * time.Second)
	for {
		resp, err := client.Get("https://www.cdn.localhost/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "secure hello" {
				t.Fatalf("over HTTPS: %d %q", resp.StatusCode, body)
			}
			if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].VerifyHostname("www.cdn.localhost") != nil {
				t.Fatal("the served certificate is not for www.cdn.localhost")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate from the ACME CA within 45 s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := p.Orders(); n != 1 {
		t.Errorf("the CA received %d orders, want 1", n)
	}
}
