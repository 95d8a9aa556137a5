// Package acmetest runs a real ACME CA (Pebble, in-process) and a small DNS
// server for tests of ACME clients on loopback.
package acmetest

import (
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// Pebble is a Pebble ACME CA running in the test process, wired the way
// Pebble's cmd/pebble main does: its VA validates challenges for real on
// the given loopback ports, resolving names through a test DNS server.
type Pebble struct {
	Directory string // ACME directory URL
	CARoot    string // PEM file trusting the directory's HTTPS certificate
	ca        *ca.CAImpl
	orders    atomic.Int64 // new-order requests
}

// StartPebble starts Pebble whose VA sends HTTP-01 to httpPort and
// TLS-ALPN-01 to tlsPort of whatever dnsAddr resolves a name to.
func StartPebble(t testing.TB, httpPort, tlsPort int, dnsAddr string) *Pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "pebble ", log.LstdFlags)
	if testing.Verbose() {
		logger.SetOutput(os.Stderr)
	}
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "default"}}
	p := &Pebble{ca: ca.New(logger, store, "", "ecdsa", 0, 1, profiles)}
	v := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	w := wfe.New(logger, store, v, p.ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	h := w.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/order-plz") {
			p.orders.Add(1)
		}
		h.ServeHTTP(rw, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.Directory = srv.URL + wfe.DirectoryPath
	p.CARoot = filepath.Join(t.TempDir(), "pebble-wfe.pem")
	if err := os.WriteFile(p.CARoot, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// RootPEM is the root that signs Pebble's certificates.
func (p *Pebble) RootPEM() []byte { return p.ca.GetRootCert(0).PEM() }

// StartDNS serves A 127.0.0.1 for every name under .localhost (TCP, as
// Pebble's VA asks) and returns its address.
func StartDNS(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA && strings.HasSuffix(qq.Name, ".localhost.") {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{Listener: ln, Handler: mux, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// Orders is how many new orders the CA has received.
func (p *Pebble) Orders() int64 { return p.orders.Load() }
