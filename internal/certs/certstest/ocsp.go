package certstest

import (
	"crypto"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPResponder is an OCSP responder on loopback whose answers the CA
// signs. Every serial is Good unless set otherwise.
type OCSPResponder struct {
	URL string

	ca  *CA
	now func() time.Time

	mu       sync.Mutex
	status   map[string]int // serial -> ocsp.Good, ocsp.Revoked, ocsp.Unknown
	validity time.Duration
	fail     int // HTTP status to fail with; 0 answers
	requests int
}

// NewOCSPResponder starts a responder, closed when the test ends. now is
// its clock (ThisUpdate); if nil, time.Now. Responses are valid for four
// hours unless SetValidity says otherwise.
func (ca *CA) NewOCSPResponder(t testing.TB, now func() time.Time) *OCSPResponder {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	r := &OCSPResponder{ca: ca, now: now, status: map[string]int{}, validity: 4 * time.Hour}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// SetStatus sets the status (ocsp.Good, ocsp.Revoked, ocsp.Unknown) of a
// serial.
func (r *OCSPResponder) SetStatus(serial *big.Int, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[serial.String()] = status
}

// SetValidity sets NextUpdate - ThisUpdate of the responses; a negative
// value makes responses that have already expired.
func (r *OCSPResponder) SetValidity(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.validity = d
}

// SetFailing makes the responder answer with HTTP status code (0: answer
// normally).
func (r *OCSPResponder) SetFailing(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = code
}

// Requests counts the requests received.
func (r *OCSPResponder) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

func (r *OCSPResponder) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<16))
	if err != nil || req.Method != http.MethodPost {
		http.Error(w, "want a POST", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.requests++
	fail, validity := r.fail, r.validity
	oreq, err := ocsp.ParseRequest(body)
	var status int
	if err == nil {
		status = r.status[oreq.SerialNumber.String()]
	}
	r.mu.Unlock()
	if fail != 0 {
		http.Error(w, "failing", fail)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := r.now()
	this := now.Add(-time.Minute)
	if validity < 0 {
		this = now.Add(2 * validity)
	}
	tmpl := ocsp.Response{
		Status:       status,
		SerialNumber: oreq.SerialNumber,
		ThisUpdate:   this,
		NextUpdate:   this.Add(abs(validity)),
	}
	if status == ocsp.Revoked {
		tmpl.RevokedAt = this
		tmpl.RevocationReason = ocsp.KeyCompromise
	}
	der, err := ocsp.CreateResponse(r.ca.Cert, r.ca.Cert, tmpl, crypto.Signer(r.ca.Key))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(der)
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
