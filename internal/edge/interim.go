package edge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"

	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// maxInterim bounds the 1xx responses relayed for one request. Once the
// transport hands 1xx responses to a trace it stops counting them against
// its header limit, so without a bound an upstream could keep a request in
// informational responses for ever.
const maxInterim = 16

// errTooManyInterim ends an upstream exchange that sends more than
// maxInterim 1xx responses.
var errTooManyInterim = errors.New("more than 16 interim (1xx) responses")

// interimRelay forwards the 1xx interim responses (103 Early Hints, 102,
// and codes not yet defined) an upstream sends before its final response to
// the client of a relayed request: a proxy forwards them (RFC 9110 §15.2).
// They are never stored: the cache only ever sees the final response. 100
// Continue is not relayed; it answers the edge's own request, and the
// client's Expect is answered by the edge's server when the body is read.
// 101 is final for the transport and never reaches here.
//
// The transport calls Got1xxResponse on its own goroutine while the
// handler waits in RoundTrip, so the writes are serialised with the
// client's body reads (the server may write its own 100 Continue from
// there) and stop for good when the exchange is over (stop), after which
// the handler owns w again.
type interimRelay struct {
	w     http.ResponseWriter
	mu    sync.Mutex
	n     int
	ended bool
}

// relayInterim returns ctx with a client trace that relays the upstream's
// 1xx responses to w, and the relay, whose stop must be called when the
// round trip returns and before w is used again. An HTTP/1.0 client gets
// none (RFC 9110 §15.2: a server must not send it a 1xx), and the relay is
// then nil; its methods accept nil.
func relayInterim(ctx context.Context, w http.ResponseWriter, r *http.Request) (context.Context, *interimRelay) {
	if !r.ProtoAtLeast(1, 1) {
		return ctx, nil
	}
	ir := &interimRelay{w: w}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: ir.got}), ir
}

func (ir *interimRelay) got(code int, header textproto.MIMEHeader) error {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	if ir.ended || code == http.StatusContinue {
		return nil
	}
	if ir.n++; ir.n > maxInterim {
		return errTooManyInterim
	}
	// The server writes the handler's header map with a 1xx (RFC 8297:
	// hints are not cleared from the final response), so the interim
	// fields go in for the write and the map is put back after.
	h := ir.w.Header()
	saved := h.Clone()
	clear(h)
	for k, vs := range header {
		h[k] = vs
	}
	httpcache.RemoveHopByHop(h)
	for _, k := range edgeOnlyHeaders {
		delete(h, k)
	}
	delete(h, "Content-Length")
	ir.w.WriteHeader(code)
	clear(h)
	for k, vs := range saved {
		h[k] = vs
	}
	return nil
}

// stop ends the relay: a 1xx that arrives later is dropped.
func (ir *interimRelay) stop() {
	if ir == nil {
		return
	}
	ir.mu.Lock()
	ir.ended = true
	ir.mu.Unlock()
}

// body returns b wrapped so that its reads never overlap a relayed 1xx
// write; b as is when there is nothing to serialise with.
func (ir *interimRelay) body(b io.Reader) io.Reader {
	if ir == nil || b == nil {
		return b
	}
	return &interimGuardedBody{ir: ir, r: b}
}

type interimGuardedBody struct {
	ir *interimRelay
	r  io.Reader
}

func (g *interimGuardedBody) Read(p []byte) (int, error) {
	g.ir.mu.Lock()
	defer g.ir.mu.Unlock()
	return g.r.Read(p)
}
