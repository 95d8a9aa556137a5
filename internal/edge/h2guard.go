package edge

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTP/2 rapid reset (CVE-2023-44487): a client opens a stream and resets it
// at once, thousands of times on one connection. Go's server bounds the
// handlers running at a time, but a reset handler ends at once, so each pair
// still runs one and, here, starts one upstream fetch. The guard below skips
// handlers for streams already reset, and gives each connection a budget of
// early resets; a connection past it gets GOAWAY and no new stream.
const (
	// h2MaxStreams is the concurrent streams a client may open on one
	// connection (SETTINGS_MAX_CONCURRENT_STREAMS), RFC 9113's suggested
	// minimum; Go's default is 250.
	h2MaxStreams = 100
	// h2EarlyReset: a stream the client resets within this of its start,
	// before its response is complete, is an early reset.
	h2EarlyReset = time.Second
	// h2ResetBurst and h2ResetRate are the budget of early resets per
	// connection: a burst (a browser leaving a page cancels up to a
	// connection's worth of streams at once) refilled at a rate.
	h2ResetBurst = 2 * h2MaxStreams
	h2ResetRate  = 10 // per second
	// h2CloseAfter is how long a connection past its budget keeps the
	// streams it has before it is closed: GOAWAY lets them finish, but an
	// abuser need not.
	h2CloseAfter = 5 * time.Second
)

// h2Config is the HTTP/2 configuration of the TLS listener.
func h2Config() *http.HTTP2Config {
	return &http.HTTP2Config{MaxConcurrentStreams: h2MaxStreams}
}

// resetBudget is a token bucket of early resets.
type resetBudget struct {
	tokens float64
	last   time.Time
}

func newResetBudget(now time.Time) resetBudget {
	return resetBudget{tokens: h2ResetBurst, last: now}
}

// spend takes one early reset at now and reports whether the budget was
// already empty.
func (b *resetBudget) spend(now time.Time) (over bool) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(h2ResetBurst, b.tokens+d.Seconds()*h2ResetRate)
		b.last = now
	}
	if b.tokens < 1 {
		return true
	}
	b.tokens--
	return false
}

// h2Conn is the guard's state of one connection of the TLS listener.
type h2Conn struct {
	c       net.Conn
	mu      sync.Mutex
	budget  resetBudget
	closing bool
}

type h2ConnKey struct{}

// tlsConnContext is the ConnContext of the TLS listener's server: the fast
// path's, plus the guard's state of the connection.
func (s *Server) tlsConnContext(ctx context.Context, c net.Conn) context.Context {
	ctx = connContext(ctx, c)
	return context.WithValue(ctx, h2ConnKey{}, &h2Conn{c: c, budget: newResetBudget(s.now())})
}

// earlyReset counts an early reset on the connection and reports whether
// that started its closing (true once).
func (hc *h2Conn) earlyReset(now time.Time) bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.closing || !hc.budget.spend(now) {
		return false
	}
	hc.closing = true
	return true
}

func (hc *h2Conn) isClosing() bool {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	return hc.closing
}

// guardH2 wraps the TLS listener's handler with the rapid-reset guard;
// HTTP/1 requests pass through.
func (s *Server) guardH2(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hc, _ := r.Context().Value(h2ConnKey{}).(*h2Conn)
		if hc == nil || r.ProtoMajor != 2 {
			next.ServeHTTP(w, r)
			return
		}
		start := s.now()
		if hc.isClosing() {
			// GOAWAY is on its way; a stream that slipped in before it
			// starts nothing.
			s.metrics.refused.WithLabelValues("h2 resets").Inc()
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.Context().Err() == nil {
			next.ServeHTTP(w, r)
		} // else: reset before its handler ran; nobody to answer
		if r.Context().Err() == nil || s.now().Sub(start) > h2EarlyReset {
			return
		}
		if hc.earlyReset(s.now()) {
			s.metrics.refused.WithLabelValues("h2 resets").Inc()
			s.log.Warn("http/2: closing a connection that resets streams as fast as it opens them", "client", r.RemoteAddr)
			// net/http's HTTP/2 server answers Connection: close with a
			// GOAWAY: no new stream is accepted on the connection. The
			// header reaches it as long as this stream's response had not
			// started, which is so for a stream reset early.
			w.Header().Set("Connection", "close")
			time.AfterFunc(h2CloseAfter, func() { hc.c.Close() })
		}
	})
}
