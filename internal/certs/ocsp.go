package certs

// OCSP stapling: for each certificate whose leaf names an OCSP responder,
// the store fetches a response, checks it (signed for this leaf by its
// issuer, status Good, not yet past NextUpdate) and staples it to the
// certificate it serves. A staple is refreshed halfway to its NextUpdate;
// when a refresh fails the last good staple keeps serving until its
// NextUpdate, and never after. A revoked answer removes the staple at once.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

const (
	// ocspRetry is how long after a failed fetch the next try is made.
	ocspRetry = time.Minute
	// ocspSkew is how far in the future a response's ThisUpdate may be.
	ocspSkew = 5 * time.Minute
	// ocspMaxBody caps a responder's answer.
	ocspMaxBody = 1 << 20
	// ocspTimeout bounds one fetch when the client has no timeout.
	ocspTimeout = 10 * time.Second
)

// stapler holds the OCSP responses of the store's certificates, by the
// SHA-256 of the leaf, so a reload of an unchanged certificate keeps its
// staple. It is used under Store.mu.
type stapler struct {
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	state  map[[32]byte]*staple
}

// staple is the state of one leaf.
type staple struct {
	der     []byte    // last good response, nil when none may be served
	next    time.Time // its NextUpdate
	refresh time.Time // when to fetch again
}

func newStapler(client *http.Client, now func() time.Time, log *slog.Logger) *stapler {
	if client == nil {
		client = &http.Client{Timeout: ocspTimeout}
	}
	return &stapler{client: client, now: now, log: log, state: map[[32]byte]*staple{}}
}

// update fetches the responses that are missing or due for the entries'
// certificates (all of them when force) and forgets leaves no longer
// loaded. The error joins the failed fetches; each also leaves the
// previous good staple in place.
func (st *stapler) update(ctx context.Context, entries []*entry, force bool) error {
	var errs []error
	keep := map[[32]byte]bool{}
	for _, e := range entries {
		leaf, issuer := e.cert.Leaf, chainIssuer(e.cert)
		if leaf == nil || len(leaf.OCSPServer) == 0 || issuer == nil {
			continue
		}
		k := sha256.Sum256(leaf.Raw)
		keep[k] = true
		s := st.state[k]
		if s == nil {
			s = &staple{}
			st.state[k] = s
		}
		now := st.now()
		if !force && now.Before(s.refresh) {
			continue
		}
		if err := st.fetch(ctx, s, leaf, issuer); err != nil {
			s.refresh = now.Add(ocspRetry)
			err = fmt.Errorf("ocsp for %s (%s): %w", e.pair.Cert, leafNamesString(e), err)
			if s.der != nil {
				err = fmt.Errorf("%w (keeping the staple valid until %s)", err, s.next.UTC().Format(time.RFC3339))
			}
			errs = append(errs, err)
		}
	}
	for k := range st.state {
		if !keep[k] {
			delete(st.state, k)
		}
	}
	return errors.Join(errs...)
}

// errRevoked is a fetch that found the certificate revoked.
var errRevoked = errors.New("certificate revoked")

// fetch asks the leaf's responder and, when the answer is good, makes it
// the staple. A revoked answer drops the staple.
func (st *stapler) fetch(ctx context.Context, s *staple, leaf, issuer *x509.Certificate) error {
	req, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	var lastErr error
	for _, url := range leaf.OCSPServer {
		der, err := st.post(ctx, url, req)
		if err != nil {
			lastErr = err
			continue
		}
		resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", url, err)
			continue
		}
		now := st.now()
		switch {
		case resp.Status == ocsp.Revoked:
			s.der, s.next = nil, time.Time{}
			return fmt.Errorf("%s: %w at %s", url, errRevoked, resp.RevokedAt.UTC().Format(time.RFC3339))
		case resp.Status != ocsp.Good:
			lastErr = fmt.Errorf("%s: status unknown", url)
			continue
		case resp.NextUpdate.IsZero():
			lastErr = fmt.Errorf("%s: response has no NextUpdate", url)
			continue
		case !now.Before(resp.NextUpdate):
			lastErr = fmt.Errorf("%s: response expired at %s", url, resp.NextUpdate.UTC().Format(time.RFC3339))
			continue
		case resp.ThisUpdate.After(now.Add(ocspSkew)):
			lastErr = fmt.Errorf("%s: response not valid before %s", url, resp.ThisUpdate.UTC().Format(time.RFC3339))
			continue
		}
		s.der, s.next = der, resp.NextUpdate
		s.refresh = now.Add(resp.NextUpdate.Sub(now) / 2)
		st.log.Debug("ocsp staple fetched", "leaf", leaf.Subject.CommonName, "next_update", resp.NextUpdate, "refresh", s.refresh)
		return nil
	}
	return lastErr
}

func (st *stapler) post(ctx context.Context, url string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ocspTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	req.Header.Set("Accept", "application/ocsp-response")
	resp, err := st.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: http status %s", url, resp.Status)
	}
	der, err := io.ReadAll(io.LimitReader(resp.Body, ocspMaxBody))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return der, nil
}

// due reports whether an entry's staple must be fetched or dropped now.
func (st *stapler) due(entries []*entry) bool {
	now := st.now()
	for _, e := range entries {
		if e.cert.Leaf == nil || len(e.cert.Leaf.OCSPServer) == 0 || chainIssuer(e.cert) == nil {
			continue
		}
		s := st.state[sha256.Sum256(e.cert.Leaf.Raw)]
		if s == nil || !now.Before(s.refresh) || s.der != nil && !now.Before(s.next) {
			return true
		}
	}
	return false
}

// stapled returns the entries to serve: those with a current staple are
// copies whose certificate carries it; the others are as loaded. Expired
// staples are dropped here, so one is never served past its NextUpdate.
func (st *stapler) stapled(entries []*entry) []*entry {
	now := st.now()
	out := make([]*entry, len(entries))
	for i, e := range entries {
		out[i] = e
		if e.cert.Leaf == nil {
			continue
		}
		s := st.state[sha256.Sum256(e.cert.Leaf.Raw)]
		if s == nil || s.der == nil {
			continue
		}
		if !now.Before(s.next) {
			s.der = nil
			continue
		}
		c := *e.cert
		c.OCSPStaple = s.der
		cp := *e
		cp.cert = &c
		out[i] = &cp
	}
	return out
}

// chainIssuer is the certificate after the leaf in c's chain, or nil.
func chainIssuer(c *tls.Certificate) *x509.Certificate {
	if len(c.Certificate) < 2 {
		return nil
	}
	issuer, err := x509.ParseCertificate(c.Certificate[1])
	if err != nil {
		return nil
	}
	return issuer
}

func leafNamesString(e *entry) string {
	if len(e.names) == 0 {
		return "?"
	}
	s := e.names[0]
	for _, n := range e.names[1:] {
		s += ", " + n
	}
	return s
}
