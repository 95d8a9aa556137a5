package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/httpcache"
	"github.com/kubecdn/kubecdn/internal/store"
)

// Headers between edges. hopHeader marks a request from another kubecdn edge
// ("peer" inside a region, "child" from a region whose parent we are).
const (
	hopHeader  = "Kubecdn-Hop"
	loopHeader = "Cdn-Loop" // RFC 8586
)

// reqInfo is what a fetch needs of the client request, detached from it so a
// fill can outlive the request that started it.
type reqInfo struct {
	pk, host, uri, scheme string
	header                http.Header
	fromPeer, fromEdge    bool
	clientIP              string
}

// exchange is one request net/http hands the edge, on its way through the
// handler: the response writer, the request, the settings it is served
// under (loaded once, so a reload in its middle does not mix two) and what
// a fetch needs of it. The handler's steps and writers are its methods.
type exchange struct {
	s  *Server
	w  http.ResponseWriter
	r  *http.Request
	rt *liveConfig
	ri reqInfo
}

// objSource is the stored object a response is written from: its metadata
// m under the variant key vk, its body in the store (e, an unsliced object
// the request holds open; else looked up) or streaming in through the fill
// f the request started or joined.
type objSource struct {
	vk string
	m  *objMeta
	e  *store.Entry
	f  *fill
}

// ServeHTTP is the public listener.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r.TLS = st // a TLS connection the fast path handed over
		}
	}
	rt := s.rt.Load()
	if s.tls != nil && s.tls.acme != nil && strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		// HTTP-01, answered before any redirect to HTTPS.
		s.tls.acme.HTTPChallengeHandler(http.NotFoundHandler()).ServeHTTP(w, r)
		return
	}
	if r.URL.Path == HealthPath {
		s.serveHealth(w, r)
		return
	}
	if s.httpsPolicy(w, r) {
		return
	}
	if reason, code := s.refuse(r, rt); code != 0 {
		s.metrics.refused.WithLabelValues(reason).Inc()
		w.Header().Set("Cache-Status", httpcache.CacheStatus{Cache: rt.cfg.Name, Fwd: "bypass", Detail: reason}.String())
		w.Header().Set("Connection", "close")
		http.Error(w, http.StatusText(code)+": "+reason, code)
		return
	}
	x := exchange{s: s, w: w, r: r, rt: rt, ri: s.reqInfo(r, rt)}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		x.serveCacheableKey()
	default:
		x.pass("bypass")
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	if r.Method != http.MethodHead {
		io.WriteString(w, "ok\n")
	}
}

// refuse decides whether a request is refused before anything else: the
// edge is never an open proxy and never loops.
func (s *Server) refuse(r *http.Request, rt *liveConfig) (reason string, code int) {
	switch {
	case r.Method == http.MethodConnect:
		return "connect", http.StatusMethodNotAllowed
	case r.Method == http.MethodTrace:
		return "trace", http.StatusMethodNotAllowed
	case r.URL.IsAbs() && r.URL.Scheme != "http" && r.URL.Scheme != "https":
		return "scheme", http.StatusBadRequest
	case r.Host == "":
		return "no host", http.StatusBadRequest
	case r.URL.Opaque != "" || !strings.HasPrefix(r.URL.Path, "/"):
		return "target", http.StatusBadRequest
	}
	host := hostOnly(r.Host)
	if len(rt.hosts) > 0 && !rt.hosts[host] {
		return "unknown host", http.StatusMisdirectedRequest
	}
	if rt.loopID != "" {
		for _, v := range r.Header.Values(loopHeader) {
			for _, part := range strings.Split(v, ",") {
				id, _, _ := strings.Cut(part, ";")
				if strings.TrimSpace(id) == rt.loopID {
					return "loop", http.StatusLoopDetected
				}
			}
		}
	}
	return "", 0
}

func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// reqInfo decides who sent r (another edge only with a valid hop MAC, see
// hop.go) and, for anyone else, removes from r.Header what a client may not
// tell the origin. The target is normalised (no dot segments) before it is
// keyed or forwarded.
func (s *Server) reqInfo(r *http.Request, rt *liveConfig) reqInfo {
	hop := s.edgeHop(r, rt)
	if hop == "" {
		sanitizeClientHeader(r.Header, rt.pass)
	}
	ri := reqInfo{
		host:     r.Host,
		uri:      httpcache.NormalizeTarget(r.URL.RequestURI()),
		scheme:   "http",
		header:   r.Header,
		fromPeer: hop == "peer",
		fromEdge: hop != "",
	}
	if r.TLS != nil || (ri.fromEdge && r.Header.Get("X-Forwarded-Proto") == "https") {
		ri.scheme = "https"
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ri.clientIP = ip
	}
	ri.pk = httpcache.Key(ri.scheme, ri.host, ri.uri)
	return ri
}

// lookupResult is what the store holds for a request.
type lookupResult struct {
	key   string // storage key of the object (objKey(vk))
	vk    string // variant key: pk, or pk + NUL + vary key
	meta  *objMeta
	entry *store.Entry
	vary  bool // the stored object varies and this variant is missing
}

// source is the object l found, to write a response from.
func (l *lookupResult) source() objSource { return objSource{vk: l.vk, m: l.meta, e: l.entry} }

func (l *lookupResult) close() {
	if l.entry != nil {
		l.entry.Close()
		l.entry = nil
	}
}

func (s *Server) getMeta(key string) (*objMeta, *store.Entry) {
	e, ok := s.store.Get(key)
	if !ok {
		return nil, nil
	}
	cm, err := s.metas.get(key, e.Meta())
	if err != nil {
		e.Close()
		s.store.Delete(key)
		return nil, nil
	}
	return cm.m, e
}

func (s *Server) lookup(pk string, h http.Header) lookupResult {
	l := lookupResult{key: objKey(pk), vk: pk}
	m, e := s.getMeta(l.key)
	if m == nil {
		return l
	}
	if m.Marker {
		e.Close()
		l.vk = variantKey(pk, httpcache.VaryKey(m.VaryNames, h))
		l.key = objKey(l.vk)
		m, e = s.getMeta(l.key)
		if m == nil {
			l.vary = true
			return l
		}
	}
	l.meta, l.entry = m, e
	return l
}

func stored(m *objMeta) httpcache.Stored {
	return httpcache.Stored{Status: m.Status, Header: m.Header, RequestTime: m.ReqTime, ResponseTime: m.RespTime, Invalidated: m.Invalidated}
}

// serveCacheable serves a GET or HEAD: from the cache when it may, else
// through a (shared) upstream fetch.
func (x *exchange) serveCacheable(retry bool) {
	s, r, rt, ri := x.s, x.r, x.rt, x.ri
	now := s.now()
	l := s.lookup(ri.pk, r.Header)
	defer l.close()
	// again serves the request anew once, as a miss, when a stored object
	// turned out to have changed upstream before anything was written.
	again := func(err error) {
		if errors.Is(err, errObjectChanged) {
			l.close()
			if retry {
				x.serveCacheable(false)
			} else {
				x.writeError(http.StatusBadGateway, "upstream object changed", "stale")
			}
		}
	}
	if l.meta != nil {
		d, age, ttl := httpcache.Decide(r.Header, stored(l.meta), now, rt.opts)
		switch d {
		case httpcache.Fresh:
			s.count("hit")
			again(x.writeStored(l.source(), age, httpcache.CacheStatus{Hit: true, TTL: ttl, HasTTL: true}))
			return
		case httpcache.ServeStale:
			s.count("stale")
			s.refresh(rt, ri, l)
			again(x.writeStored(l.source(), age, httpcache.CacheStatus{Hit: true, TTL: ttl, HasTTL: true, Detail: "stale-while-revalidate"}))
			return
		}
	}
	if httpcache.OnlyIfCached(r.Header) {
		s.count("miss")
		x.writeError(http.StatusGatewayTimeout, "only-if-cached", "miss")
		return
	}
	fwd := "uri-miss"
	switch {
	case l.meta != nil:
		fwd = "stale"
		if l.meta.Invalidated || httpcache.ParseCacheControl(r.Header.Values("Cache-Control")).Has("no-cache") {
			fwd = "request"
		}
	case l.vary:
		fwd = "vary-miss"
	}
	span := sliceSpan{-1, -1}
	if l.meta == nil {
		span.first, span.last = rangeSliceHint(r.Header, rt.cfg.SliceBytes)
	}
	f, leader := s.joinFill(l.key, r, true, func(f *fill) {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runFill(f, rt, ri, l.vk, l.meta, span)
		}()
	})
	defer f.readers.Add(-1)
	if !leader {
		s.metrics.coalesced.Inc()
	}
	// With a stale copy the client may have, a slow upstream gets a short
	// deadline: the copy is served while the fetch goes on and refreshes.
	var slow <-chan time.Time
	if l.meta != nil && l.entry != nil && rt.cfg.StaleDeadline > 0 && httpcache.StaleIfError(r.Header, stored(l.meta), now, rt.opts) {
		t := time.NewTimer(rt.cfg.StaleDeadline)
		defer t.Stop()
		slow = t.C
	}
	select {
	case <-f.ready:
	case <-slow:
		x.serveStaleOnError(&l, httpcache.CacheStatus{Fwd: fwd, Collapsed: !leader}, "upstream-slow")
		return
	case <-r.Context().Done():
		return
	}
	cs := httpcache.CacheStatus{Fwd: fwd, FwdStatus: f.status, Collapsed: !leader}
	switch f.kind {
	case fillPass:
		if leader && f.resp != nil {
			s.count("miss")
			x.writeUpstream(f.resp, cs)
			return
		}
		x.pass(fwd)
	case fillError:
		if l.meta != nil && httpcache.StaleIfError(r.Header, stored(l.meta), s.now(), rt.opts) {
			x.serveStaleOnError(&l, cs, "stale-if-error")
			return
		}
		s.count("error")
		code, detail := s.upstreamFailure(ri.pk, f.err)
		x.writeError(code, detail, fwd)
	case fillStale:
		x.serveStaleOnError(&l, cs, "stale-if-error")
	case fillRevalidated:
		s.count("revalidated")
		e := l.entry
		if e == nil || l.meta == nil || l.meta.Sliced != f.meta.Sliced {
			var m *objMeta
			if m, e = s.getMeta(f.key); m == nil {
				x.pass(fwd)
				return
			}
			defer e.Close()
		}
		cs.Detail = "revalidated"
		age := httpcache.CurrentAge(f.meta.Header, f.meta.ReqTime, f.meta.RespTime, s.now())
		cs.TTL, cs.HasTTL = ttlOf(f.meta, age, rt), true
		again(x.writeStored(objSource{vk: f.vk, m: f.meta, e: e}, age, cs))
	case fillStored:
		if len(f.meta.VaryNames) > 0 && httpcache.VaryKey(f.meta.VaryNames, r.Header) != f.varyKey {
			// The response varies and this request is another variant.
			if retry {
				x.serveCacheable(false)
			} else {
				x.pass("vary-miss")
			}
			return
		}
		s.count("miss")
		cs.Stored = true
		age := httpcache.CurrentAge(f.meta.Header, f.meta.ReqTime, f.meta.RespTime, s.now())
		cs.TTL, cs.HasTTL = ttlOf(f.meta, age, rt), true
		again(x.writeStored(objSource{vk: f.vk, m: f.meta, f: f}, age, cs))
	}
}

// upstreamFailure is the status and Cache-Status detail of a request whose
// upstream fetch failed with err before anything was written; failures of
// the upstream itself are logged (see upstreamFailed).
func (s *Server) upstreamFailure(key string, err error) (code int, detail string) {
	if errors.Is(err, errBlockingReloads) {
		return http.StatusServiceUnavailable, "blocking reloads full"
	}
	code = http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		code = http.StatusGatewayTimeout
	}
	switch {
	case errors.Is(err, errObjectChanged):
		return code, "upstream object changed"
	case errors.Is(err, errBodyStalled):
		return http.StatusGatewayTimeout, "upstream stalled"
	}
	return code, s.upstreamFailed(key, err)
}

func ttlOf(m *objMeta, age time.Duration, rt *liveConfig) time.Duration {
	life, _ := httpcache.Lifetime(m.Status, m.Header, m.RespTime, rt.opts.HeuristicMax)
	return life - age
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// serveStaleOnError serves the stale copy l holds, if any, for an upstream
// that failed or is slow (detail says which).
func (x *exchange) serveStaleOnError(l *lookupResult, cs httpcache.CacheStatus, detail string) {
	if l.meta == nil || l.entry == nil {
		x.s.count("error")
		x.writeError(http.StatusBadGateway, "upstream unreachable", cs.Fwd)
		return
	}
	x.s.count("stale")
	cs.Fwd = "stale"
	cs.Detail = detail
	now := x.s.now()
	age := httpcache.CurrentAge(l.meta.Header, l.meta.ReqTime, l.meta.RespTime, now)
	cs.TTL, cs.HasTTL = ttlOf(l.meta, age, x.rt), true
	if err := x.writeStored(l.source(), age, cs); err != nil {
		x.writeError(http.StatusBadGateway, "upstream object changed", cs.Fwd)
	}
}

// rangeSliceHint is the span of slices [first, last] a miss should fetch
// for a request with one byte range starting at a known offset; last is -1
// when the range runs to the end, first -1 means fetch the whole object.
func rangeSliceHint(h http.Header, sliceBytes int64) (first, last int64) {
	v := h.Get("Range")
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") || h.Get("If-Range") != "" {
		return -1, -1
	}
	a, z, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok || a == "" {
		return -1, -1
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil || n < 0 {
		return -1, -1
	}
	if z == "" {
		return n / sliceBytes, -1
	}
	e, err := strconv.ParseInt(z, 10, 64)
	if err != nil || e < n {
		return -1, -1
	}
	return n / sliceBytes, e / sliceBytes
}

func (s *Server) count(status string) { s.metrics.requests.WithLabelValues(status).Inc() }

// writeError answers a request that cannot be served.
func (x *exchange) writeError(code int, detail, fwd string) {
	x.w.Header().Set("Cache-Status", httpcache.CacheStatus{Cache: x.rt.cfg.Name, Fwd: fwd, Detail: detail}.String())
	x.w.Header().Set("Cache-Control", "no-store")
	http.Error(x.w, http.StatusText(code), code)
}

// edgeOnlyHeaders are kept between edges (the child indexes the tags) and
// removed before a response reaches a client.
var edgeOnlyHeaders = []string{"Surrogate-Control", "Surrogate-Key", "Cache-Tag"}

// writeStored writes a stored object (from the store, or from a fill as it
// streams in), honouring the client's conditional and range headers. It
// returns errObjectChanged, having written nothing, when a slice it needs
// shows that the object changed upstream: the caller may fetch it anew.
func (x *exchange) writeStored(src objSource, age time.Duration, cs httpcache.CacheStatus) error {
	s, w, r, rt, m := x.s, x.w, x.r, x.rt, src.m
	code := httpcache.EvaluateConditional(r.Method, r.Header, m.Status, m.Header)
	size := m.Size
	status := m.Status
	a, b := int64(0), size-1
	var rangeErr error
	var cr string
	if code == 0 && bodyAllowed(status) && size >= 0 && status == http.StatusOK {
		if rng := r.Header.Get("Range"); rng != "" && (r.Header.Get("If-Range") == "" || httpcache.IfRangeMatches(r.Header.Get("If-Range"), m.Header)) {
			ranges, err := httpcache.ParseRange(rng, size)
			rangeErr = err
			if err == nil && len(ranges) == 1 {
				status = http.StatusPartialContent
				a, b = ranges[0].Start, ranges[0].End
				cr = ranges[0].ContentRange(size)
			}
		}
	}
	ctx := r.Context()
	var br *bodyReader
	if code == 0 && bodyAllowed(status) && rangeErr == nil && r.Method != http.MethodHead && size > 0 {
		br = &bodyReader{s: s, rt: rt, ri: x.ri, vk: src.vk, m: m, e: src.e, own: src.f, valid: validator(m.Header)}
		defer br.close()
		deadline := rt.cfg.StaleDeadline
		if deadline <= 0 {
			deadline = rt.cfg.UpstreamTimeout
		}
		wait, cancel := context.WithTimeout(ctx, deadline)
		err := br.preflight(ctx, a, b, wait)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errObjectChanged):
			return err
		default:
			s.count("error")
			code, detail := s.upstreamFailure(x.ri.pk, err)
			x.writeError(code, detail, "miss")
			return nil
		}
	}

	h := w.Header()
	for k, vs := range m.Header {
		h[k] = vs
	}
	if !x.ri.fromEdge {
		for _, k := range edgeOnlyHeaders {
			delete(h, k)
		}
	}
	cs.Cache = rt.cfg.Name
	h["Cache-Status"] = append(append([]string(nil), m.Header["Cache-Status"]...), cs.String())
	if age > 0 || cs.Hit || m.Header.Get("Age") != "" {
		h["Age"] = []string{string(httpcache.AppendAge(nil, age))}
	}
	if code != 0 {
		// RFC 9110 §15.4.5: a 304 carries the validators and caching
		// fields, not the representation's metadata.
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Range", "Accept-Ranges"} {
			delete(h, k)
		}
		w.WriteHeader(code)
		return nil
	}
	if !bodyAllowed(status) {
		w.WriteHeader(status)
		return nil
	}
	if size >= 0 && m.Status == http.StatusOK {
		h.Set("Accept-Ranges", "bytes")
		if errors.Is(rangeErr, httpcache.ErrUnsatisfiable) {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			h.Del("Content-Length")
			h.Del("Content-Type")
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return nil
		}
		if cr != "" {
			h.Set("Content-Range", cr)
		}
	}
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(b-a+1, 10))
	} else {
		h.Del("Content-Length")
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	var n int64
	var err error
	if size < 0 {
		n, err = s.writeUnsized(ctx, w, src.f)
	} else if br != nil {
		n, err = br.write(ctx, w, a, b)
	}
	s.metrics.bytesOut.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		// The header is out: abort the connection so the client sees a
		// truncated body, never a short one passed off as whole.
		s.abortResponse(x.ri, a+n, err)
	}
	return nil
}

// abortResponse ends a response whose header is out and whose body cannot
// be completed: logged, counted, and the connection aborted.
func (s *Server) abortResponse(ri reqInfo, offset int64, err error) {
	s.metrics.aborted.Inc()
	s.log.Warn("response aborted", "key", ri.pk, "offset", offset, "err", err)
	panic(http.ErrAbortHandler)
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// deleteObject removes an object and its slices.
func (s *Server) deleteObject(key string) bool {
	m, e := s.getMeta(key)
	if m == nil {
		return false
	}
	e.Close()
	if m.Sliced {
		vk, _ := variantOf(key)
		for i := int64(0); i < m.numSlices(); i++ {
			s.store.Delete(sliceKey(vk, i))
		}
	}
	s.store.Delete(key)
	s.metas.forget(key) // the decoded metadata of what is gone
	return !m.Marker
}
