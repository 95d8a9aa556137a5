// Package certs is the edge's certificate store: PEM certificate and key
// pairs read from files (given one by one, or found in directories the way
// Kubernetes mounts TLS Secrets), chosen per TLS handshake by the client's
// server name (SNI), exact names before wildcards.
//
// The files are re-read when they change (Watch polls their modification
// times; Reload re-reads on demand, e.g. on SIGHUP). A pair that fails to
// load — unreadable, not PEM, a key that does not match, expired — is an
// error naming the file and hostname; at a reload the pair's previous
// certificate keeps serving.
//
// A certificate whose leaf names an OCSP responder (and whose chain holds
// its issuer) is served with a stapled OCSP response, fetched at load and
// refreshed by Watch halfway to the response's NextUpdate (see ocsp.go).
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pair names a certificate file (PEM, leaf first, then intermediates) and
// its private key file (PEM).
type Pair struct {
	Cert, Key string
}

// Options configure a Store. At least one pair must be found.
type Options struct {
	// Pairs are certificate and key files. The first certificate loaded
	// (of Pairs, else of Dirs in name order) is the default, served to
	// clients that send no server name or one no certificate covers.
	Pairs []Pair
	// Dirs hold NAME.crt and NAME.key pairs, directly or one directory
	// level down: a Kubernetes TLS Secret mounts as tls.crt and tls.key,
	// so several Secrets mounted under one directory are all found.
	// Entries starting with ".." (the Secret volume's own) are skipped.
	Dirs []string
	// Now is the clock that decides expiry. If nil, time.Now.
	Now func() time.Time
	// Logger reports reloads. If nil, slog.Default().
	Logger *slog.Logger
	// OCSPClient fetches OCSP responses for stapling. If nil, an
	// http.Client with a 10 s timeout.
	OCSPClient *http.Client
	// NoOCSP turns OCSP stapling off.
	NoOCSP bool
}

// Store chooses a certificate per handshake. It is safe for concurrent use.
type Store struct {
	opts Options
	now  func() time.Time
	log  *slog.Logger

	mu     sync.Mutex           // serialises loads
	loaded map[string]*entry    // cert file -> last good load
	stamps map[string]fileStamp // file -> stamp at its last read
	order  []*entry             // loaded entries, default first
	ocsp   *stapler             // nil when stapling is off
	table  atomic.Pointer[table]
}

// entry is one loaded pair.
type entry struct {
	pair  Pair
	cert  *tls.Certificate
	names []string // lower-case DNS SANs (or the CN when there are none)
}

// table is an immutable lookup table, swapped whole at each load.
type table struct {
	exact map[string][]*tls.Certificate // "www.example.com" -> candidates
	wild  map[string][]*tls.Certificate // "example.com" for "*.example.com"
	def   *tls.Certificate
	n     int
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// New loads every pair. Any error stops it: the caller should not start
// serving with a certificate missing.
func New(opts Options) (*Store, error) {
	s := &Store{opts: opts, now: opts.Now, log: opts.Logger, loaded: map[string]*entry{}, stamps: map[string]fileStamp{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if !opts.NoOCSP {
		s.ocsp = newStapler(opts.OCSPClient, s.now, s.log)
	}
	if len(opts.Pairs) == 0 && len(opts.Dirs) == 0 {
		return nil, errors.New("tls certificates: none configured")
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if s.table.Load().n == 0 {
		return nil, fmt.Errorf("tls certificates: no NAME.crt/NAME.key pair found in %s", strings.Join(opts.Dirs, ", "))
	}
	return s, nil
}

// Reload re-reads every pair. A pair that fails keeps its previous
// certificate; the error names each failed file and hostname.
func (s *Store) Reload() error { return s.load() }

// Watch polls the files' modification times every interval and reloads
// when one changed, until ctx ends. Errors are logged.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.RefreshOCSP(ctx, false); err != nil {
			s.log.Warn("ocsp staple refresh failed", "err", err)
		}
		if !s.changed() {
			continue
		}
		if err := s.Reload(); err != nil {
			s.log.Error("tls certificate reload failed, keeping the previous certificate", "err", err)
		} else {
			s.log.Info("tls certificates reloaded", "certificates", s.table.Load().n)
		}
	}
}

// changed reports whether a file changed, appeared or went since the last
// load.
func (s *Store) changed() bool {
	pairs := s.pairs()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := 0
	for _, p := range pairs {
		for _, f := range []string{p.Cert, p.Key} {
			seen++
			st, ok := s.stamps[f]
			if !ok || st != stamp(f) {
				return true
			}
		}
	}
	return seen != len(s.stamps)
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}
}

// pairs lists the configured pairs, then those found in the directories.
func (s *Store) pairs() []Pair {
	out := append([]Pair(nil), s.opts.Pairs...)
	for _, d := range s.opts.Dirs {
		out = append(out, scanDir(d, true)...)
	}
	return out
}

func scanDir(dir string, descend bool) []Pair {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []Pair
	var subdirs []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		full := filepath.Join(dir, name)
		if fi, err := os.Stat(full); err == nil && fi.IsDir() {
			subdirs = append(subdirs, full)
			continue
		}
		base, ok := strings.CutSuffix(name, ".crt")
		if !ok {
			continue
		}
		key := filepath.Join(dir, base+".key")
		if _, err := os.Stat(key); err == nil {
			out = append(out, Pair{Cert: full, Key: key})
		}
	}
	if descend {
		sort.Strings(subdirs)
		for _, d := range subdirs {
			out = append(out, scanDir(d, false)...)
		}
	}
	return out
}

// load reads every pair and swaps in a new table.
func (s *Store) load() error {
	pairs := s.pairs()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	now := s.now()
	next := map[string]*entry{}
	stamps := map[string]fileStamp{}
	var order []*entry
	for _, p := range pairs {
		if _, dup := next[p.Cert]; dup {
			continue
		}
		stamps[p.Cert], stamps[p.Key] = stamp(p.Cert), stamp(p.Key)
		e, err := loadPair(p, now)
		if err != nil {
			if old := s.loaded[p.Cert]; old != nil {
				err = fmt.Errorf("%w (still serving the previous certificate for %s)", err, strings.Join(old.names, ", "))
				e = old
			}
			errs = append(errs, err)
		}
		if e != nil {
			next[p.Cert] = e
			order = append(order, e)
		}
	}
	s.loaded, s.stamps, s.order = next, stamps, order
	if s.ocsp != nil {
		// A failed fetch does not fail the load: the certificate serves
		// without a staple (or with its last good one).
		if err := s.ocsp.update(context.Background(), order, false); err != nil {
			s.log.Warn("ocsp stapling", "err", err)
		}
		order = s.ocsp.stapled(order)
	}
	s.table.Store(buildTable(order))
	return errors.Join(errs...)
}

// RefreshOCSP fetches the OCSP staples that are due (every one when
// force), drops those past their NextUpdate, and swaps in the result.
// Watch calls it at each tick; the error joins the failed fetches.
func (s *Store) RefreshOCSP(ctx context.Context, force bool) error {
	if s.ocsp == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !force && !s.ocsp.due(s.order) {
		return nil
	}
	err := s.ocsp.update(ctx, s.order, force)
	s.table.Store(buildTable(s.ocsp.stapled(s.order)))
	return err
}

// loadPair reads and checks one pair.
func loadPair(p Pair, now time.Time) (*entry, error) {
	certPEM, err := os.ReadFile(p.Cert)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s: %w", p.Cert, err)
	}
	keyPEM, err := os.ReadFile(p.Key)
	if err != nil {
		return nil, fmt.Errorf("tls key %s: %w", p.Key, err)
	}
	// Parse the leaf alone first, so a key error can name the hostname.
	leaf, err := parseLeaf(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s: %w", p.Cert, err)
	}
	names := leafNames(leaf)
	what := fmt.Sprintf("tls certificate %s (%s)", p.Cert, strings.Join(names, ", "))
	if len(names) == 0 {
		return nil, fmt.Errorf("tls certificate %s: no DNS names in its subject alternative names", p.Cert)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s with key %s: %w", what, p.Key, err)
	}
	c.Leaf = leaf
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("%s: expired at %s", what, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("%s: not valid before %s", what, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &entry{pair: p, cert: &c, names: names}, nil
}

func parseLeaf(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// leafNames are the names a certificate serves, lower-case: its DNS SANs,
// else (legacy certificates) its common name.
func leafNames(c *x509.Certificate) []string {
	var out []string
	for _, n := range c.DNSNames {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	if len(out) == 0 && len(c.IPAddresses) == 0 && c.Subject.CommonName != "" && !strings.ContainsAny(c.Subject.CommonName, " /") {
		out = append(out, strings.ToLower(c.Subject.CommonName))
	}
	return out
}

func buildTable(order []*entry) *table {
	t := &table{exact: map[string][]*tls.Certificate{}, wild: map[string][]*tls.Certificate{}, n: len(order)}
	for _, e := range order {
		if t.def == nil {
			t.def = e.cert
		}
		for _, n := range e.names {
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				t.wild[rest] = append(t.wild[rest], e.cert)
			} else {
				t.exact[n] = append(t.exact[n], e.cert)
			}
		}
	}
	return t
}

// GetCertificate is tls.Config.GetCertificate: the certificate for the
// client's server name — an exact name first, then a wildcard one label
// deep, then the default. Among several for a name, the first the client
// supports (key type, signature schemes) wins.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	t := s.table.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if c := pick(t.exact[name], hello); c != nil {
			return c, nil
		}
		if _, parent, ok := strings.Cut(name, "."); ok && parent != "" {
			if c := pick(t.wild[parent], hello); c != nil {
				return c, nil
			}
		}
	}
	if t.def == nil {
		return nil, errors.New("no certificate")
	}
	return t.def, nil
}

func pick(cands []*tls.Certificate, hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(cands) <= 1 {
		if len(cands) == 1 {
			return cands[0]
		}
		return nil
	}
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return cands[0]
}

// Names lists the hostnames the store has certificates for, sorted.
func (s *Store) Names() []string {
	t := s.table.Load()
	var out []string
	for n := range t.exact {
		out = append(out, n)
	}
	for n := range t.wild {
		out = append(out, "*."+n)
	}
	sort.Strings(out)
	return out
}

// Covers reports whether a certificate other than the default serves host.
func (s *Store) Covers(host string) bool {
	t := s.table.Load()
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if len(t.exact[host]) > 0 {
		return true
	}
	_, parent, ok := strings.Cut(host, ".")
	return ok && len(t.wild[parent]) > 0
}
