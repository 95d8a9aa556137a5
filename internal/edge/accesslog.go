package edge

// The access log (internal/accesslog) at each serving tier. Each tier logs
// a request once its response has ended, with one call: net/http through
// the handler accessLogged wraps, the goroutine fast path in
// serveFastHitLogged, the io_uring loop in serveLogged
// (accesslog_linux.go). The fast tiers answer only 200s, so they ask the
// sampler before serving and do no work for a request left out; the
// lookup (lookupFast, serveFastCollapsed) leaves in fastConnState.out what
// only it knows: whether the hit was a collapsed miss, the body size and
// when the response header was ready.

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubecdn/kubecdn/internal/accesslog"
	"github.com/kubecdn/kubecdn/internal/edge/wire"
)

// fastOut is what a fast tier's lookup tells the access log of a request
// it answered.
type fastOut struct {
	head      time.Time // the response header was ready
	bytes     int64     // the body's size (0 is written for HEAD)
	collapsed bool      // a miss fed by another request's upstream fetch
}

// openAccessLog opens the access log the config asks for and counts its
// lines in the edge's metrics. A no-op when the log is off.
func (s *Server) openAccessLog(cfg Config, stdout io.Writer) error {
	if cfg.AccessLog == "" || cfg.AccessLog == accesslog.Off {
		return nil
	}
	if stdout == nil {
		stdout = os.Stdout
	}
	sink, err := accesslog.Open(cfg.AccessLog, stdout)
	if err != nil {
		return err
	}
	rate := cfg.AccessLogSample
	switch {
	case rate == 0:
		rate = 1
	case rate < 0:
		rate = 0 // errors only
	}
	host, _ := os.Hostname() // the pod's name in Kubernetes
	l, err := accesslog.New(accesslog.Options{Sink: sink, SampleRate: rate, Seed: uint64(time.Now().UnixNano()), Edge: host, Region: cfg.Region})
	if err != nil {
		sink.Close()
		return err
	}
	s.alog, s.alogSink = l, sink
	const ns, sub = "kubecdn", "edge"
	for _, c := range []struct {
		result string
		n      func() uint64
	}{
		{"written", func() uint64 { return l.Stats().Written }},
		{"dropped", func() uint64 { return l.Stats().Dropped }},
	} {
		s.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "access_log_lines_total",
			Help:        "Access log lines, by result: written, or dropped because the sink fell behind.",
			ConstLabels: prometheus.Labels{"result": c.result},
		}, func() float64 { return float64(c.n()) }))
	}
	return nil
}

// closeAccessLog writes what the access log holds and closes its file; Run
// calls it once every request has ended.
func (s *Server) closeAccessLog() {
	if s.alog == nil {
		return
	}
	if err := s.alog.Close(); err != nil {
		s.log.Warn("access log", "err", err)
	}
	if err := s.alogSink.Close(); err != nil {
		s.log.Warn("access log", "err", err)
	}
}

// ReopenAccessLog reopens the access log's file (SIGHUP, after logrotate
// moved it away); a no-op for standard output or no log.
func (s *Server) ReopenAccessLog() error {
	if s.alog == nil {
		return nil
	}
	s.alog.Flush()
	return s.alogSink.Reopen()
}

// upstreamNote is where a request's own upstream fetches (the pass, or the
// fill it leads) leave their status and time for the access log. The fill
// may outlive the request, hence atomics.
type upstreamNote struct {
	status atomic.Int64
	nanos  atomic.Int64
}

type upstreamNoteKey struct{}

// noteUpstream records an upstream response (or failure, status 0) taken
// since start, when ctx belongs to a logged request.
func noteUpstream(ctx context.Context, resp *http.Response, start time.Time) {
	n, _ := ctx.Value(upstreamNoteKey{}).(*upstreamNote)
	if n == nil {
		return
	}
	if resp != nil {
		n.status.Store(int64(resp.StatusCode))
	}
	n.nanos.Add(int64(time.Since(start)))
}

// withUpstreamNote gives a fill's context the note of the request that
// leads it (nil: a fill of its own).
func withUpstreamNote(ctx context.Context, leader *http.Request) context.Context {
	if leader == nil {
		return ctx
	}
	if n, ok := leader.Context().Value(upstreamNoteKey{}).(*upstreamNote); ok {
		return context.WithValue(ctx, upstreamNoteKey{}, n)
	}
	return ctx
}

// accessLogged wraps the net/http tier's handler h so that each request is
// counted (demand.go) and logged once it ends (a panic that aborts the
// response included). The health path the dns probes every second is
// neither.
func (s *Server) accessLogged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == HealthPath {
			h.ServeHTTP(w, r)
			return
		}
		lw := &logWriter{ResponseWriter: w}
		note := &lw.up
		if s.alog != nil {
			r = r.WithContext(context.WithValue(r.Context(), upstreamNoteKey{}, note))
		}
		start := s.now()
		// Read before the handler, which removes fields a client may not
		// send on (the hop field among them).
		ua, ref := r.Header.Get("User-Agent"), r.Header.Get("Referer")
		rt := s.rt.Load()
		fromEdge := r.Header.Get(hopHeader) != "" && s.edgeHop(r, rt) != ""
		defer func() {
			s.metrics.protocols.WithLabelValues(protoLabel(r)).Inc()
			s.countServed(r, lw, fromEdge, rt)
			if s.alog == nil || !s.alog.Sample(lw.status) {
				return
			}
			end := s.now()
			rec := accesslog.Record{
				Time: end, Method: r.Method, Host: r.Host, URL: r.RequestURI,
				Protocol: protoName(r), Status: lw.status, Bytes: lw.bytes,
				Duration: end.Sub(start), UserAgent: ua, Referer: ref,
				UpstreamStatus: int(note.status.Load()), UpstreamTime: time.Duration(note.nanos.Load()),
			}
			if lw.status == 0 {
				rec.Status = 499 // nothing was sent: the client went away (nginx's number)
			} else {
				rec.TTFB = lw.head.Sub(start)
			}
			rec.Client, _ = netip.ParseAddrPort(r.RemoteAddr)
			if r.TLS != nil {
				rec.TLSVersion = tlsVersionName(r.TLS.Version)
			}
			var cs string
			if v := lw.Header()["Cache-Status"]; len(v) > 0 {
				cs = v[len(v)-1]
			}
			rec.Cache = cacheOutcome(cs, rec.Status)
			s.alog.Log(&rec)
		}()
		h.ServeHTTP(lw, r)
	})
}

// logWriter is the net/http tier's ResponseWriter, seen by the access log:
// status, body bytes and when the header went out. It passes Flush and
// ReadFrom (sendfile) through, and Unwrap for http.ResponseController.
type logWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	head   time.Time
	up     upstreamNote // the request's own upstream fetches
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status, w.head = code, time.Now()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status, w.head = http.StatusOK, time.Now()
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *logWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status, w.head = http.StatusOK, time.Now()
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

func (w *logWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides every method but Write (io.Copy must not call ReadFrom
// back).
type writerOnly struct{ io.Writer }

// cacheOutcome is the access log's cache field of a response whose own
// Cache-Status member (the edge's, the last) is cs.
func cacheOutcome(cs string, status int) string {
	var hit, stale, revalidated, bypass, fwdStatus bool
	for i, p := range strings.Split(cs, ";") {
		if i == 0 {
			continue // the cache's name
		}
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch k {
		case "hit":
			hit = true
		case "fwd":
			bypass = v == "bypass"
		case "fwd-status":
			fwdStatus = true
		case "detail":
			switch strings.Trim(v, `"`) {
			case "revalidated":
				revalidated = true
			case "stale-while-revalidate", "stale-if-error", "upstream-slow":
				stale = true
			}
		}
	}
	switch {
	case cs == "" && status >= 400:
		return accesslog.Error
	case cs == "":
		return accesslog.Pass // the edge's own answers: redirects, ACME
	case stale:
		return accesslog.Stale
	case hit:
		return accesslog.Hit
	case revalidated:
		return accesslog.Revalidated
	case bypass && !fwdStatus && status >= 400 && status < 500:
		return accesslog.Refused
	case !fwdStatus && status >= 400:
		return accesslog.Error // the edge's own error: upstream unreachable, only-if-cached, ...
	case bypass:
		return accesslog.Pass
	}
	return accesslog.Miss
}

func protoName(r *http.Request) string {
	switch {
	case r.ProtoMajor == 2:
		return "HTTP/2"
	case r.ProtoMajor == 3:
		return "HTTP/3"
	}
	return r.Proto
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

// serveFastHitLogged is serveFastHit, logged and counted (demand.go): br
// still holds the request (head bytes, not discarded yet), tlsState is the
// connection's on HTTPS.
func (s *Server) serveFastHitLogged(x *fastExchange, br *bufio.Reader, tlsState *tls.ConnectionState) bool {
	logged := s.alog != nil && s.alog.Sample(http.StatusOK)
	var start time.Time
	if logged {
		start = s.now()
	}
	if !x.serveHit() {
		return false
	}
	if !x.st.peer.IsValid() {
		if a, ok := x.c.RemoteAddr().(*net.TCPAddr); ok {
			x.st.peer = a.AddrPort()
		}
	}
	s.countFast(x.st, x.req.Head)
	if !logged {
		return true
	}
	raw, _ := br.Peek(x.req.Size)
	tv := ""
	if tlsState != nil {
		tv = tlsVersionName(tlsState.Version)
	}
	s.logFast(start, x.st, &x.req, raw, tv)
	return true
}

// logFast logs a request a fast tier answered; raw is its header.
func (s *Server) logFast(start time.Time, st *fastConnState, req *wire.Request, raw []byte, tlsVersion string) {
	end := s.now()
	out := st.out
	rec := accesslog.Record{
		Time: end, Client: st.peer, Method: http.MethodGet, Host: bytesString(req.Host), URL: bytesString(req.Target),
		Protocol: "HTTP/1.1", TLSVersion: tlsVersion, Status: http.StatusOK, Bytes: out.bytes,
		Duration: end.Sub(start), TTFB: max(out.head.Sub(start), 0), Cache: accesslog.Hit,
		UserAgent: bytesString(wire.HeaderValue(raw, "user-agent")), Referer: bytesString(wire.HeaderValue(raw, "referer")),
	}
	if req.Head {
		rec.Method, rec.Bytes = http.MethodHead, 0
	}
	if out.collapsed {
		rec.Cache = accesslog.Miss
	}
	s.alog.Log(&rec)
}

// bytesString views b as a string without copying. Only for records:
// Logger.Log encodes them before it returns, while b is unchanged.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
