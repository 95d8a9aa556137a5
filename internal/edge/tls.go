package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/acme"
	"github.com/kubecdn/kubecdn/internal/certs"
)

// certPollInterval is how often certificate and ticket key files are
// checked for changes.
const certPollInterval = 5 * time.Second

// tlsState is the HTTPS side of an edge: the certificates, the listener's
// tls.Config and the shared session ticket keys.
type tlsState struct {
	certs      *certs.Store  // nil when every certificate comes from ACME
	acme       *acme.Manager // nil without ACME
	config     *tls.Config
	ticketFile string
	log        *slog.Logger

	mu          sync.Mutex
	ticketStamp time.Time
	addr        net.Addr
}

// newTLSState loads the certificates (and ticket keys) of cfg; nil when cfg
// has no TLS listener. Its errors name the file and hostname at fault.
func newTLSState(cfg Config, logger *slog.Logger, now func() time.Time) (*tlsState, error) {
	if cfg.TLSListen == "" {
		return nil, nil
	}
	ts := &tlsState{ticketFile: cfg.TLSTicketKeyFile, log: logger}
	if len(cfg.TLSCerts) > 0 || len(cfg.TLSCertDirs) > 0 {
		opts := certs.Options{Dirs: cfg.TLSCertDirs, Now: now, Logger: logger}
		for _, p := range cfg.TLSCerts {
			opts.Pairs = append(opts.Pairs, certs.Pair{Cert: p.Cert, Key: p.Key})
		}
		store, err := certs.New(opts)
		if err != nil {
			return nil, err
		}
		ts.certs = store
	}
	if cfg.ACMEStorage != "" {
		// ACME covers the hostnames no certificate file covers.
		var names []string
		for _, h := range cfg.Hostnames {
			if ts.certs == nil || !ts.certs.Covers(h) {
				names = append(names, h)
			}
		}
		if len(names) > 0 {
			m, err := acme.New(acme.Options{
				Email: cfg.ACMEEmail, CA: cfg.ACMECA, CARoot: cfg.ACMECARoot,
				Hostnames: names, StorageDir: cfg.ACMEStorage,
				HTTPPort: portOf(cfg.Listen), TLSPort: portOf(cfg.TLSListen),
				Logger: logger,
			})
			if err != nil {
				return nil, err
			}
			ts.acme = m
		}
	}
	ts.config = serverTLSConfig(ts.getCertificate)
	if ts.acme != nil {
		ts.config.NextProtos = append(ts.config.NextProtos, acme.ALPNProto)
	}
	if ts.ticketFile != "" {
		if err := ts.loadTicketKeys(); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// getCertificate picks the certificate for a handshake: ACME's for its
// challenges and for the names only it covers, else the files'.
func (ts *tlsState) getCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if ts.acme != nil && (slices.Contains(h.SupportedProtos, acme.ALPNProto) ||
		((ts.certs == nil || !ts.certs.Covers(h.ServerName)) && ts.acme.Manages(h.ServerName))) {
		return ts.acme.GetCertificate(h)
	}
	if ts.certs == nil {
		return nil, fmt.Errorf("no certificate for %q", h.ServerName)
	}
	return ts.certs.GetCertificate(h)
}

// portOf is the port of a host:port address (0 when there is none).
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// serverTLSConfig is the public listener's TLS policy: TLS 1.2 and 1.3,
// forward-secret AEAD suites only for 1.2 (1.3's are all AEAD), HTTP/2
// offered first.
func serverTLSConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: get,
		NextProtos:     []string{"h2", "http/1.1"},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// parseTicketKeys reads a ticket key file: raw bytes, a multiple of 32, or
// one base64 key of 32 bytes per line.
func parseTicketKeys(b []byte) ([][32]byte, error) {
	var keys [][32]byte
	lines := bytes.Fields(b)
	textual := len(lines) > 0
	for _, l := range lines {
		k, err := base64.StdEncoding.DecodeString(string(l))
		if err != nil || len(k) != 32 {
			textual = false
			break
		}
		keys = append(keys, [32]byte(k))
	}
	if textual {
		return keys, nil
	}
	if len(b) == 0 || len(b)%32 != 0 {
		return nil, fmt.Errorf("%d bytes: want 32-byte keys, raw or one base64 key per line", len(b))
	}
	keys = keys[:0]
	for i := 0; i < len(b); i += 32 {
		keys = append(keys, [32]byte(b[i:i+32]))
	}
	return keys, nil
}

// loadTicketKeys (re)reads the ticket key file into the tls.Config; on
// error the keys in use stay.
func (ts *tlsState) loadTicketKeys() error {
	b, err := os.ReadFile(ts.ticketFile)
	if err != nil {
		return fmt.Errorf("tls ticket key file: %w", err)
	}
	keys, err := parseTicketKeys(b)
	if err != nil {
		return fmt.Errorf("tls ticket key file %s: %w", ts.ticketFile, err)
	}
	// SetSessionTicketKeys is safe while the config serves handshakes.
	ts.config.SetSessionTicketKeys(keys)
	if fi, err := os.Stat(ts.ticketFile); err == nil {
		ts.mu.Lock()
		ts.ticketStamp = fi.ModTime()
		ts.mu.Unlock()
	}
	return nil
}

func (ts *tlsState) ticketsChanged() bool {
	if ts.ticketFile == "" {
		return false
	}
	fi, err := os.Stat(ts.ticketFile)
	if err != nil {
		return false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return !fi.ModTime().Equal(ts.ticketStamp)
}

// watch reloads certificates and ticket keys when their files change.
func (ts *tlsState) watch(ctx context.Context) {
	if ts.certs != nil {
		go ts.certs.Watch(ctx, certPollInterval)
	}
	t := time.NewTicker(certPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ts.ticketsChanged() {
			if err := ts.loadTicketKeys(); err != nil {
				ts.log.Error("tls ticket key reload failed, keeping the previous keys", "err", err)
			}
		}
	}
}

// ReloadTLS re-reads the certificate and ticket key files (on SIGHUP).
// What fails to load keeps its previous version serving; the error names
// each file and hostname at fault. Without a TLS listener it does nothing.
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return nil
	}
	var err error
	if s.tls.certs != nil {
		err = s.tls.certs.Reload()
	}
	if s.tls.ticketFile != "" {
		err = errors.Join(err, s.tls.loadTicketKeys())
	}
	return err
}

// TLSAddr is the HTTPS listener's bound address once Run has started; nil
// without one.
func (s *Server) TLSAddr() net.Addr {
	<-s.started
	if s.tls == nil {
		return nil
	}
	s.tls.mu.Lock()
	defer s.tls.mu.Unlock()
	return s.tls.addr
}

// listenTLS binds the HTTPS address; nil, nil without one.
func (s *Server) listenTLS(cfg Config) (net.Listener, error) {
	if s.tls == nil {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.TLSListen)
	if err != nil {
		return nil, fmt.Errorf("tls listen %s: %w", cfg.TLSListen, err)
	}
	s.tls.mu.Lock()
	s.tls.addr = ln.Addr()
	s.tls.mu.Unlock()
	return ln, nil
}

// serveTLS serves HTTPS (HTTP/2 and HTTP/1.1) on ln with the same handler
// as the plain listener, until the returned server is shut down. It also
// starts watching the certificate files until ctx ends.
func (s *Server) serveTLS(ctx context.Context, ln net.Listener, cfg Config, errLog *log.Logger, errc chan<- error) *http.Server {
	srv := &http.Server{
		Handler: s.guardH2(s.accessLogged(s)), // HTTP/2 rapid reset: see h2guard.go
		HTTP2:   h2Config(),
		// A copy: Serve's HTTP/2 set-up writes to it (NextProtos,
		// PreferServerCipherSuites) while the accept loop and HTTP/3
		// handshake with s.tls.config; srv itself does no handshake.
		TLSConfig:         s.tls.config.Clone(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          errLog,
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	go s.tls.watch(ctx)
	// The accept loop does the handshakes with s.tls.config itself (so
	// ticket keys set on reload reach it): HTTP/1.1 connections take the
	// fast path, HTTP/2 ones and whatever it hands over go to srv. Serve
	// configures HTTP/2 because the config offers "h2".
	srv.ConnContext = s.tlsConnContext
	fl := &fastListener{inner: ln, handoff: make(chan net.Conn), closed: make(chan struct{})}
	s.addHTTPServer(srv)
	go func() { errc <- srv.Serve(fl) }()
	go func() { errc <- s.acceptLoop(ln, fl, s.tls.config) }()
	var names []string
	if s.tls.certs != nil {
		names = s.tls.certs.Names()
	}
	if s.tls.acme != nil {
		if err := s.tls.acme.Start(ctx); err != nil {
			s.log.Error("acme: start failed", "err", err)
		}
	}
	s.log.Info("edge serving https", "listen", ln.Addr().String(), "certificates", names, "acme", s.tls.acme != nil)
	return srv
}

// redirectPort is the port named in an HTTP->HTTPS redirect ("" for 443).
func redirectPort(cfg Config) string {
	if cfg.HTTPSPort != 0 {
		if cfg.HTTPSPort == 443 {
			return ""
		}
		return strconv.Itoa(cfg.HTTPSPort)
	}
	_, port, err := net.SplitHostPort(cfg.TLSListen)
	if err != nil || port == "443" {
		return ""
	}
	return port
}

// redirectsHost reports whether plain HTTP requests for host (a Host
// header, maybe with a port) are redirected to https. The fast path calls
// it so that it never serves such a host from the cache.
func redirectsHost(cfg *Config, host string) bool {
	if len(cfg.HTTPSRedirect) == 0 {
		return false
	}
	h := hostOnly(host)
	for _, r := range cfg.HTTPSRedirect {
		if r == h {
			return true
		}
	}
	return false
}

// httpsPolicy applies the TLS policy to a public request before anything
// else: a plain HTTP request for a redirected host gets a 308 to https
// (true: answered); an HTTPS response gets HSTS when configured.
func (s *Server) httpsPolicy(w http.ResponseWriter, r *http.Request) bool {
	cfg := &s.rt.Load().cfg
	if r.TLS != nil {
		if cfg.HSTSMaxAge > 0 {
			w.Header().Set("Strict-Transport-Security", "max-age="+strconv.FormatInt(int64(cfg.HSTSMaxAge/time.Second), 10))
		}
		s.setAltSvc(w.Header(), r)
		return false
	}
	if !redirectsHost(cfg, r.Host) || s.edgeHop(r, s.rt.Load()) != "" {
		// Edges talk to each other in plain HTTP inside a region.
		return false
	}
	host := hostOnly(r.Host)
	p := redirectPort(*cfg)
	if p == "0" && s.tls != nil {
		// Bound at :0 (tests): name the port the listener got.
		s.tls.mu.Lock()
		if s.tls.addr != nil {
			_, p, _ = net.SplitHostPort(s.tls.addr.String())
		}
		s.tls.mu.Unlock()
	}
	if p != "" {
		host = net.JoinHostPort(host, p)
	}
	w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusPermanentRedirect)
	return true
}

// upstreamTLS is the client TLS config for origins, peers and parents:
// verification on, the system roots plus OriginCA. Go sets SNI to the
// upstream URL's host.
func upstreamTLS(cfg Config, logger *slog.Logger) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.OriginInsecure {
		logger.Warn("originInsecure: upstream TLS certificates are NOT verified; anyone on the path can impersonate the origin")
		tc.InsecureSkipVerify = true
		return tc, nil
	}
	if cfg.OriginCA != "" {
		pem, err := os.ReadFile(cfg.OriginCA)
		if err != nil {
			return nil, fmt.Errorf("originCA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("originCA %s: no PEM certificate in it", cfg.OriginCA)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
