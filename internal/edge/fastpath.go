package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubecdn/kubecdn/internal/acme"
	"github.com/kubecdn/kubecdn/internal/edge/wire"
	"github.com/kubecdn/kubecdn/internal/httpcache"
	"github.com/kubecdn/kubecdn/internal/store"
)

// The fast path serves the commonest request of a CDN — a plain HTTP/1.1
// GET or HEAD of a fresh object — straight from the connection, with the
// stored header serialised once per object. Anything else (a request with a
// body, a conditional or range request, a header that bears on caching, any
// syntax outside a strict subset, a miss, a stale or varying object) is
// handed, with the bytes already read, to net/http, which then serves the
// connection for the rest of its life. So the fast path never has to be
// lenient: when in doubt it hands over, and net/http's own strict parser
// answers (400, 431, ...).

const (
	fastBufSize     = 8 << 10 // a request header larger than this is handed over
	fastIdleTimeout = 120 * time.Second
	fastReadTimeout = 10 * time.Second
	// fastWriteTimeout bounds the sending of one body (on the io_uring
	// loop: the time a send may go without progress).
	fastWriteTimeout = 5 * time.Minute
	// fastParkAfter is how long a plain connection waits for its next
	// request with a goroutine and buffers; after that (1 to 2 times this),
	// it waits in the waiter with neither (see wire.Waiter).
	fastParkAfter = 2 * time.Second
)

// The fast path's buffers live only while a connection has a request to
// read or a response to write: an idle keep-alive connection holds none.
var (
	fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastBufSize) }}
	fastWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}
)

// freshMemo is a Fresh decision of httpcache.Decide for a request without
// header fields, taken at wall time at (Unix ns) under the options of rt.
// While the stored response is resident (at is not before its response
// time), its age grows and its ttl shrinks by exactly the time passed, and
// with no request directives it stays Fresh while ttl > 0; so a later
// decision is the memo shifted, with no header parsing. fastpath_test.go
// checks this against Decide.
type freshMemo struct {
	rt       *liveConfig
	at       int64
	age, ttl time.Duration
}

// decideFast is httpcache.Decide(emptyHeader, stored(cm.m), now, rt.opts)
// for a decision of Fresh; ok is false when the object may not be served
// fresh.
func (cm *cachedMeta) decideFast(rt *liveConfig, now time.Time) (age, ttl time.Duration, ok bool) {
	wall := now.UnixNano()
	if f := cm.fresh.Load(); f != nil && f.rt == rt && wall >= f.at {
		d := time.Duration(wall - f.at)
		if f.ttl-d > 0 {
			return f.age + d, f.ttl - d, true
		}
		return 0, 0, false
	}
	dec, age, ttl := httpcache.Decide(emptyHeader, stored(cm.m), now, rt.opts)
	if dec != httpcache.Fresh {
		return 0, 0, false
	}
	if ttl > 0 && !now.Before(cm.m.RespTime) {
		cm.fresh.Store(&freshMemo{rt: rt, at: wall, age: age, ttl: ttl})
	}
	return age, ttl, true
}

// fastListener is what net/http serves: the connections the fast path hands
// over.
type fastListener struct {
	inner   net.Listener
	handoff chan net.Conn
	closed  chan struct{}
	once    sync.Once
}

func (l *fastListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fastListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.inner.Close()
}

func (l *fastListener) Addr() net.Addr { return l.inner.Addr() }

// fastConns tracks the connections the fast path holds, so a shutdown can
// close the idle ones (parked ones too) and wait for the busy ones. wg
// counts the goroutines serving them.
type fastConns struct {
	mu    sync.Mutex
	conns map[net.Conn]*fastConn
	wg    sync.WaitGroup
}

// fastConn is one connection on the fast path.
type fastConn struct {
	c      net.Conn
	fl     *fastListener
	tlsCfg *tls.Config // nil: plain HTTP
	busy   atomic.Bool // reading or answering a request
	kept   atomic.Bool // has answered a request: idle now means kept alive
	// prefix holds bytes read before the connection came to the fast path
	// (from the io_uring loop), read before c's own.
	prefix []byte
}

// fastEnd is how serving a fast connection ended.
type fastEnd int

const (
	fastClosed fastEnd = iota // close the connection
	fastHanded                // net/http serves it now
	fastParked                // idle, in the waiter, with no goroutine
)

// runFast serves fc on the fast path, in a goroutine that acceptLoop or
// resumeFast counted in s.fast.wg.
func (s *Server) runFast(fc *fastConn) {
	defer s.fast.wg.Done()
	var end fastEnd
	if fc.tlsCfg == nil {
		end = s.serveFast(fc, fc.c, nil)
	} else {
		end = s.serveFastTLS(fc)
	}
	if end == fastParked {
		return // still tracked: a shutdown closes it
	}
	s.untrackFast(fc)
	if end == fastClosed {
		fc.c.Close()
	}
}

// resumeFast serves a parked connection that has a request again.
func (s *Server) resumeFast(fc *fastConn) {
	s.fast.mu.Lock()
	if s.draining.Load() || s.fast.conns[fc.c] != fc {
		delete(s.fast.conns, fc.c)
		s.fast.mu.Unlock()
		fc.c.Close()
		return
	}
	s.fast.wg.Add(1)
	s.fast.mu.Unlock()
	go s.runFast(fc)
}

// waiter parks the fast path's idle plain connections, with no goroutine
// or buffers each (Linux; see wire.Waiter).
type waiter = wire.Waiter[*fastConn]

// newWaiter starts the waiter: a parked connection that sends again is
// served by a new goroutine, one idle past s.fastIdle is closed.
func newWaiter(s *Server) (*waiter, error) {
	return wire.NewWaiter(min(s.fastIdle/4, 5*time.Second), s.resumeFast, func(fc *fastConn) {
		s.untrackFast(fc)
		fc.c.Close()
	})
}

func (s *Server) untrackFast(fc *fastConn) {
	s.fast.mu.Lock()
	if s.fast.conns[fc.c] == fc {
		delete(s.fast.conns, fc.c)
	}
	s.fast.mu.Unlock()
}

// acceptLoop accepts connections and serves each on the fast path first.
// With tlsCfg, each connection is a TLS one: after the handshake, HTTP/2
// goes to net/http at once, HTTP/1.1 takes the fast path with https keys.
func (s *Server) acceptLoop(ln net.Listener, fl *fastListener, tlsCfg *tls.Config) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		if s.opts.Observer != nil {
			s.opts.Observer.ObserveConn(c)
		}
		fc := &fastConn{c: c, fl: fl, tlsCfg: tlsCfg}
		s.fast.mu.Lock()
		if s.draining.Load() {
			s.fast.mu.Unlock()
			c.Close()
			continue
		}
		s.fast.conns[c] = fc
		s.fast.wg.Add(1)
		s.fast.mu.Unlock()
		go s.runFast(fc)
	}
}

// serveFastTLS completes the TLS handshake, then serves HTTP/1.1 on the
// fast path; HTTP/2 goes to net/http as it is (it needs the *tls.Conn).
func (s *Server) serveFastTLS(fc *fastConn) fastEnd {
	tc := tls.Server(fc.c, fc.tlsCfg)
	ctx, cancel := context.WithTimeout(context.Background(), fastReadTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		return fastClosed
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == acme.ALPNProto {
		return fastClosed // a TLS-ALPN-01 challenge: the handshake was all of it
	}
	if st.NegotiatedProtocol == "h2" {
		select {
		case fc.fl.handoff <- tc:
			return fastHanded
		case <-fc.fl.closed:
			return fastClosed
		}
	}
	return s.serveFast(fc, tc, &st)
}

// tlsStateKey carries the TLS state of a connection the fast path handed
// to net/http wrapped (so net/http cannot see it is TLS) into its requests.
type tlsStateKey struct{}

// connContext is the ConnContext of the net/http servers behind the fast
// path.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if f, ok := c.(*wire.FramingConn); ok {
		if p, ok := f.Conn.(*wire.PrefixConn); ok && p.TLS != nil {
			return context.WithValue(ctx, tlsStateKey{}, p.TLS)
		}
	}
	return ctx
}

// closeIdleFast closes the fast connections that wait for a request.
func (s *Server) closeIdleFast() {
	s.fast.mu.Lock()
	for c, fc := range s.fast.conns {
		if !fc.busy.Load() {
			c.Close()
		}
	}
	s.fast.mu.Unlock()
}

var emptyHeader = http.Header{}

// serveFast serves requests on c while they fit the fast path; c is fc.c,
// or the TLS connection over it when tlsState is set.
func (s *Server) serveFast(fc *fastConn, c net.Conn, tlsState *tls.ConnectionState) fastEnd {
	br := fastReaders.Get().(*bufio.Reader)
	bw := fastWriters.Get().(*bufio.Writer)
	rd := c // what br reads from
	if fc.prefix != nil && tlsState == nil {
		rd = &wire.PrefixConn{Conn: c, Prefix: fc.prefix}
		fc.prefix = nil
	}
	br.Reset(rd)
	bw.Reset(c)
	defer func() {
		br.Reset(nil)
		bw.Reset(nil)
		fastReaders.Put(br)
		fastWriters.Put(bw)
	}()
	handOver := func() fastEnd {
		if bw.Flush() != nil {
			return fastClosed
		}
		n := br.Buffered()
		prefix, _ := br.Peek(n)
		c.SetDeadline(time.Time{})
		pc := wire.NewFramingConn(&wire.PrefixConn{Conn: rd, Prefix: append([]byte(nil), prefix...), TLS: tlsState}, s.rt.Load().cfg.MaxHeaderBytes)
		select {
		case fc.fl.handoff <- pc:
			return fastHanded
		case <-fc.fl.closed:
			return fastClosed
		}
	}
	// A plain connection that stays idle is parked after s.parkAfter; a TLS
	// one (its own buffers hold what it has read) waits out the idle timeout.
	st := fastConnState{idleWait: s.fastIdle}
	if tlsState == nil && s.waiter.Load() != nil {
		st.idleWait = s.parkAfter
	}
	for {
		fc.busy.Store(false)
		if s.draining.Load() {
			return fastClosed
		}
		// Wait for a request, then read its header.
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return fastClosed
			}
			if end, ok := s.waitFast(fc, c, br, &st, tlsState == nil); !ok {
				return end
			}
		}
		fc.busy.Store(true)
		var req wire.Request
		partial := false
		for {
			buf, _ := br.Peek(br.Buffered())
			r, ok, complete := wire.ParseRequest(buf)
			if !ok {
				return handOver()
			}
			if complete {
				req = r
				break
			}
			if br.Buffered() >= fastBufSize {
				return handOver()
			}
			if !partial {
				// The header is incomplete: the rest has fastReadTimeout to
				// come in (once per header, so a slow drip gains nothing).
				partial = true
				st.deadline, st.idle = time.Now().Add(fastReadTimeout).UnixNano(), false
				c.SetReadDeadline(time.Unix(0, st.deadline))
			}
			if _, err := br.Peek(br.Buffered() + 1); err != nil {
				if br.Buffered() > 0 {
					return handOver() // let net/http answer the partial request
				}
				return fastClosed
			}
		}
		// Draining (drain.go): this response is the connection's last.
		req.Close = req.Close || s.connDrain.Load()
		x := fastExchange{s: s, bw: bw, c: c, st: &st, req: req, https: tlsState != nil}
		if !s.serveFastHitLogged(&x, br, tlsState) {
			return handOver()
		}
		br.Discard(req.Size)
		if !fc.kept.Load() {
			fc.kept.Store(true)
		}
		if req.Close {
			bw.Flush()
			return fastClosed
		}
	}
}

// waitFast waits for the next request on an idle connection. When none
// comes within st.idleWait, a plain connection is parked in the waiter,
// which holds it without a goroutine or buffers; false says how serving
// ended.
func (s *Server) waitFast(fc *fastConn, c net.Conn, br *bufio.Reader, st *fastConnState, plain bool) (fastEnd, bool) {
	idleSince := time.Now()
	st.setIdleDeadline(c, idleSince)
	for {
		_, err := br.Peek(1)
		if err == nil {
			return 0, true
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || br.Buffered() > 0 {
			return fastClosed, false
		}
		if plain && s.waiter.Load().Park(fc.c, fc, idleSince.Add(s.fastIdle)) {
			return fastParked, false
		}
		now := time.Now()
		if now.Sub(idleSince) >= s.fastIdle {
			return fastClosed, false
		}
		st.idle = false // not parked: wait on
		st.setIdleDeadline(c, now)
	}
}

// fastConnState is what one fast connection keeps from request to request:
// the cache key of its last request and the metadata last decoded for it,
// since a client on a keep-alive connection often asks for the same object
// again.
type fastConnState struct {
	host, target []byte
	https        bool
	k            string
	cm           *cachedMeta
	// deadline is the read deadline set on the connection, as Unix ns (0:
	// none); idle tells whether it is the idle one, which gives the client
	// idleWait to send its next request.
	deadline int64
	idle     bool
	idleWait time.Duration
	peer     netip.AddrPort // the client, once the access log or the demand counters asked
	placed   placed         // the client's nearest region's counter and gain, once placed (demand.go)
	out      fastOut        // the last answer, for the access log (accesslog.go)
}

// setIdleDeadline gives the client idleWait from now to send its next
// request. The deadline is moved only when it is a second or more short of
// that, which spares a timer update per request.
func (st *fastConnState) setIdleDeadline(c net.Conn, now time.Time) {
	want := now.Add(st.idleWait).UnixNano()
	if st.idle && want-st.deadline < int64(time.Second) {
		return
	}
	st.deadline, st.idle = want, true
	c.SetReadDeadline(time.Unix(0, want))
}

// key returns the cache key of req: httpcache.Key's, remembered for the
// next request on the connection.
func (st *fastConnState) key(req *wire.Request, https bool) string {
	if st.k != "" && st.https == https && bytes.Equal(st.target, req.Target) && bytes.Equal(st.host, req.Host) {
		return st.k
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	st.k = objKey(httpcache.Key(scheme, string(req.Host), string(req.Target)))
	st.host = append(st.host[:0], req.Host...)
	st.target = append(st.target[:0], req.Target...)
	st.https = https
	st.cm = nil
	return st.k
}

// meta returns mc.get(key, raw), skipping the shared cache when raw is the
// metadata this connection decoded last.
func (st *fastConnState) meta(mc *metaCache, key string, raw []byte) (*cachedMeta, error) {
	if cm := st.cm; cm != nil && len(raw) > 0 && len(cm.raw) == len(raw) && &cm.raw[0] == &raw[0] {
		return cm, nil
	}
	cm, err := mc.get(key, raw)
	if err == nil {
		st.cm = cm
	}
	return cm, err
}

// fastExchange is one request on the fast path, on the goroutine path or
// the io_uring loop: the request's header, the connection state it came on,
// whether over TLS, and the settings it is served under. Its methods look
// the request up and write the answer.
type fastExchange struct {
	s     *Server
	bw    *bufio.Writer // the connection's writer (nil on the io_uring loop)
	c     net.Conn      // the connection (nil on the io_uring loop)
	st    *fastConnState
	req   wire.Request
	https bool
	rt    *liveConfig // set by lookup
}

// fastLookup is what lookup found for a request.
type fastLookup struct {
	key string
	m   *objMeta // the hit's metadata
	// e is a fresh hit the stored header answers (the caller closes it),
	// with head, the response header, appended to the buffer given; nil
	// means a miss.
	e    *store.Entry
	head []byte
	size int64
}

// fastHead is what the header of a 200 the fast path serves says beyond
// what the request and its settings give.
type fastHead struct {
	wire    []byte // the stored fields, "Name: value\r\n" lines
	date    bool   // wire holds a Date
	now     time.Time
	age     time.Duration
	withAge bool // send Age
	cs      httpcache.CacheStatus
	size    int64
}

// lookup looks x.req up for the fast path. ok is false when the fast path
// must not answer it (hand it over); otherwise l.e is nil for a miss, or a
// fresh hit whose response header lookup appended to b as l.head. A
// sliced object is a hit only when sliced is set (l.e is then its
// metadata entry, and the caller gathers the slices).
func (x *fastExchange) lookup(b []byte, sliced bool) (l fastLookup, ok bool) {
	s, req := x.s, &x.req
	rt := s.rt.Load()
	if len(rt.hosts) > 0 && !rt.hosts[hostOnly(string(req.Host))] {
		return l, false
	}
	if !x.https && len(rt.cfg.HTTPSRedirect) > 0 && redirectsHost(&rt.cfg, string(req.Host)) {
		return l, false
	}
	if bytes.HasPrefix(req.Target, []byte("/.well-known/")) {
		return l, false // the health path and ACME challenges: net/http's way
	}
	x.rt, l.key = rt, x.st.key(req, x.https)
	e, found := s.store.Get(l.key)
	if !found {
		return l, true
	}
	cm, err := x.st.meta(s.metas, l.key, e.Meta())
	if err != nil || cm.m.Marker || cm.m.Status != http.StatusOK || (cm.m.Sliced && !sliced) || cm.m.Size < 0 {
		e.Close()
		return l, false
	}
	now := s.now()
	age, ttl, fresh := cm.decideFast(rt, now)
	if !fresh {
		e.Close()
		return l, false
	}
	l.e, l.m, l.size = e, cm.m, cm.m.Size
	x.st.out = fastOut{head: now, bytes: cm.m.Size}
	l.head = x.appendHeader(b, &fastHead{wire: cm.wire, date: cm.date, now: now, age: age, withAge: true,
		cs: httpcache.CacheStatus{Cache: rt.cfg.Name, Hit: true, TTL: ttl, HasTTL: true}, size: cm.m.Size})
	return l, true
}

// serveHit writes the response to x.req if it is a fresh hit that needs
// nothing beyond the stored header; false means nothing was written.
func (x *fastExchange) serveHit() bool {
	s, bw, c := x.s, x.bw, x.c
	l, ok := x.lookup(bw.AvailableBuffer(), false)
	if !ok {
		return false
	}
	if l.e == nil {
		return x.serveCollapsed(l.key)
	}
	e, b := l.e, l.head
	defer func() { e.Close() }()
	s.metrics.hits.Inc()
	if x.req.Head {
		bw.Write(b)
		return true
	}
	if e.Body() != nil && l.size >= sendfileMin && s.disk != nil {
		if de, ok := s.disk.Get(l.key); ok {
			if bytes.Equal(de.Meta(), e.Meta()) && de.Body() == nil {
				e.Close()
				e = de
			} else {
				de.Close()
			}
		}
	}
	if body := e.Body(); body != nil && len(body) <= bw.Available()-len(b) {
		b = append(b, body...)
		bw.Write(b)
	} else {
		bw.Write(b)
		if bw.Flush() != nil {
			return true // the client went away; the caller's next read fails
		}
		c.SetWriteDeadline(time.Now().Add(s.fastWrite))
		e.WriteBodyTo(c, 0, l.size)
		c.SetWriteDeadline(time.Time{})
	}
	s.metrics.bytesOut.Add(float64(l.size))
	return true
}

// serveCollapsed serves x.req, a miss, from the upstream fetch already in
// flight for key, as net/http's way would for a collapsed request: it waits
// for the response header, then streams the body as it arrives. A miss with
// no fetch in flight, or whose fetch ended any other way than with a plain
// storable 200 of known length, is left to net/http (false: nothing was
// written), which starts the fetch or handles the outcome.
func (x *fastExchange) serveCollapsed(key string) bool {
	s, bw, c, rt := x.s, x.bw, x.c, x.rt
	s.mu.Lock()
	f := s.fills[key]
	s.mu.Unlock()
	if f == nil {
		return false
	}
	ctx := s.bgCtx
	f.waiting.Add(1)
	select {
	case <-f.ready:
	case <-ctx.Done():
		f.waiting.Add(-1)
		return false
	}
	f.waiting.Add(-1)
	m := f.meta
	if f.kind != fillStored || m.Status != http.StatusOK || m.Sliced || m.Size < 0 || len(m.VaryNames) > 0 {
		return false
	}
	st := f.streamAt(ctx, 0)
	if st == nil {
		return false
	}
	s.metrics.coalesced.Inc()
	s.metrics.misses.Inc()
	h := fastHead{now: s.now(), size: m.Size}
	var ttl time.Duration
	h.wire, h.date, h.age, ttl = f.wireHeader(rt, h.now)
	x.st.out = fastOut{head: h.now, bytes: m.Size, collapsed: true}
	// As writeStored: Age when the response has aged or came with one.
	h.withAge = h.age > 0 || m.Header.Get("Age") != ""
	h.cs = httpcache.CacheStatus{Cache: rt.cfg.Name, Fwd: "uri-miss", FwdStatus: f.status, Collapsed: true, Stored: true, TTL: ttl, HasTTL: true}
	b := x.appendHeader(bw.AvailableBuffer(), &h)
	if x.req.Head || m.Size == 0 {
		bw.Write(b)
		return true
	}
	if bw.Buffered() > 0 && bw.Flush() != nil {
		return true // the client went away; the caller's next read fails
	}
	f.readers.Add(1)
	defer f.readers.Add(-1)
	c.SetWriteDeadline(time.Now().Add(s.fastWrite))
	hw := &headWriter{c: c, head: b}
	n, err := st.copyTo(ctx, hw, 0, m.Size)
	c.SetWriteDeadline(time.Time{})
	s.metrics.bytesOut.Add(float64(n))
	if err != nil {
		// The header is out: close so the client sees a truncated body,
		// never a short one passed off as whole.
		s.metrics.aborted.Inc()
		s.log.Warn("response aborted", "key", key, "offset", n, "err", err)
		c.Close()
	}
	return true
}

// appendHeader appends the header of a 200 the fast path serves: the
// stored fields (h.wire), a Date unless they hold one, then Age (when
// h.withAge), Cache-Status, HSTS on https, Accept-Ranges, Content-Length
// and, when the client asked, Connection: close.
func (x *fastExchange) appendHeader(b []byte, h *fastHead) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	b = append(b, h.wire...)
	if !h.date {
		b = append(b, "Date: "...)
		b = append(b, x.s.httpDate(h.now)...)
		b = append(b, "\r\n"...)
	}
	if h.withAge {
		b = append(b, "Age: "...)
		b = httpcache.AppendAge(b, h.age)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Cache-Status: "...)
	b = h.cs.Append(b)
	if x.https && x.rt.cfg.HSTSMaxAge > 0 {
		b = append(b, "\r\nStrict-Transport-Security: max-age="...)
		b = strconv.AppendInt(b, int64(x.rt.cfg.HSTSMaxAge/time.Second), 10)
	}
	if x.https {
		b = appendAltSvc(b, x.s.h3AltSvc()) // HTTP/3 (h3.go)
	}
	b = append(b, "\r\nAccept-Ranges: bytes\r\nContent-Length: "...)
	b = strconv.AppendInt(b, h.size, 10)
	if x.req.Close {
		b = append(b, "\r\nConnection: close"...)
	}
	return append(b, "\r\n\r\n"...)
}

// headWriter writes head together with the first bytes written through it,
// in one system call.
type headWriter struct {
	c    net.Conn
	head []byte
}

func (w *headWriter) Write(p []byte) (int, error) {
	if w.head == nil {
		return w.c.Write(p)
	}
	bufs := net.Buffers{w.head, p}
	n, err := bufs.WriteTo(w.c)
	n -= int64(len(w.head))
	w.head = nil
	return int(max(n, 0)), err
}

// httpDate formats now as an HTTP date, once per second.
func (s *Server) httpDate(now time.Time) string {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &cachedDate{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	s.date.Store(d)
	return d.s
}

type cachedDate struct {
	sec int64
	s   string
}
