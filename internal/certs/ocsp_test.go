package certs

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/kubecdn/kubecdn/internal/certs/certstest"
)

// fakeClock is a settable clock shared by the store and the responder.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tlsStaple serves the store on loopback and returns the OCSP response a
// Go TLS client receives in a handshake for sni (nil when none).
func tlsStaple(t *testing.T, s *Store, ca *certstest.CA, sni string) []byte {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: s.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_ = c.(*tls.Conn).Handshake()
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{ServerName: sni, RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	staple := conn.ConnectionState().OCSPResponse
	conn.Close()
	<-done
	return staple
}

// ocspSetup makes a CA with a responder, a leaf naming it (chain written
// with the issuer) and a store serving it on the shared fake clock.
func ocspSetup(t *testing.T, prepare func(r *certstest.OCSPResponder, l certstest.Leaf)) (*Store, *certstest.CA, *certstest.OCSPResponder, certstest.Leaf, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Now()}
	ca := certstest.NewCA(t, "ocsp ca")
	r := ca.NewOCSPResponder(t, clk.Now)
	ca.OCSPServer = []string{r.URL}
	leaf := ca.Issue(t, []string{"www.example.com"}, time.Time{}, time.Time{})
	if prepare != nil {
		prepare(r, leaf)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "www.crt"), filepath.Join(dir, "www.key")
	if err := os.WriteFile(certFile, leaf.ChainPEM(ca), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, leaf.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Pairs: []Pair{{Cert: certFile, Key: keyFile}}, Now: clk.Now, OCSPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return s, ca, r, leaf, clk
}

// checkStaple parses a stapled response and checks it is Good for leaf.
func checkStaple(t *testing.T, der []byte, ca *certstest.CA, leaf certstest.Leaf) *ocsp.Response {
	t.Helper()
	if der == nil {
		t.Fatal("no OCSP staple in the handshake")
	}
	resp, err := ocsp.ParseResponseForCert(der, leaf.Cert, ca.Cert)
	if err != nil {
		t.Fatalf("staple: %v", err)
	}
	if resp.Status != ocsp.Good {
		t.Fatalf("staple status %d, want good", resp.Status)
	}
	return resp
}

func TestOCSPStapleAtLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(r *certstest.OCSPResponder, l certstest.Leaf)
		stapled bool
	}{
		{"good", nil, true},
		{"revoked", func(r *certstest.OCSPResponder, l certstest.Leaf) { r.SetStatus(l.Cert.SerialNumber, ocsp.Revoked) }, false},
		{"unknown", func(r *certstest.OCSPResponder, l certstest.Leaf) { r.SetStatus(l.Cert.SerialNumber, ocsp.Unknown) }, false},
		{"expired response", func(r *certstest.OCSPResponder, l certstest.Leaf) { r.SetValidity(-time.Hour) }, false},
		{"responder error", func(r *certstest.OCSPResponder, l certstest.Leaf) { r.SetFailing(http.StatusInternalServerError) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ca, r, leaf, _ := ocspSetup(t, tc.prepare)
			if r.Requests() != 1 {
				t.Fatalf("responder asked %d times at load, want 1", r.Requests())
			}
			got := tlsStaple(t, s, ca, "www.example.com")
			if !tc.stapled {
				if got != nil {
					t.Fatalf("stapled a response (%d bytes), want none", len(got))
				}
				return
			}
			checkStaple(t, got, ca, leaf)
		})
	}
}

func TestOCSPNoResponder(t *testing.T) {
	ca := certstest.NewCA(t, "plain ca")
	r := ca.NewOCSPResponder(t, nil)
	leaf := ca.Issue(t, []string{"www.example.com"}, time.Time{}, time.Time{}) // no OCSPServer
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "www.crt"), filepath.Join(dir, "www.key")
	os.WriteFile(certFile, leaf.ChainPEM(ca), 0o644)
	os.WriteFile(keyFile, leaf.KeyPEM, 0o600)
	s, err := New(Options{Pairs: []Pair{{Cert: certFile, Key: keyFile}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := tlsStaple(t, s, ca, "www.example.com"); got != nil {
		t.Fatalf("stapled %d bytes for a leaf without a responder", len(got))
	}
	if err := s.RefreshOCSP(context.Background(), true); err != nil || r.Requests() != 0 {
		t.Fatalf("refresh: err %v, %d requests; want none", err, r.Requests())
	}
}

func TestOCSPRefresh(t *testing.T) {
	s, ca, r, leaf, clk := ocspSetup(t, nil) // responses valid 4h from a minute ago
	ctx := context.Background()
	first := checkStaple(t, tlsStaple(t, s, ca, "www.example.com"), ca, leaf)

	// Before halfway to NextUpdate nothing is fetched.
	clk.Add(time.Hour)
	if err := s.RefreshOCSP(ctx, false); err != nil {
		t.Fatal(err)
	}
	if r.Requests() != 1 {
		t.Fatalf("%d requests an hour in, want 1", r.Requests())
	}

	// Past halfway a new response is fetched and served.
	clk.Add(time.Hour + time.Minute)
	if err := s.RefreshOCSP(ctx, false); err != nil {
		t.Fatal(err)
	}
	if r.Requests() != 2 {
		t.Fatalf("%d requests past halfway, want 2", r.Requests())
	}
	second := checkStaple(t, tlsStaple(t, s, ca, "www.example.com"), ca, leaf)
	if !second.ThisUpdate.After(first.ThisUpdate) {
		t.Fatalf("staple not renewed: ThisUpdate %v then %v", first.ThisUpdate, second.ThisUpdate)
	}

	// A reload of the unchanged files keeps the staple without a fetch.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Requests() != 2 {
		t.Fatalf("%d requests after a reload, want 2", r.Requests())
	}
	checkStaple(t, tlsStaple(t, s, ca, "www.example.com"), ca, leaf)

	// The responder fails: the last good staple keeps serving.
	r.SetFailing(http.StatusServiceUnavailable)
	clk.Add(2*time.Hour + time.Minute) // past this staple's halfway
	if err := s.RefreshOCSP(ctx, false); err == nil {
		t.Fatal("refresh against a failing responder: no error")
	}
	if got := checkStaple(t, tlsStaple(t, s, ca, "www.example.com"), ca, leaf); !got.ThisUpdate.Equal(second.ThisUpdate) {
		t.Fatalf("served ThisUpdate %v, want the last good %v", got.ThisUpdate, second.ThisUpdate)
	}

	// Past its NextUpdate the old staple is no longer served.
	clk.Add(2 * time.Hour)
	if err := s.RefreshOCSP(ctx, false); err == nil {
		t.Fatal("refresh against a failing responder: no error")
	}
	if got := tlsStaple(t, s, ca, "www.example.com"); got != nil {
		t.Fatal("served a staple past its NextUpdate")
	}

	// The responder is back: stapled again; then revoked: unstapled at once.
	r.SetFailing(0)
	if err := s.RefreshOCSP(ctx, true); err != nil {
		t.Fatal(err)
	}
	checkStaple(t, tlsStaple(t, s, ca, "www.example.com"), ca, leaf)
	r.SetStatus(leaf.Cert.SerialNumber, ocsp.Revoked)
	if err := s.RefreshOCSP(ctx, true); err == nil {
		t.Fatal("refresh of a revoked certificate: no error")
	}
	if got := tlsStaple(t, s, ca, "www.example.com"); got != nil {
		t.Fatal("still stapling after the certificate was revoked")
	}
}

func TestOCSPWatch(t *testing.T) {
	s, ca, r, leaf, clk := ocspSetup(t, nil)
	clk.Add(3 * time.Hour) // past halfway
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, 10*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for r.Requests() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not refresh the staple")
		}
		time.Sleep(10 * time.Millisecond)
	}
	checkStaple(t, tlsStaple(t, s, ca, "www.example.com"), ca, leaf)
}
