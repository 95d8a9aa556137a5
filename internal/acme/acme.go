// Package acme gets and renews the edge's certificates from an ACME CA
// (Let's Encrypt, or any other: Pebble in the tests) through certmagic.
//
// The certificates, keys and ACME account live in a certmagic FileStorage
// directory. The edges of a region mount one shared volume there, so the
// region asks the CA once: certmagic locks in the storage, and an edge that
// finds a certificate another edge obtained loads it instead of ordering
// one. Challenges are answered by any edge of the region too (certmagic's
// distributed solving keeps the challenge data in the same storage).
//
// HTTP-01 is answered by HTTPChallengeHandler on the edge's plain listener;
// TLS-ALPN-01 by GetCertificate on the TLS listener when its tls.Config
// offers ALPNProto.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"
)

// ALPNProto is the ALPN protocol of the TLS-ALPN-01 challenge: the TLS
// listener's tls.Config must list it in NextProtos.
const ALPNProto = acmez.ACMETLS1Protocol

// Options configure a Manager.
type Options struct {
	// Email is the ACME account's contact address.
	Email string
	// CA is the ACME directory URL (Let's Encrypt's production directory
	// when empty).
	CA string
	// CARoot is a PEM file of root certificates trusted for the CA's own
	// HTTPS endpoint (a private CA such as Pebble); empty trusts the
	// system roots.
	CARoot string
	// Hostnames are the names to get certificates for.
	Hostnames []string
	// StorageDir holds certificates, keys and the account; shared by the
	// edges of a region.
	StorageDir string
	// HTTPPort and TLSPort are the ports of the edge's plain and TLS
	// listeners, where the CA's challenges arrive. certmagic would
	// otherwise try to listen on 80 and 443 itself.
	HTTPPort, TLSPort int
	// DisableHTTPChallenge and DisableTLSALPNChallenge turn a challenge
	// type off (e.g. when the edge has no plain listener).
	DisableHTTPChallenge, DisableTLSALPNChallenge bool
	// Logger receives certmagic's logs. If nil, slog.Default().
	Logger *slog.Logger
}

// Manager obtains, renews and serves the certificates of Options.Hostnames.
type Manager struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	names  map[string]bool
	opts   Options
}

// New checks the options and prepares the manager; Start begins getting
// certificates once the listeners answer challenges.
func New(opts Options) (*Manager, error) {
	if len(opts.Hostnames) == 0 {
		return nil, errors.New("acme: no hostnames")
	}
	if opts.StorageDir == "" {
		return nil, errors.New("acme: no storage directory")
	}
	if opts.DisableHTTPChallenge && opts.DisableTLSALPNChallenge {
		return nil, errors.New("acme: both the http-01 and tls-alpn-01 challenges are disabled")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CA == "" {
		opts.CA = certmagic.LetsEncryptProductionCA
	}
	if err := os.MkdirAll(opts.StorageDir, 0o700); err != nil {
		return nil, fmt.Errorf("acme storage %s: %w", opts.StorageDir, err)
	}
	var roots *x509.CertPool
	if opts.CARoot != "" {
		pemBytes, err := os.ReadFile(opts.CARoot)
		if err != nil {
			return nil, fmt.Errorf("acme ca root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("acme ca root %s: no PEM certificate", opts.CARoot)
		}
	}
	zl := zap.New(newSlogCore(opts.Logger.With("component", "acme"), nil))
	m := &Manager{opts: opts, names: map[string]bool{}}
	for _, h := range opts.Hostnames {
		m.names[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		Logger:           zl,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: opts.StorageDir},
		Logger:  zl,
	})
	m.issuer = certmagic.NewACMEIssuer(m.cfg, certmagic.ACMEIssuer{
		CA:                      opts.CA,
		Email:                   opts.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		AltHTTPPort:             opts.HTTPPort,
		AltTLSALPNPort:          opts.TLSPort,
		DisableHTTPChallenge:    opts.DisableHTTPChallenge,
		DisableTLSALPNChallenge: opts.DisableTLSALPNChallenge,
		Logger:                  zl,
	})
	m.cfg.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// Start loads the certificates from storage or obtains them, in the
// background, and keeps renewing them until ctx ends or Stop. Call it once
// the listeners serve HTTPChallengeHandler and GetCertificate. Failures
// are logged and retried with backoff.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.cfg.ManageAsync(ctx, m.opts.Hostnames); err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	return nil
}

// Stop ends the renewal goroutines.
func (m *Manager) Stop() { m.cache.Stop() }

// GetCertificate is tls.Config.GetCertificate: a managed certificate, or
// the TLS-ALPN-01 challenge certificate when the client asks for
// ALPNProto.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.cfg.GetCertificate(hello)
}

// HTTPChallengeHandler answers HTTP-01 challenges (those of any edge
// sharing the storage) and hands every other request to next.
func (m *Manager) HTTPChallengeHandler(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// Manages reports whether host is one of the hostnames.
func (m *Manager) Manages(host string) bool {
	return m.names[strings.ToLower(strings.TrimSuffix(host, "."))]
}
