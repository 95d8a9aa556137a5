package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// surrogateToken is the name origins target Surrogate-Control directives at
// (Edge Architecture 1.0 device token): the same for every kubecdn edge,
// whatever its Cache-Status name.
const surrogateToken = "kubecdn"

// fillHeaderDrop are the client's fields a cache fill does not forward: the
// fill fetches the whole representation for everyone, not this client's
// conditional or partial view of it.
var fillHeaderDrop = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

// upstreamHeader is the header of a request sent upstream on behalf of a
// client request with header h.
func upstreamHeader(h http.Header, forFill bool) http.Header {
	out := h.Clone()
	httpcache.RemoveHopByHop(out)
	if forFill {
		for _, k := range fillHeaderDrop {
			delete(out, k)
		}
	}
	delete(out, hopHeader)
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = []string{""} // Go then sends none of its own
	}
	return out
}

func target(base *url.URL, uri string) string {
	return base.Scheme + "://" + base.Host + strings.TrimSuffix(base.Path, "/") + uri
}

// roundTrip sends a request up the chain: the peer that owns the key (for
// cacheable fetches not already from a peer), then the parent, then the
// origin. A hop that cannot be reached, or an edge hop that answers 5xx, is
// skipped when the request has no body to replay.
func (s *Server) roundTrip(ctx context.Context, rt *runtime, ri reqInfo, method string, h http.Header, body io.Reader, contentLength int64, cacheable bool) (*http.Response, error) {
	type hop struct {
		kind string
		base *url.URL
	}
	hops := make([]hop, 0, 3)
	if cacheable && len(rt.ring) > 1 && !ri.fromPeer {
		if o := owner(rt.ring, ri.pk, s.hash); o != rt.self {
			hops = append(hops, hop{"peer", rt.peers[o]})
		}
	}
	if rt.parent != nil {
		hops = append(hops, hop{"parent", rt.parent})
	}
	hops = append(hops, hop{"origin", rt.origin})
	var lastErr error
	for i, hp := range hops {
		last := i == len(hops)-1
		req, err := http.NewRequestWithContext(ctx, method, target(hp.base, ri.uri), body)
		if err != nil {
			return nil, err
		}
		req.ContentLength = contentLength
		if body == nil {
			req.ContentLength = 0
		}
		hh := h.Clone()
		if rt.loopID != "" {
			hh.Add(loopHeader, rt.loopID)
		}
		// Edge Architecture 1.0: tells the origin it may target
		// Surrogate-Control directives at us by name.
		hh.Set("Surrogate-Capability", surrogateToken+`="Surrogate/1.0"`)
		if ri.clientIP != "" && !ri.fromEdge {
			if prior := hh.Get("X-Forwarded-For"); prior != "" {
				hh.Set("X-Forwarded-For", prior+", "+ri.clientIP)
			} else {
				hh.Set("X-Forwarded-For", ri.clientIP)
			}
			hh.Set("X-Forwarded-Proto", ri.scheme)
			hh.Set("X-Forwarded-Host", ri.host)
		}
		switch hp.kind {
		case "origin":
			req.Host = rt.originHost
			if req.Host == "" {
				req.Host = ri.host
			}
		case "peer":
			req.Host = ri.host
			hh.Set(hopHeader, s.signHop(rt, "peer", req, hh))
		default:
			req.Host = ri.host
			hh.Set(hopHeader, s.signHop(rt, "child", req, hh))
		}
		req.Header = hh
		start := time.Now()
		resp, err := s.transport.RoundTrip(req)
		s.metrics.upstreamLatency.WithLabelValues(hp.kind).Observe(time.Since(start).Seconds())
		if err != nil {
			s.metrics.upstreamFetches.WithLabelValues(hp.kind, "error").Inc()
			lastErr = fmt.Errorf("%s %s: %w", hp.kind, hp.base.Host, err)
			if last || body != nil || ctx.Err() != nil {
				return nil, lastErr
			}
			continue
		}
		if resp.StatusCode >= 500 && hp.kind != "origin" && !last && body == nil {
			s.metrics.upstreamFetches.WithLabelValues(hp.kind, "5xx").Inc()
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			continue
		}
		s.metrics.upstreamFetches.WithLabelValues(hp.kind, "ok").Inc()
		return resp, nil
	}
	return nil, lastErr
}

// runFill performs the upstream fetch of a fill and publishes its outcome.
// It is detached from the client that started it: the body keeps filling
// the cache for the other waiters when that client goes away.
func (s *Server) runFill(f *fill, rt *runtime, ri reqInfo, vk string, old *objMeta, slice int64) {
	var bodyErr error
	defer func() { s.endFill(f, bodyErr) }()
	f.vk = vk
	h := upstreamHeader(ri.header, true)
	if old != nil {
		if et := old.Header.Get("Etag"); et != "" {
			h.Set("If-None-Match", et)
		}
		if lm := old.Header.Get("Last-Modified"); lm != "" {
			h.Set("If-Modified-Since", lm)
		}
	}
	S := rt.cfg.SliceBytes
	if slice >= 0 {
		h.Set("Range", fmt.Sprintf("bytes=%d-%d", slice*S, slice*S+S-1))
	}
	reqTime := s.now()
	resp, err := s.roundTrip(s.bgCtx, rt, ri, http.MethodGet, h, nil, 0, true)
	respTime := s.now()
	if err != nil {
		f.kind, f.err = fillError, err
		close(f.ready)
		return
	}
	f.status = resp.StatusCode
	status := resp.StatusCode
	httpcache.TargetSurrogateControl(resp.Header, surrogateToken)
	switch {
	case status == http.StatusNotModified && old != nil:
		resp.Body.Close()
		m := *old
		m.Header = httpcache.UpdateStoredHeader(old.Header, resp.Header)
		m.ReqTime, m.RespTime, m.Invalidated = reqTime, respTime, false
		if !f.purged.Load() {
			s.store.UpdateMeta("o:"+vk, m.encode())
		}
		f.kind, f.meta = fillRevalidated, &m
		close(f.ready)
		return
	case status >= 500 && old != nil && httpcache.StaleIfError(ri.header, stored(old), respTime, rt.opts):
		resp.Body.Close()
		f.kind = fillStale
		close(f.ready)
		return
	case slice >= 0 && status == http.StatusPartialContent:
		bodyErr = s.fillRange(f, rt, ri, resp, slice, reqTime, respTime)
		return
	}
	if status == http.StatusPartialContent || !httpcache.Storable(http.MethodGet, ri.header, status, resp.Header) {
		f.kind = fillPass
		if slice >= 0 || f.leader == nil {
			// The response answers our slice-aligned range, not the
			// client's: the client fetches on its own.
			resp.Body.Close()
		} else {
			f.resp = resp
		}
		close(f.ready)
		return
	}
	m, vk := s.newObject(f, ri, status, resp.Header, reqTime, respTime)
	size := resp.ContentLength
	if !bodyAllowed(status) {
		size = 0
	}
	m.Size = size
	if size > S {
		m.Sliced, m.SliceBytes = true, S
	}
	bodyErr = s.fillBody(f, rt, m, vk, resp.Body, 0, size)
}

// newObject builds the metadata of a storable response and stores the vary
// marker when the response varies. It returns the object's variant key.
func (s *Server) newObject(f *fill, ri reqInfo, status int, h http.Header, reqTime, respTime time.Time) (*objMeta, string) {
	names, _ := httpcache.VaryNames(h)
	vk := ri.pk
	if len(names) > 0 {
		f.varyKey = httpcache.VaryKey(names, ri.header)
		vk = ri.pk + "\x00" + f.varyKey
		marker := &objMeta{Key: ri.pk, Marker: true, VaryNames: names}
		if !f.purged.Load() {
			s.store.Put("o:"+ri.pk, marker.encode(), nil)
		}
	}
	hdr := httpcache.StorableHeader(h)
	delete(hdr, "Content-Length") // set from the stored size on the way out
	delete(hdr, "Transfer-Encoding")
	f.vk = vk
	return &objMeta{
		Key: ri.pk, VaryNames: names, Status: status, Header: hdr,
		ReqTime: reqTime, RespTime: respTime,
		Tags: tagsOf(h.Values("Surrogate-Key"), h.Values("Cache-Tag")),
	}, vk
}

// fillRange handles the 206 answer to the slice-aligned range a miss with a
// Range header asked for: the object is stored as metadata plus that slice.
func (s *Server) fillRange(f *fill, rt *runtime, ri reqInfo, resp *http.Response, slice int64, reqTime, respTime time.Time) error {
	S := rt.cfg.SliceBytes
	cr, total, err := httpcache.ParseContentRange(resp.Header.Get("Content-Range"))
	want := int64(-1)
	if err == nil && total > 0 {
		want = min(S, total-slice*S)
	}
	if err != nil || total < 0 || cr.Start != slice*S || want <= 0 || cr.Length() != want ||
		!httpcache.Storable(http.MethodGet, ri.header, http.StatusOK, resp.Header) {
		resp.Body.Close()
		f.kind = fillPass
		close(f.ready)
		return nil
	}
	m, vk := s.newObject(f, ri, http.StatusOK, resp.Header, reqTime, respTime)
	delete(m.Header, "Content-Range") // stored as the whole representation
	m.Size = total
	if total > S {
		m.Sliced, m.SliceBytes = true, S
	}
	return s.fillBody(f, rt, m, vk, resp.Body, slice, want)
}

// fillBody streams an upstream body into the fill's slices, storing each
// slice when complete. first is the index of the first slice; expect the
// number of body bytes (-1 when unknown).
func (s *Server) fillBody(f *fill, rt *runtime, m *objMeta, vk string, body io.ReadCloser, first, expect int64) error {
	defer body.Close()
	key := "o:" + vk
	S := rt.cfg.SliceBytes
	put := func(k string, meta, b []byte) {
		if !f.purged.Load() {
			s.store.Put(k, meta, b)
		}
	}
	if m.Sliced {
		put(key, m.encode(), nil)
		s.index.add(m.Key, key, m.Tags)
	}
	valid := validator(m.Header)
	sliceLen := func(i int64) int64 {
		if m.Size >= 0 {
			return min(S, m.Size-i*S)
		}
		return 32 << 10 // grows as needed
	}
	i := first
	st := newStream(sliceLen(i), valid)
	s.startSlice(f, m, vk, i, st)
	f.kind, f.meta = fillStored, m
	// The waiters are told after the first read of the body, not before:
	// woken at once, a thousand of them would run ahead of this goroutine
	// and find nothing to send, and it would wait behind them for the
	// bytes they need. A small body is then often whole when they wake.
	announced := false
	announce := func() {
		if !announced {
			announced = true
			close(f.ready)
		}
	}
	defer announce()

	sliced := m.Sliced
	var got int64
	buf := make([]byte, 64<<10)
	// Each slice is stored before its stream ends, so a request that comes
	// in as soon as a reader saw the last byte finds it in the store.
	finishSlice := func() {
		if sliced {
			put(sliceKey(vk, i), []byte(valid), st.buf)
			s.unregisterSlice(sliceKey(vk, i), st)
			f.drop(i - 1)
		}
		st.finish(nil)
	}
	for {
		n, rerr := body.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			room := S - int64(len(st.buf))
			if room == 0 {
				if !sliced {
					// Unknown length that outgrew one slice: store in slices.
					sliced = true
				}
				finishSlice()
				if f.readers.Load() == 0 && m.Size >= 0 && m.Sliced {
					// Nobody is reading; later requests fetch the rest by range.
					return nil
				}
				i++
				st = newStream(sliceLen(i), valid)
				s.startSlice(f, m, vk, i, st)
				continue
			}
			k := min(room, int64(len(p)))
			st.Write(p[:k])
			p = p[k:]
			got += k
		}
		if rerr == nil && (expect < 0 || got < expect) {
			announce()
		}
		if rerr == io.EOF || (expect >= 0 && got == expect && rerr == nil) {
			break
		}
		if rerr != nil {
			st.finish(rerr)
			s.unregisterSlice(sliceKey(vk, i), st)
			return rerr
		}
		if expect >= 0 && got > expect {
			st.finish(errShortStream)
			s.unregisterSlice(sliceKey(vk, i), st)
			return errors.New("edge: upstream sent more than its content-length")
		}
	}
	if expect >= 0 && got != expect {
		st.finish(errShortStream)
		s.unregisterSlice(sliceKey(vk, i), st)
		return errShortStream
	}
	switch {
	case !sliced:
		final := *m
		final.Size = got
		put(key, final.encode(), st.buf)
		s.index.add(m.Key, key, m.Tags)
		s.detachFill(f)
		st.finish(nil)
	case !m.Sliced:
		// Length was unknown: the metadata goes in last, with the size.
		final := *m
		final.Size, final.Sliced, final.SliceBytes = (i-first)*S+int64(len(st.buf)), true, S
		put(sliceKey(vk, i), []byte(valid), st.buf)
		put(key, final.encode(), nil)
		s.index.add(m.Key, key, m.Tags)
		s.detachFill(f)
		st.finish(nil)
	default:
		s.detachFill(f)
		finishSlice()
	}
	return nil
}

// startSlice publishes the stream of slice i to the fill's readers and, for
// objects known to be sliced, to requests that look for the slice.
func (s *Server) startSlice(f *fill, m *objMeta, vk string, i int64, st *stream) {
	f.addStream(i, st)
	if m.Sliced {
		s.mu.Lock()
		s.slices[sliceKey(vk, i)] = st
		s.mu.Unlock()
	}
}

// pass forwards a request that is not served from the cache and relays the
// answer; after an unsafe method it invalidates what the response names.
func (s *Server) pass(w http.ResponseWriter, r *http.Request, rt *runtime, ri reqInfo, fwd string) {
	h := upstreamHeader(r.Header, false)
	rb, err := s.bodies.readBody(w, r, s.now)
	if err != nil {
		s.writeBodyError(w, rt, err, fwd)
		return
	}
	defer rb.done()
	var body io.Reader
	var cb *clientBody
	if rb.r != nil {
		cb = &clientBody{r: rb.r}
		body = cb
	}
	resp, err := s.roundTrip(r.Context(), rt, ri, r.Method, h, body, rb.n, false)
	if err != nil {
		if cb != nil && cb.err != nil {
			// The client's body was malformed (e.g. a bad chunk) or too
			// slow (which also ends the request's context), not the
			// upstream unreachable.
			s.writeBodyError(w, rt, cb.err, fwd)
			return
		}
		if r.Context().Err() != nil {
			return
		}
		s.count("error")
		code := http.StatusBadGateway
		if isTimeout(err) {
			code = http.StatusGatewayTimeout
		}
		s.writeError(w, rt, code, "upstream unreachable", fwd)
		return
	}
	if !safeMethod(r.Method) {
		s.invalidate(ri, resp)
	}
	if fwd == "bypass" {
		s.count("bypass")
	} else {
		s.count("miss")
	}
	s.writeUpstream(w, r, rt, ri, resp, httpcache.CacheStatus{Fwd: fwd, FwdStatus: resp.StatusCode})
}

// clientBody remembers a failure to read the client's request body.
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// writeUpstream relays an upstream response as it streams in.
func (s *Server) writeUpstream(w http.ResponseWriter, r *http.Request, rt *runtime, ri reqInfo, resp *http.Response, cs httpcache.CacheStatus) {
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	httpcache.RemoveHopByHop(h)
	if !ri.fromEdge {
		for _, k := range edgeOnlyHeaders {
			delete(h, k)
		}
	}
	cs.Cache = rt.cfg.Name
	h["Cache-Status"] = append(append([]string(nil), resp.Header["Cache-Status"]...), cs.String())
	if resp.ContentLength >= 0 && bodyAllowed(resp.StatusCode) {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead || !bodyAllowed(resp.StatusCode) {
		return
	}
	var dst io.Writer = w
	if resp.ContentLength < 0 {
		dst = flushWriter{w}
	}
	n, err := io.Copy(dst, resp.Body)
	s.metrics.bytesOut.Add(float64(n))
	if err != nil && r.Context().Err() == nil {
		panic(http.ErrAbortHandler)
	}
}

// flushWriter flushes after every write so a streamed body of unknown
// length reaches the client as it arrives.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

// invalidate marks stale what an unsafe request changed (RFC 9111 §4.4).
func (s *Server) invalidate(ri reqInfo, resp *http.Response) {
	for _, pk := range httpcache.InvalidationKeys(ri.scheme, ri.host, ri.uri, resp.StatusCode, resp.Header) {
		s.purgeKey(pk, true)
	}
}
