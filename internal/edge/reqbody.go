package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Request bodies. A client that sends its body slowly must not hold an
// origin connection while it does (200 POSTs sending a byte a second once
// held 201): a body of up to bodyLimits.bufferMax is read whole before the
// upstream request starts, and only then does it take a connection; a
// larger one streams, but only bodyLimits.streams of them at once. Every
// body must keep to a minimum rate: after a grace period, bytes must keep
// coming at minRate on average, or the client gets 408 and the connection
// is closed.

// bodyLimits bound the request bodies the edge passes upstream.
type bodyLimits struct {
	// bufferMax is the largest body read whole before going upstream.
	bufferMax int64
	// budget bounds the bytes of all bodies being buffered at once; past
	// it, a body streams instead.
	budget int64
	// streams bounds the bodies streamed upstream at once; wait is how long
	// a body waits for a turn before the client gets 503.
	streams int
	wait    time.Duration
	// grace, then minRate bytes a second on average: the deadline of the
	// n-th byte is start + grace + n/minRate.
	grace   time.Duration
	minRate int64
}

func defaultBodyLimits() bodyLimits {
	return bodyLimits{
		bufferMax: 1 << 20,
		budget:    64 << 20,
		streams:   64,
		wait:      5 * time.Second,
		grace:     10 * time.Second,
		minRate:   1 << 10,
	}
}

// bodyGate holds the shared state of the limits: buffered bytes and
// streaming turns.
type bodyGate struct {
	lim      bodyLimits
	buffered atomic.Int64
	turns    chan struct{}
}

func newBodyGate(lim bodyLimits) *bodyGate {
	return &bodyGate{lim: lim, turns: make(chan struct{}, lim.streams)}
}

// reserve takes n bytes of the buffering budget; false when it has none.
func (g *bodyGate) reserve(n int64) bool {
	if g.buffered.Add(n) > g.lim.budget {
		g.buffered.Add(-n)
		return false
	}
	return true
}

// reqBody is a client's body ready to go upstream.
type reqBody struct {
	r    io.Reader // nil: no body
	n    int64     // its length, -1 when unknown
	done func()    // releases what the body holds; call once
}

// Errors of reading a request body, answered by writeBodyError.
var (
	errBodySlow = errors.New("edge: request body too slow")
	errBodyBusy = errors.New("edge: too many request bodies in flight")
)

// readBody prepares r's body for the upstream: read whole when small (so
// the upstream connection is taken only once it is here), else a turn to
// stream it. Both enforce the minimum rate. An error means the client was
// answered nothing yet; writeBodyError answers it.
func (g *bodyGate) readBody(w http.ResponseWriter, r *http.Request, now func() time.Time) (reqBody, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return reqBody{n: 0, done: func() {}}, nil
	}
	mr := &minRateReader{r: r.Body, rc: http.NewResponseController(w), start: now(), now: now, lim: g.lim}
	// The body is read into chunks taken from the budget as bytes arrive,
	// so a client holds only the memory of what it has sent.
	const chunk = 64 << 10
	var chunks [][]byte
	var size, reserved int64
	release := func() { g.buffered.Add(-reserved) }
	reader := func() io.Reader {
		rs := make([]io.Reader, len(chunks))
		for i, c := range chunks {
			rs[i] = bytes.NewReader(c)
		}
		return io.MultiReader(rs...)
	}
	for r.ContentLength <= g.lim.bufferMax && size <= g.lim.bufferMax {
		if len(chunks) == 0 || len(chunks[len(chunks)-1]) == cap(chunks[len(chunks)-1]) {
			// One byte past bufferMax tells a chunked body that outgrew
			// the buffer; one past ContentLength lets the reader say EOF.
			n := min(chunk, g.lim.bufferMax+1-size)
			if r.ContentLength > 0 {
				n = min(n, r.ContentLength+1-size)
			}
			if !g.reserve(n) {
				break // out of budget: stream the rest
			}
			reserved += n
			chunks = append(chunks, make([]byte, 0, n))
		}
		c := chunks[len(chunks)-1]
		n, err := mr.Read(c[len(c):cap(c)])
		chunks[len(chunks)-1] = c[:len(c)+n]
		size += int64(n)
		if err == io.EOF {
			return reqBody{r: reader(), n: size, done: release}, nil
		}
		if err != nil {
			release()
			return reqBody{}, err
		}
	}
	// Stream: the rest of the body goes upstream as it comes, at the
	// minimum rate, on one of a bounded number of turns.
	t := time.NewTimer(g.lim.wait)
	defer t.Stop()
	select {
	case g.turns <- struct{}{}:
	case <-t.C:
		release()
		return reqBody{}, errBodyBusy
	case <-r.Context().Done():
		release()
		return reqBody{}, r.Context().Err()
	}
	return reqBody{r: io.MultiReader(reader(), mr), n: r.ContentLength, done: func() {
		<-g.turns
		release()
		mr.clear()
	}}, nil
}

// writeBodyError answers a request whose body could not be read (err from
// readBody or from sending it upstream); false when err is none of those.
func (x *exchange) writeBodyError(err error, fwd string) bool {
	code, detail := 0, ""
	switch {
	case errors.Is(err, errBodySlow):
		code, detail = http.StatusRequestTimeout, "request body too slow"
	case errors.Is(err, errBodyBusy):
		code, detail = http.StatusServiceUnavailable, "too many request bodies in flight"
	case errors.Is(err, context.Canceled):
		return true // the client left
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code, detail = http.StatusRequestEntityTooLarge, "request body too large"
		} else {
			// A malformed body (a bad chunk, a short one).
			code, detail = http.StatusBadRequest, "malformed request body"
		}
	}
	x.s.count("bypass")
	x.w.Header().Set("Connection", "close")
	x.writeError(code, detail, fwd)
	return true
}

// minRateReader reads a request body at no less than the minimum rate: it
// sets the connection's read deadline to when the bytes read so far must
// have come by, and turns a missed deadline into errBodySlow.
type minRateReader struct {
	r     io.Reader
	rc    *http.ResponseController
	start time.Time
	now   func() time.Time
	lim   bodyLimits
	got   int64
	// noDeadline: the writer cannot set read deadlines (a test recorder);
	// the rate is then checked after each read only.
	noDeadline bool
}

func (m *minRateReader) deadline() time.Time {
	secs, rest := m.got/m.lim.minRate, m.got%m.lim.minRate
	return m.start.Add(m.lim.grace + time.Duration(secs)*time.Second + time.Duration(rest)*time.Second/time.Duration(m.lim.minRate))
}

func (m *minRateReader) Read(p []byte) (int, error) {
	dl := m.deadline()
	if !m.noDeadline {
		if err := m.rc.SetReadDeadline(dl); err != nil {
			m.noDeadline = true
		}
	}
	n, err := m.r.Read(p)
	m.got += int64(n)
	if err != nil {
		m.clear()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, errBodySlow
		}
		return n, err
	}
	if m.now().After(dl) {
		m.clear()
		return n, errBodySlow
	}
	return n, nil
}

// clear lifts the deadline once the body is read: net/http's own reads of
// the connection (which watch for the client going away while the
// response is prepared) must not time out on it.
func (m *minRateReader) clear() {
	if !m.noDeadline {
		_ = m.rc.SetReadDeadline(time.Time{})
	}
}
