package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"github.com/kubecdn/kubecdn/internal/acme/acmetest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

// edgeListeners are the stand-in edge's plain and TLS listeners.
type edgeListeners struct {
	http, tls         net.Listener
	httpPort, tlsPort int
}

func listenEdge(t *testing.T) *edgeListeners {
	t.Helper()
	e := &edgeListeners{}
	var err error
	if e.http, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if e.tls, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	e.httpPort = e.http.Addr().(*net.TCPAddr).Port
	e.tlsPort = e.tls.Addr().(*net.TCPAddr).Port
	return e
}

// serve runs the edge's two servers the way the edge wires a Manager:
// HTTP-01 on the plain listener, TLS-ALPN-01 through the tls.Config.
func (e *edgeListeners) serve(t *testing.T, m *Manager) {
	t.Helper()
	plain := &http.Server{Handler: m.HTTPChallengeHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "edge")
	}))}
	cfg := &tls.Config{GetCertificate: m.GetCertificate, NextProtos: []string{"http/1.1", ALPNProto}, MinVersion: tls.VersionTLS12}
	secure := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "edge tls")
	})}
	go plain.Serve(e.http)
	go secure.Serve(tls.NewListener(e.tls, cfg))
	t.Cleanup(func() {
		plain.Close()
		secure.Close()
	})
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		m.Stop()
	})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitHTTPS handshakes with the edge's TLS listener for host until a
// certificate chaining to roots is served, and returns its leaf.
func waitHTTPS(t *testing.T, addr, host string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: host, RootCAs: roots, NextProtos: []string{"http/1.1"}})
		if err == nil {
			leaf := conn.ConnectionState().PeerCertificates[0]
			conn.Close()
			return leaf
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no certificate for %s within 30s: %v", host, lastErr)
	return nil
}

func TestObtainFromPebble(t *testing.T) {
	const host = "www.cdn.localhost"
	for _, tc := range []struct {
		name                    string
		disableHTTP, disableTLS bool
	}{
		{"http-01", false, true},
		{"tls-alpn-01", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dnsAddr := acmetest.StartDNS(t)
			edge := listenEdge(t)
			p := acmetest.StartPebble(t, edge.httpPort, edge.tlsPort, dnsAddr)
			m, err := New(Options{
				Email: "ops@cdn.localhost", CA: p.Directory, CARoot: p.CARoot,
				Hostnames: []string{host}, StorageDir: t.TempDir(),
				HTTPPort: edge.httpPort, TLSPort: edge.tlsPort,
				DisableHTTPChallenge: tc.disableHTTP, DisableTLSALPNChallenge: tc.disableTLS,
				Logger: testLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			edge.serve(t, m)
			ctx, cancel := context.WithCancel(context.Background())
			defer m.Stop()
			defer cancel()
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(p.RootPEM()) {
				t.Fatal("pebble root: no PEM")
			}
			leaf := waitHTTPS(t, edge.tls.Addr().String(), host, roots)
			if !slices.Contains(leaf.DNSNames, host) {
				t.Fatalf("issued for %v, want %s", leaf.DNSNames, host)
			}
			if n := p.Orders(); n != 1 {
				t.Fatalf("%d orders, want 1", n)
			}
			if !m.Manages("WWW.cdn.localhost.") || m.Manages("other.cdn.localhost") {
				t.Fatal("Manages: wrong answer")
			}
			// Requests that are not challenges reach the edge's handler.
			resp, err := http.Get("http://" + edge.http.Addr().String() + "/index.html")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "edge" {
				t.Fatalf("plain listener answered %q, want the edge's handler", body)
			}
		})
	}
}

// TestSharedStorage: a second edge of the region, sharing the storage
// directory, serves the certificate the first obtained without asking the
// CA again.
func TestSharedStorage(t *testing.T) {
	const host = "shared.cdn.localhost"
	dnsAddr := acmetest.StartDNS(t)
	first := listenEdge(t)
	p := acmetest.StartPebble(t, first.httpPort, first.tlsPort, dnsAddr)
	storage := t.TempDir()
	opts := Options{
		Email: "ops@cdn.localhost", CA: p.Directory, CARoot: p.CARoot,
		Hostnames: []string{host}, StorageDir: storage,
		HTTPPort: first.httpPort, TLSPort: first.tlsPort, Logger: testLogger(),
	}
	m1, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	first.serve(t, m1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer m1.Stop()
	if err := m1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.RootPEM())
	leaf1 := waitHTTPS(t, first.tls.Addr().String(), host, roots)

	second := listenEdge(t)
	opts.HTTPPort, opts.TLSPort = second.httpPort, second.tlsPort
	m2 := newManager(t, opts)
	second.serve(t, m2)
	leaf2 := waitHTTPS(t, second.tls.Addr().String(), host, roots)
	if !leaf2.Equal(leaf1) {
		t.Fatalf("second edge serves serial %s, want the shared %s", leaf2.SerialNumber, leaf1.SerialNumber)
	}
	if n := p.Orders(); n != 1 {
		t.Fatalf("%d orders for a region of two edges, want 1", n)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.pem"
	os.WriteFile(bad, []byte("not pem"), 0o644)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no hostnames", Options{StorageDir: dir}},
		{"no storage", Options{Hostnames: []string{"a.localhost"}}},
		{"no challenge", Options{Hostnames: []string{"a.localhost"}, StorageDir: dir, DisableHTTPChallenge: true, DisableTLSALPNChallenge: true}},
		{"missing root", Options{Hostnames: []string{"a.localhost"}, StorageDir: dir, CARoot: dir + "/none.pem"}},
		{"bad root", Options{Hostnames: []string{"a.localhost"}, StorageDir: dir, CARoot: bad}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil {
				t.Fatal("no error")
			}
		})
	}
}
