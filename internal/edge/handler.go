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
	ri := s.reqInfo(r, rt)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.serveCacheable(w, r, rt, ri, true)
	default:
		s.pass(w, r, rt, ri, "bypass")
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
func (s *Server) refuse(r *http.Request, rt *runtime) (reason string, code int) {
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
func (s *Server) reqInfo(r *http.Request, rt *runtime) reqInfo {
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
	key   string // storage key of the object ("o:" + vk)
	vk    string // variant key: pk, or pk + NUL + vary key
	meta  *objMeta
	entry *store.Entry
	vary  bool // the stored object varies and this variant is missing
}

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
	l := lookupResult{key: "o:" + pk, vk: pk}
	m, e := s.getMeta(l.key)
	if m == nil {
		return l
	}
	if m.Marker {
		e.Close()
		l.vk = pk + "\x00" + httpcache.VaryKey(m.VaryNames, h)
		l.key = "o:" + l.vk
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
func (s *Server) serveCacheable(w http.ResponseWriter, r *http.Request, rt *runtime, ri reqInfo, retry bool) {
	now := s.now()
	l := s.lookup(ri.pk, r.Header)
	defer l.close()
	if l.meta != nil {
		d, age, ttl := httpcache.Decide(r.Header, stored(l.meta), now, rt.opts)
		switch d {
		case httpcache.Fresh:
			s.count("hit")
			s.writeStored(w, r, rt, ri, l.vk, l.meta, l.entry, nil, age, httpcache.CacheStatus{Hit: true, TTL: ttl, HasTTL: true})
			return
		case httpcache.ServeStale:
			s.count("stale")
			s.refresh(rt, ri, l)
			s.writeStored(w, r, rt, ri, l.vk, l.meta, l.entry, nil, age, httpcache.CacheStatus{Hit: true, TTL: ttl, HasTTL: true, Detail: "stale-while-revalidate"})
			return
		}
	}
	if httpcache.OnlyIfCached(r.Header) {
		s.count("miss")
		s.writeError(w, rt, http.StatusGatewayTimeout, "only-if-cached", "miss")
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
	slice := int64(-1)
	if l.meta == nil {
		slice = rangeSliceHint(r.Header, rt.cfg.SliceBytes)
	}
	f, leader := s.joinFill(l.key, r, func(f *fill) {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runFill(f, rt, ri, l.vk, l.meta, slice)
		}()
	})
	if !leader {
		s.metrics.coalesced.Inc()
	}
	select {
	case <-f.ready:
	case <-r.Context().Done():
		return
	}
	cs := httpcache.CacheStatus{Fwd: fwd, FwdStatus: f.status, Collapsed: !leader}
	switch f.kind {
	case fillPass:
		if leader && f.resp != nil {
			s.count("miss")
			s.writeUpstream(w, r, rt, ri, f.resp, cs)
			return
		}
		s.pass(w, r, rt, ri, fwd)
	case fillError:
		if l.meta != nil && httpcache.StaleIfError(r.Header, stored(l.meta), s.now(), rt.opts) {
			s.serveStaleOnError(w, r, rt, ri, &l, cs)
			return
		}
		s.count("error")
		code := http.StatusBadGateway
		if errors.Is(f.err, context.DeadlineExceeded) || isTimeout(f.err) {
			code = http.StatusGatewayTimeout
		}
		s.log.Debug("upstream failed", "key", ri.pk, "err", f.err)
		s.writeError(w, rt, code, "upstream unreachable", fwd)
	case fillStale:
		s.serveStaleOnError(w, r, rt, ri, &l, cs)
	case fillRevalidated:
		s.count("revalidated")
		e := l.entry
		if e == nil || l.meta == nil || l.meta.Sliced != f.meta.Sliced {
			var m *objMeta
			if m, e = s.getMeta(f.key); m == nil {
				s.pass(w, r, rt, ri, fwd)
				return
			}
			defer e.Close()
		}
		cs.Detail = "revalidated"
		age := httpcache.CurrentAge(f.meta.Header, f.meta.ReqTime, f.meta.RespTime, s.now())
		cs.TTL, cs.HasTTL = ttlOf(f.meta, age, rt), true
		s.writeStored(w, r, rt, ri, f.vk, f.meta, e, nil, age, cs)
	case fillStored:
		if len(f.meta.VaryNames) > 0 && httpcache.VaryKey(f.meta.VaryNames, r.Header) != f.varyKey {
			// The response varies and this request is another variant.
			if retry {
				s.serveCacheable(w, r, rt, ri, false)
			} else {
				s.pass(w, r, rt, ri, "vary-miss")
			}
			return
		}
		s.count("miss")
		cs.Stored = true
		age := httpcache.CurrentAge(f.meta.Header, f.meta.ReqTime, f.meta.RespTime, s.now())
		cs.TTL, cs.HasTTL = ttlOf(f.meta, age, rt), true
		f.readers.Add(1)
		defer f.readers.Add(-1)
		s.writeStored(w, r, rt, ri, f.vk, f.meta, nil, f, age, cs)
	}
}

func ttlOf(m *objMeta, age time.Duration, rt *runtime) time.Duration {
	life, _ := httpcache.Lifetime(m.Status, m.Header, m.RespTime, rt.opts.HeuristicMax)
	return life - age
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *Server) serveStaleOnError(w http.ResponseWriter, r *http.Request, rt *runtime, ri reqInfo, l *lookupResult, cs httpcache.CacheStatus) {
	if l.meta == nil || l.entry == nil {
		s.count("error")
		s.writeError(w, rt, http.StatusBadGateway, "upstream unreachable", cs.Fwd)
		return
	}
	s.count("stale")
	cs.Fwd = "stale"
	cs.Detail = "stale-if-error"
	now := s.now()
	age := httpcache.CurrentAge(l.meta.Header, l.meta.ReqTime, l.meta.RespTime, now)
	cs.TTL, cs.HasTTL = ttlOf(l.meta, age, rt), true
	s.writeStored(w, r, rt, ri, l.vk, l.meta, l.entry, nil, age, cs)
}

// rangeSliceHint is the slice a miss should fetch first for a request with
// one byte range starting at a known offset; -1 means fetch the whole object.
func rangeSliceHint(h http.Header, sliceBytes int64) int64 {
	v := h.Get("Range")
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") || h.Get("If-Range") != "" {
		return -1
	}
	first, _, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok || first == "" {
		return -1
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n / sliceBytes
}

// joinFill returns the fill in flight for key, or registers a new one and
// calls start with it (the caller is then the leader).
func (s *Server) joinFill(key string, r *http.Request, start func(*fill)) (*fill, bool) {
	s.mu.Lock()
	if f, ok := s.fills[key]; ok {
		s.mu.Unlock()
		return f, false
	}
	f := newFill(key, r)
	s.fills[key] = f
	s.mu.Unlock()
	start(f)
	return f, true
}

func (s *Server) endFill(f *fill, err error) {
	s.detachFill(f)
	f.end(err)
}

// detachFill stops new requests from joining f (its object is stored).
func (s *Server) detachFill(f *fill) {
	s.mu.Lock()
	if s.fills[f.key] == f {
		delete(s.fills, f.key)
	}
	s.mu.Unlock()
}

// refresh revalidates a stale object in the background
// (stale-while-revalidate): at most one refresh per key at a time.
func (s *Server) refresh(rt *runtime, ri reqInfo, l lookupResult) {
	ri.header = ri.header.Clone()
	meta := l.meta
	s.joinFill(l.key, nil, func(f *fill) {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runFill(f, rt, ri, l.vk, meta, -1)
		}()
	})
}

func (s *Server) count(status string) { s.metrics.requests.WithLabelValues(status).Inc() }

// writeError answers a request that cannot be served.
func (s *Server) writeError(w http.ResponseWriter, rt *runtime, code int, detail, fwd string) {
	w.Header().Set("Cache-Status", httpcache.CacheStatus{Cache: rt.cfg.Name, Fwd: fwd, Detail: detail}.String())
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, http.StatusText(code), code)
}

// edgeOnlyHeaders are kept between edges (the child indexes the tags) and
// removed before a response reaches a client.
var edgeOnlyHeaders = []string{"Surrogate-Control", "Surrogate-Key", "Cache-Tag"}

// writeStored writes a stored object (from e, or from a fill f as it
// streams in), honouring the client's conditional and range headers.
func (s *Server) writeStored(w http.ResponseWriter, r *http.Request, rt *runtime, ri reqInfo, vk string, m *objMeta, e *store.Entry, f *fill, age time.Duration, cs httpcache.CacheStatus) {
	h := w.Header()
	for k, vs := range m.Header {
		h[k] = vs
	}
	if !ri.fromEdge {
		for _, k := range edgeOnlyHeaders {
			delete(h, k)
		}
	}
	cs.Cache = rt.cfg.Name
	h["Cache-Status"] = append(append([]string(nil), m.Header["Cache-Status"]...), cs.String())
	if age > 0 || cs.Hit || m.Header.Get("Age") != "" {
		h["Age"] = []string{strconv.FormatInt(int64(max(age, 0)/time.Second), 10)}
	}
	if code := httpcache.EvaluateConditional(r.Method, r.Header, m.Status, m.Header); code != 0 {
		// RFC 9110 §15.4.5: a 304 carries the validators and caching
		// fields, not the representation's metadata.
		for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Range", "Accept-Ranges"} {
			delete(h, k)
		}
		w.WriteHeader(code)
		return
	}
	size := m.Size
	status := m.Status
	if !bodyAllowed(status) {
		w.WriteHeader(status)
		return
	}
	a, b := int64(0), size-1
	if size >= 0 && status == http.StatusOK {
		h.Set("Accept-Ranges", "bytes")
		if rng := r.Header.Get("Range"); rng != "" && (r.Header.Get("If-Range") == "" || httpcache.IfRangeMatches(r.Header.Get("If-Range"), m.Header)) {
			ranges, err := httpcache.ParseRange(rng, size)
			if errors.Is(err, httpcache.ErrUnsatisfiable) {
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				h.Del("Content-Length")
				h.Del("Content-Type")
				w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
				return
			}
			if len(ranges) == 1 {
				status = http.StatusPartialContent
				a, b = ranges[0].Start, ranges[0].End
				h.Set("Content-Range", ranges[0].ContentRange(size))
			}
		}
	}
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(b-a+1, 10))
	} else {
		h.Del("Content-Length")
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	ctx := r.Context()
	var n int64
	var err error
	if size < 0 {
		n, err = s.writeUnsized(ctx, w, f)
	} else if size > 0 {
		n, err = s.writeBody(ctx, w, rt, ri, vk, m, e, f, a, b)
	}
	s.metrics.bytesOut.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		s.log.Debug("body write failed", "key", ri.pk, "err", err)
		// The header is out: abort the connection so the client sees a
		// truncated body, never a short one passed off as whole.
		panic(http.ErrAbortHandler)
	}
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

var errGone = errors.New("edge: stored body gone")

// writeUnsized copies a fill whose size was not known at its start, slice by
// slice, from the fill or, for slices it already handed over, the store.
func (s *Server) writeUnsized(ctx context.Context, w io.Writer, f *fill) (int64, error) {
	if f == nil {
		return 0, errGone
	}
	var total int64
	for i := int64(0); ; i++ {
		if st := f.streamAt(ctx, i); st != nil {
			n, err := st.copyTo(ctx, w, 0, 1<<62)
			total += n
			if !errors.Is(err, errShortStream) {
				return total, err
			}
			st.mu.Lock()
			serr := st.err
			st.mu.Unlock()
			if serr != nil {
				return total, serr
			}
			continue
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		next, ended, err := f.progress()
		if ended && i >= next {
			return total, err
		}
		e, ok := s.store.Get(sliceKey(f.vk, i))
		if !ok {
			return total, errGone
		}
		n, err := e.WriteBodyTo(w, 0, e.Len())
		e.Close()
		total += n
		if err != nil {
			return total, err
		}
	}
}

func sliceKey(vk string, i int64) string { return "s:" + vk + "#" + strconv.FormatInt(i, 10) }

// writeBody writes bytes [a, b] of the object.
func (s *Server) writeBody(ctx context.Context, w io.Writer, rt *runtime, ri reqInfo, vk string, m *objMeta, e *store.Entry, f *fill, a, b int64) (int64, error) {
	if !m.Sliced {
		if e != nil {
			return e.WriteBodyTo(w, a, b-a+1)
		}
		if f != nil {
			if st := f.streamAt(ctx, 0); st != nil {
				return st.copyTo(ctx, w, a, b+1)
			}
		}
		m2, e2 := s.getMeta("o:" + vk)
		if m2 == nil {
			return 0, errGone
		}
		defer e2.Close()
		if m2.Sliced || m2.Size != m.Size || validator(m2.Header) != validator(m.Header) {
			return 0, errGone
		}
		return e2.WriteBodyTo(w, a, b-a+1)
	}
	var total int64
	S := m.SliceBytes
	for i := a / S; i <= b/S; i++ {
		base := i * S
		lo, hi := max(a, base)-base, min(b, base+S-1)-base+1
		n, err := s.writeSlice(ctx, w, rt, ri, vk, m, f, i, lo, hi)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Server) writeSlice(ctx context.Context, w io.Writer, rt *runtime, ri reqInfo, vk string, m *objMeta, f *fill, i, lo, hi int64) (int64, error) {
	if f != nil {
		if st := f.streamAt(ctx, i); st != nil {
			return st.copyTo(ctx, w, lo, hi)
		}
	}
	sk := sliceKey(vk, i)
	if e, ok := s.store.Get(sk); ok {
		if string(e.Meta()) == validator(m.Header) && e.Len() >= hi {
			defer e.Close()
			return e.WriteBodyTo(w, lo, hi-lo)
		}
		e.Close()
		s.store.Delete(sk)
	}
	st := s.sliceStream(rt, ri, vk, m, i)
	return st.copyTo(ctx, w, lo, hi)
}

// sliceStream returns the in-flight fetch of slice i, starting one if none.
func (s *Server) sliceStream(rt *runtime, ri reqInfo, vk string, m *objMeta, i int64) *stream {
	sk := sliceKey(vk, i)
	s.mu.Lock()
	if st, ok := s.slices[sk]; ok && st.validator == validator(m.Header) {
		s.mu.Unlock()
		return st
	}
	S := m.SliceBytes
	n := min(S, m.Size-i*S)
	st := newStream(n, validator(m.Header))
	s.slices[sk] = st
	s.mu.Unlock()
	ri.header = ri.header.Clone()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer s.unregisterSlice(sk, st)
		err := s.fetchSlice(rt, ri, vk, m, i, st)
		st.finish(err)
		if err != nil {
			s.log.Debug("slice fetch failed", "key", ri.pk, "slice", i, "err", err)
			if errors.Is(err, errObjectChanged) {
				s.deleteObject("o:" + vk)
			}
			return
		}
		buf, _ := st.wait(context.Background())
		s.store.Put(sk, []byte(validator(m.Header)), buf)
	}()
	return st
}

func (s *Server) unregisterSlice(sk string, st *stream) {
	s.mu.Lock()
	if s.slices[sk] == st {
		delete(s.slices, sk)
	}
	s.mu.Unlock()
}

var errObjectChanged = errors.New("edge: object changed upstream (slice validators differ)")

// fetchSlice fetches slice i of a sliced object with a byte-range request and
// checks that it belongs to the same representation.
func (s *Server) fetchSlice(rt *runtime, ri reqInfo, vk string, m *objMeta, i int64, st *stream) error {
	S := m.SliceBytes
	lo, hi := i*S, min(i*S+S, m.Size)-1
	h := upstreamHeader(ri.header, true)
	h.Set("Range", fmt.Sprintf("bytes=%d-%d", lo, hi))
	resp, err := s.roundTrip(s.bgCtx, rt, ri, http.MethodGet, h, nil, 0, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("%w: status %d to a range request", errObjectChanged, resp.StatusCode)
	}
	cr, total, err := httpcache.ParseContentRange(resp.Header.Get("Content-Range"))
	if err != nil || cr.Start != lo || cr.End != hi || total != m.Size {
		return fmt.Errorf("%w: content-range %q", errObjectChanged, resp.Header.Get("Content-Range"))
	}
	if v := validator(m.Header); v != validator(resp.Header) {
		return errObjectChanged
	}
	n, err := io.Copy(st, io.LimitReader(resp.Body, hi-lo+1))
	if err != nil {
		return err
	}
	if n != hi-lo+1 {
		return errShortStream
	}
	return nil
}

// deleteObject removes an object and its slices.
func (s *Server) deleteObject(key string) bool {
	m, e := s.getMeta(key)
	if m == nil {
		return false
	}
	e.Close()
	if m.Sliced {
		vk := strings.TrimPrefix(key, "o:")
		for i := int64(0); i < m.numSlices(); i++ {
			s.store.Delete(sliceKey(vk, i))
		}
	}
	s.store.Delete(key)
	s.metas.forget(key) // the decoded metadata of what is gone
	return !m.Marker
}
