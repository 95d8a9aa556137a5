package edge

import (
	"context"
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
func (s *Server) roundTrip(ctx context.Context, rt *liveConfig, ri reqInfo, method string, h http.Header, body io.Reader, contentLength int64, cacheable bool) (*http.Response, error) {
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
		noteUpstream(ctx, resp, start)
		s.metrics.upstreamLatency.WithLabelValues(hp.kind).Observe(time.Since(start).Seconds())
		if err != nil {
			s.metrics.upstreamFetches.WithLabelValues(hp.kind, "error").Inc()
			lastErr = &hopError{kind: hp.kind, host: hp.base.Host, err: err}
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

// pass forwards a request that is not served from the cache and relays the
// answer; after an unsafe method it invalidates what the response names.
func (x *exchange) pass(fwd string) {
	s, w, r, rt, ri := x.s, x.w, x.r, x.rt, x.ri
	h := upstreamHeader(r.Header, false)
	rb, err := s.reqBodies.readBody(w, r, s.now)
	if err != nil {
		x.writeBodyError(err, fwd)
		return
	}
	defer rb.done()
	var body io.Reader
	var cb *clientBody
	if rb.r != nil {
		cb = &clientBody{r: rb.r}
		body = cb
	}
	ctx, ir := relayInterim(r.Context(), w, r)
	resp, err := s.roundTrip(ctx, rt, ri, r.Method, h, ir.body(body), rb.n, false)
	ir.stop()
	if err != nil {
		if cb != nil && cb.err != nil {
			// The client's body was malformed (e.g. a bad chunk) or too
			// slow (which also ends the request's context), not the
			// upstream unreachable.
			x.writeBodyError(cb.err, fwd)
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
		x.writeError(code, s.upstreamFailed(ri.pk, err), fwd)
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
	x.writeUpstream(resp, httpcache.CacheStatus{Fwd: fwd, FwdStatus: resp.StatusCode})
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
func (x *exchange) writeUpstream(resp *http.Response, cs httpcache.CacheStatus) {
	s, w, r, rt, ri := x.s, x.w, x.r, x.rt, x.ri
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
		s.abortResponse(ri, n, err)
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
