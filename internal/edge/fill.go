package edge

// The life cycle of a miss, in one place.
//
// A request the cache cannot answer joins or starts a fill: one upstream
// fetch for one storage key (objKey), registered in s.fills while its
// response header is awaited, so that concurrent misses make one fetch.
// When the header is in, f.ready is closed and f.kind says what came back
// (stored, pass, revalidated, stale, error).
//
// A storable body streams into one stream per slice (stream.go): states
// filling (the stream grows), stored (the slice is complete and in the
// store; its stream is dropped), failed (the stream ends with the upstream's
// error and nothing of it is stored). An object of one slice or less is
// stored whole when its body has completed; a larger one is stored as its
// metadata plus a blob per slice, each put when complete.
//
// A sliced object's slices that are not in the store are fetched by body
// fills: a fill that asks for the object from slice i on (Range: bytes=iS-),
// or reads the whole object once when the origin ignores Range. Every fill
// that streams a sliced object, the miss's own included, is registered in
// s.bodies under the object's variant key, so that a reader that needs a
// slice joins the fill that is filling it, or is about to, instead of
// fetching it again.
//
// A fill goes on while anybody reads it (f.readers: requests attached to
// it, counted under s.mu while the fill is findable). When nobody does, it
// stops at the next slice boundary once the slice it was started for is
// stored: an abandoned download costs the origin at most one more slice.
// A body that stalls longer than the upstream timeout fails.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// fillKind says how a fill ended its header phase.
type fillKind int

const (
	fillStored      fillKind = iota // a storable response: body streams through f.streams
	fillPass                        // not storable: the leader gets resp, waiters fetch on their own
	fillRevalidated                 // the upstream said 304: f.meta is the refreshed stored object
	fillStale                       // the upstream failed and stale-if-error allows the stored object
	fillError                       // the upstream failed: f.err, f.status
)

// Errors of the body phase.
var (
	errShortStream   = errors.New("edge: upstream body ended early")
	errObjectChanged = errors.New("edge: object changed upstream")
	errBodyStalled   = errors.New("edge: upstream body stalled")
	errGone          = errors.New("edge: stored body gone")
)

// fill is one upstream fetch for one cache key that any number of requests
// wait on: concurrent misses cause one fetch, and the waiters are fed while
// the body streams in.
type fill struct {
	key     string        // the storage key the fill is registered under
	leader  *http.Request // the request that started it
	varyKey string        // the leader's vary key, once the response's Vary is known
	ready   chan struct{}
	want    int64  // the slice the fill was started for: it does not stop before storing it
	last    int64  // body fills: the last slice asked for, -1 for the end of the object
	body    bool   // a body fill of a stored sliced object (see bodyFor), not a miss's fill
	valid   string // the validator of the object whose body it streams

	// Set before ready is closed.
	kind   fillKind
	meta   *objMeta
	vk     string // storage key of the object (differs from key when the response varies)
	resp   *http.Response
	status int
	err    error

	mu      sync.Mutex
	first   int64     // index of streams[0]
	streams []*stream // nil entries were handed to the store and dropped
	more    chan struct{}
	ended   bool
	whole   bool  // the body is the whole object from slice 0 and the origin may not do ranges
	dropped int64 // slices before this index are dropped or were looked at (dropStored)

	endErr error

	readers atomic.Int32 // requests attached to the fill (see stopIfUnread)
	pos     atomic.Int64 // the furthest slice an attached reader has asked for (see paceFill)
	waiting atomic.Int32 // fast-path requests waiting for the header
	purged  atomic.Bool  // a purge hit the key: store nothing more

	fast atomic.Pointer[fastFill] // for the fast path's collapsed requests
}

// fastFill is what the fast path writes for every request collapsed into a
// fill: the stored header serialised, and the age and ttl of the response
// at wall time at (Unix ns), which grow and shrink with the time passed.
type fastFill struct {
	rt       *liveConfig
	wire     []byte
	date     bool
	at       int64
	age, ttl time.Duration
}

// wireHeader returns wireHeader(f.meta.Header) and the response's current
// age and ttl, as httpcache.CurrentAge and ttlOf give them, computed once
// per fill and liveConfig. Call it after ready is closed.
func (f *fill) wireHeader(rt *liveConfig, now time.Time) (wire []byte, date bool, age, ttl time.Duration) {
	ff := f.fast.Load()
	if ff == nil || ff.rt != rt || now.UnixNano() < ff.at {
		m := f.meta
		ff = &fastFill{rt: rt, at: now.UnixNano()}
		ff.wire, ff.date = wireHeader(m.Header)
		ff.age = httpcache.CurrentAge(m.Header, m.ReqTime, m.RespTime, now)
		ff.ttl = ttlOf(m, ff.age, rt)
		f.fast.Store(ff)
	}
	d := time.Duration(now.UnixNano() - ff.at)
	return ff.wire, ff.date, ff.age + d, ff.ttl - d
}

func newFill(key string, leader *http.Request) *fill {
	return &fill{key: key, leader: leader, ready: make(chan struct{}), more: make(chan struct{})}
}

// addStream appends the stream for slice i.
func (f *fill) addStream(i int64, st *stream) {
	f.mu.Lock()
	if len(f.streams) == 0 {
		f.first = i
	}
	f.streams = append(f.streams, st)
	close(f.more)
	f.more = make(chan struct{})
	f.mu.Unlock()
}

func (f *fill) end(err error) {
	f.mu.Lock()
	if !f.ended {
		f.ended, f.endErr = true, err
		close(f.more)
	}
	f.mu.Unlock()
}

// progress reports the index past the last slice started, whether the fill
// has ended, and how.
func (f *fill) progress() (next int64, ended bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first + int64(len(f.streams)), f.ended, f.endErr
}

// streamAt returns the stream of slice i, waiting until the fill reaches it.
// It returns nil when the fill will not provide it (ended, dropped, or
// started past it).
func (f *fill) streamAt(ctx context.Context, i int64) *stream {
	for {
		f.mu.Lock()
		j := i - f.first
		if len(f.streams) > 0 && j < 0 {
			f.mu.Unlock()
			return nil
		}
		if j >= 0 && j < int64(len(f.streams)) {
			st := f.streams[j]
			f.mu.Unlock()
			return st
		}
		ended, more := f.ended, f.more
		f.mu.Unlock()
		if ended {
			return nil
		}
		select {
		case <-more:
		case <-ctx.Done():
			return nil
		}
	}
}

// reading records that a reader has asked for slice i.
func (f *fill) reading(i int64) {
	for {
		p := f.pos.Load()
		if i <= p || f.pos.CompareAndSwap(p, i) {
			return
		}
	}
}

// started waits until the fill streams a body (its upstream answered and
// the answer was accepted) or ends; it returns the fill's error if it ended
// without streaming, or ctx's.
func (f *fill) started(ctx context.Context) error {
	for {
		f.mu.Lock()
		streaming, ended, err, more := len(f.streams) > 0, f.ended, f.endErr, f.more
		f.mu.Unlock()
		switch {
		case streaming:
			return nil
		case ended && err == nil:
			return errGone
		case ended:
			return err
		}
		select {
		case <-more:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// covers reports whether body fill f of an object with validator valid is
// the one to ask for slice i: it has streamed it (the reader then finds it
// in the fill or, once dropped, in the store), is filling it now or next,
// or reads the whole object and will come to it.
func (f *fill) covers(i int64, valid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended || f.valid != valid {
		return false
	}
	first, cur := f.want, f.want
	if len(f.streams) > 0 {
		first, cur = f.first, f.first+int64(len(f.streams))-1
	}
	if f.whole {
		return i >= first
	}
	return i >= first && i <= cur+1 && (f.last < 0 || i <= f.last)
}

// joinFill returns the fill in flight for key, or registers a new one and
// calls start with it (the caller is then the leader). A reader is attached
// to the fill until it calls f.readers.Add(-1).
func (s *Server) joinFill(key string, r *http.Request, reader bool, start func(*fill)) (*fill, bool) {
	s.mu.Lock()
	if f, ok := s.fills[key]; ok {
		if reader {
			f.readers.Add(1)
		}
		s.mu.Unlock()
		return f, false
	}
	f := newFill(key, r)
	if reader {
		f.readers.Add(1)
	}
	s.fills[key] = f
	s.mu.Unlock()
	start(f)
	return f, true
}

func (s *Server) endFill(f *fill, err error) {
	s.mu.Lock()
	if s.fills[f.key] == f {
		delete(s.fills, f.key)
	}
	s.unregisterBodyLocked(f)
	s.mu.Unlock()
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

// stopIfUnread reports whether nobody reads f, and then makes it unfindable
// so that nobody attaches to it while it stops.
func (s *Server) stopIfUnread(f *fill) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.readers.Load() > 0 || f.waiting.Load() > 0 {
		return false
	}
	if s.fills[f.key] == f {
		delete(s.fills, f.key)
	}
	s.unregisterBodyLocked(f)
	return true
}

func (s *Server) registerBody(f *fill) {
	s.mu.Lock()
	s.bodies[f.vk] = append(s.bodies[f.vk], f)
	s.mu.Unlock()
}

func (s *Server) unregisterBodyLocked(f *fill) {
	list := s.bodies[f.vk]
	for i, g := range list {
		if g == f {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.bodies, f.vk)
	} else {
		s.bodies[f.vk] = list
	}
}

// bodyFor returns a fill that provides slice i of sliced object m (variant
// vk), attached for the caller: the one in flight that covers it (other
// than skip, which did not provide it), or a new body fill from slice i on. The caller detaches with
// f.readers.Add(-1); when the fill returned is have (already attached), it
// is not attached again.
func (s *Server) bodyFor(rt *liveConfig, ri reqInfo, vk string, m *objMeta, span sliceSpan, have, skip *fill) *fill {
	i := span.first
	valid := validator(m.Header)
	s.mu.Lock()
	for _, f := range s.bodies[vk] {
		if f != skip && f.covers(i, valid) {
			if f != have {
				f.readers.Add(1)
			}
			s.mu.Unlock()
			return f
		}
	}
	f := newFill(objKey(vk)+"#body", nil)
	f.vk, f.want, f.valid, f.body, f.last = vk, i, valid, true, span.last
	f.readers.Add(1)
	s.bodies[vk] = append(s.bodies[vk], f)
	s.mu.Unlock()
	ri.header = ri.header.Clone()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.runBody(f, rt, ri, vk, m, span)
	}()
	return f
}

// watchedBody fails a body read that waits longer than timeout for bytes,
// by cancelling the request's context.
type watchedBody struct {
	io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
	fired   atomic.Bool
}

func watchBody(body io.ReadCloser, timeout time.Duration, cancel context.CancelFunc) *watchedBody {
	w := &watchedBody{ReadCloser: body, timeout: timeout}
	w.timer = time.AfterFunc(timeout, func() {
		w.fired.Store(true)
		cancel()
	})
	return w
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if err != nil && w.fired.Load() {
		return n, fmt.Errorf("%w: no bytes for %v", errBodyStalled, w.timeout)
	}
	if n > 0 {
		w.timer.Reset(w.timeout)
	}
	return n, err
}

func (w *watchedBody) Close() error {
	w.timer.Stop()
	return w.ReadCloser.Close()
}

// cancelOnClose ends a request's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// runFill performs the upstream fetch of a fill and publishes its outcome.
// It is detached from the client that started it: the body keeps filling
// the cache for the other waiters when that client goes away.
func (s *Server) runFill(f *fill, rt *liveConfig, ri reqInfo, vk string, old *objMeta, span sliceSpan) {
	ctx, cancel := context.WithCancel(withUpstreamNote(s.bgCtx, f.leader))
	var bodyErr error
	handed := false // the response went to the leader, who ends it with Close
	defer func() {
		s.endFill(f, bodyErr)
		if !handed {
			cancel()
		}
		if bodyErr != nil && !f.purged.Load() {
			s.log.Warn("upstream body failed", "key", ri.pk, "err", bodyErr)
		}
	}()
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
	slice := span.first
	if slice >= 0 {
		h.Set("Range", span.rangeHeader(S))
	}
	video := rt.cfg.Video
	if !video.Off && blockingReload(ri.uri) {
		// Viewers of one URL share this fill; distinct URLs waiting at
		// the origin at once are bounded.
		if !s.reloads.enter(video.BlockingReloads) {
			f.kind, f.err = fillError, errBlockingReloads
			close(f.ready)
			return
		}
		defer s.reloads.leave()
	}
	reqTime := s.now()
	resp, err := s.roundTrip(ctx, rt, ri, http.MethodGet, h, nil, 0, true)
	respTime := s.now()
	if err != nil {
		f.kind, f.err = fillError, err
		close(f.ready)
		return
	}
	f.status = resp.StatusCode
	status := resp.StatusCode
	httpcache.TargetSurrogateControl(resp.Header, surrogateToken)
	resp.Body = watchBody(resp.Body, rt.cfg.UpstreamTimeout, cancel)
	if status != http.StatusNotModified {
		if err := applyVideo(video, ri.uri, resp, reqTime, respTime); err != nil {
			resp.Body.Close()
			f.kind, f.err = fillError, err
			close(f.ready)
			return
		}
	}
	switch {
	case status == http.StatusNotModified && old != nil:
		resp.Body.Close()
		m := *old
		m.Header = httpcache.UpdateStoredHeader(old.Header, resp.Header)
		m.ReqTime, m.RespTime, m.Invalidated = reqTime, respTime, false
		if !f.purged.Load() {
			s.store.UpdateMeta(objKey(vk), m.encode())
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
		bodyErr = s.fillRange(f, rt, ri, resp.Body, resp, slice, reqTime, respTime)
		return
	}
	if status == http.StatusPartialContent || !httpcache.Storable(http.MethodGet, ri.header, status, resp.Header) {
		f.kind = fillPass
		if slice >= 0 || f.leader == nil {
			// The response answers our slice-aligned range, not the
			// client's: the client fetches on its own.
			resp.Body.Close()
		} else {
			resp.Body = &cancelOnClose{resp.Body, cancel}
			f.resp, handed = resp, true
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
	want := max(slice, 0)
	if slice >= 0 || !strings.EqualFold(resp.Header.Get("Accept-Ranges"), "bytes") {
		// The origin ignored our Range, or does not say it honours one:
		// readers of any later slice wait for this fill rather than ask
		// for a range that would bring the whole object again.
		f.whole = true
	}
	bodyErr = s.fillBody(f, rt, m, vk, resp.Body, 0, size, want)
}

// newObject builds the metadata of a storable response and stores the vary
// marker when the response varies. It returns the object's variant key.
func (s *Server) newObject(f *fill, ri reqInfo, status int, h http.Header, reqTime, respTime time.Time) (*objMeta, string) {
	names, _ := httpcache.VaryNames(h)
	vk := ri.pk
	if len(names) > 0 {
		f.varyKey = httpcache.VaryKey(names, ri.header)
		vk = variantKey(ri.pk, f.varyKey)
		marker := &objMeta{Key: ri.pk, Marker: true, VaryNames: names}
		if !f.purged.Load() {
			s.store.Put(objKey(ri.pk), marker.encode(), nil)
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

// sliceSpan is the slices [first, last] a fetch asks for; last -1 means to
// the end of the object, first -1 the whole object without a Range.
type sliceSpan struct{ first, last int64 }

// rangeHeader is the Range field that asks for the span in slices of S.
// From the slice a player seeks to, an open span makes one request serve
// it as it reads on.
func (sp sliceSpan) rangeHeader(S int64) string {
	if sp.last < 0 {
		return fmt.Sprintf("bytes=%d-", sp.first*S)
	}
	return fmt.Sprintf("bytes=%d-%d", sp.first*S, sp.last*S+S-1)
}

// rangeAnswerOK reports whether a 206 with Content-Range cr of an object of
// total bytes answers a request for bytes=start- in whole slices of S: it
// starts there and ends at the object's end or at a slice boundary.
func rangeAnswerOK(cr httpcache.ByteRange, total, start, S int64) bool {
	return total > start && cr.Start == start && (cr.End == total-1 || (cr.End+1)%S == 0)
}

// fillRange handles the 206 answer to the open range (from a slice
// boundary) a miss with a Range header asked for: the object is stored as
// metadata plus the slices that came.
func (s *Server) fillRange(f *fill, rt *liveConfig, ri reqInfo, body io.ReadCloser, resp *http.Response, slice int64, reqTime, respTime time.Time) error {
	S := rt.cfg.SliceBytes
	cr, total, err := httpcache.ParseContentRange(resp.Header.Get("Content-Range"))
	if err != nil || !rangeAnswerOK(cr, total, slice*S, S) || !httpcache.Storable(http.MethodGet, ri.header, http.StatusOK, resp.Header) {
		body.Close()
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
	return s.fillBody(f, rt, m, vk, body, slice, cr.Length(), slice)
}

// runBody is a body fill: it fetches sliced object m (variant vk) from
// slice i on, for readers of slices that are not stored.
func (s *Server) runBody(f *fill, rt *liveConfig, ri reqInfo, vk string, m *objMeta, span sliceSpan) {
	i := span.first
	ctx, cancel := context.WithCancel(s.bgCtx)
	var err error
	defer func() {
		if err != nil && !f.purged.Load() {
			s.log.Warn("slice fetch failed", "key", ri.pk, "slice", i, "err", err)
			if errors.Is(err, errObjectChanged) {
				// Gone before the readers hear of it, so that one that
				// asks again finds a miss, not the old version.
				s.deleteVersion(vk, f.valid)
			}
		}
		s.endFill(f, err)
		cancel()
	}()
	S := m.SliceBytes
	h := upstreamHeader(ri.header, true)
	h.Set("Range", span.rangeHeader(S))
	resp, rerr := s.roundTrip(ctx, rt, ri, http.MethodGet, h, nil, 0, true)
	if rerr != nil {
		err = rerr
		return
	}
	body := watchBody(resp.Body, rt.cfg.UpstreamTimeout, cancel)
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr, total, perr := httpcache.ParseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case perr != nil || total != m.Size || !rangeAnswerOK(cr, total, i*S, S):
			err = fmt.Errorf("%w: content-range %q for an object of %d bytes", errObjectChanged, resp.Header.Get("Content-Range"), m.Size)
		case validator(resp.Header) != f.valid:
			err = fmt.Errorf("%w: validator %q, stored %q", errObjectChanged, validator(resp.Header), f.valid)
		default:
			err = s.fillBody(f, rt, m, vk, body, i, cr.Length(), i)
			return
		}
	case http.StatusOK:
		// The origin ignores Range: read the whole object once, store
		// every slice, and serve the waiting readers from it.
		switch {
		case validator(resp.Header) != f.valid:
			err = fmt.Errorf("%w: validator %q, stored %q", errObjectChanged, validator(resp.Header), f.valid)
		case resp.ContentLength != m.Size:
			err = fmt.Errorf("%w: %d bytes, stored %d", errObjectChanged, resp.ContentLength, m.Size)
		default:
			f.mu.Lock()
			f.whole = true
			f.mu.Unlock()
			err = s.fillBody(f, rt, m, vk, body, 0, m.Size, i)
			return
		}
	case http.StatusNotFound, http.StatusGone, http.StatusPreconditionFailed, http.StatusRequestedRangeNotSatisfiable:
		err = fmt.Errorf("%w: status %d to a range request", errObjectChanged, resp.StatusCode)
	default:
		err = fmt.Errorf("upstream status %d to a range request", resp.StatusCode)
	}
	body.Close()
}

// fillBody streams an upstream body into the fill's slices, storing each
// slice when complete. first is the index of the first slice; expect the
// number of body bytes (-1 when unknown); the fill stops early, when nobody
// reads it, only after slice want is stored.
func (s *Server) fillBody(f *fill, rt *liveConfig, m *objMeta, vk string, body io.ReadCloser, first, expect, want int64) error {
	defer body.Close()
	key := objKey(vk)
	S := rt.cfg.SliceBytes
	if m.Sliced {
		S = m.SliceBytes
	}
	put := func(k string, meta, b []byte) {
		if !f.purged.Load() {
			s.store.Put(k, meta, b)
		}
	}
	fresh := !f.body // a miss's fill: the object is new
	valid := validator(m.Header)
	sliceLen := func(i int64) int64 {
		if m.Size >= 0 {
			return min(S, m.Size-i*S)
		}
		return 32 << 10 // grows as needed
	}
	i := first
	st := newStream(sliceLen(i), valid)
	f.reading(want)
	// Under mu: a body fill is findable (covers reads valid) before this.
	f.mu.Lock()
	f.kind, f.meta, f.valid = fillStored, m, valid
	f.mu.Unlock()
	f.addStream(i, st)
	if m.Sliced && fresh {
		// Findable before the metadata is: a request that finds the
		// object stored must find the fill that streams its slices.
		s.registerBody(f)
		put(key, m.encode(), nil)
		s.index.add(m.Key, key, m.Tags)
	}
	// The waiters are told after the first read of the body, not before:
	// woken at once, a thousand of them would run ahead of this goroutine
	// and find nothing to send, and it would wait behind them for the
	// bytes they need. A small body is then often whole when they wake.
	announced := false
	announce := func() {
		if !announced {
			announced = true
			if fresh {
				close(f.ready)
			}
		}
	}
	defer announce()

	sliced := m.Sliced
	var got int64
	buf := make([]byte, 64<<10)
	fail := func(err error) error {
		st.finish(err)
		return err
	}
	for {
		n, rerr := body.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			room := S - int64(len(st.buf))
			if room == 0 {
				// Slice i is complete. It is stored before its stream ends, so
				// a request that comes in as soon as a reader saw the last byte
				// finds it in the store.
				sliced = true // an unknown length that outgrew one slice is stored in slices
				put(sliceKey(vk, i), []byte(valid), st.buf)
				s.dropStored(f, vk, i)
				st.finish(nil)
				if m.Sliced && i >= want && !s.paceFill(f, i) {
					// Nobody is reading; later requests fetch the rest by range.
					return nil
				}
				i++
				st = newStream(sliceLen(i), valid)
				f.addStream(i, st)
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
			return fail(rerr)
		}
		if expect >= 0 && got > expect {
			return fail(errors.New("edge: upstream sent more than its content-length"))
		}
	}
	if expect >= 0 && got != expect {
		return fail(fmt.Errorf("%w: %d of %d bytes", errShortStream, got, expect))
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
		put(sliceKey(vk, i), []byte(valid), st.buf)
		s.dropStored(f, vk, i)
		st.finish(nil)
	}
	return nil
}

// readAhead is how many slices a sliced fill may run ahead of the furthest
// slice its readers have asked for; pacePause is how long it waits for them
// at most before it reads on regardless (an origin does not keep a stalled
// connection open for ever). unreadLinger is how long a fill from an origin
// that ignores Range waits, reading nothing, for a new reader once its
// readers have all left: there a stopped fill costs the next reader the
// whole object again, and the readers of one object seldom arrive at the
// same instant (a busy edge accepts them a few hundred milliseconds apart).
// It costs what the kernel buffers meanwhile. A fill from an origin that
// honours Range stops at once: a later reader fetches only what it lacks.
const (
	readAhead    = 2
	pacePause    = 30 * time.Second
	unreadLinger = time.Second
)

// paceFill holds a fill that has completed slice i while it is readAhead
// slices ahead of its readers, so a download its client abandoned costs the
// origin a few slices, not the object. It reports false when the fill has
// no reader (for unreadLinger if the origin ignores Range); the fill is then
// unfindable and stops. Called by the fill's own goroutine.
func (s *Server) paceFill(f *fill, i int64) bool {
	deadline := time.Now().Add(pacePause)
	linger := time.Duration(0)
	if f.whole {
		linger = unreadLinger
	}
	var unreadSince time.Time
	for {
		if f.readers.Load() > 0 || f.waiting.Load() > 0 {
			unreadSince = time.Time{}
			if i+1 <= f.pos.Load()+readAhead {
				return true
			}
		} else {
			if unreadSince.IsZero() {
				unreadSince = time.Now()
			}
			if time.Since(unreadSince) >= linger && s.stopIfUnread(f) {
				return false
			}
		}
		if unreadSince.IsZero() && time.Now().After(deadline) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keepSlices is how many completed slices a fill keeps in memory for its
// readers when the store did not take them (a full or refusing tier).
const keepSlices = 4

// dropStored lets go of the streams of f's slices before i that the store
// holds, or that are more than keepSlices behind, so a fill's memory stays
// bounded while readers a little behind still find their slice.
func (s *Server) dropStored(f *fill, vk string, i int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ; f.dropped < i; f.dropped++ {
		j := f.dropped - f.first
		if j < 0 || j >= int64(len(f.streams)) || f.streams[j] == nil {
			continue
		}
		if i-f.dropped <= keepSlices && !s.store.Contains(sliceKey(vk, f.dropped)) {
			return
		}
		f.streams[j] = nil
	}
}

// refresh revalidates a stale object in the background
// (stale-while-revalidate): at most one refresh per key at a time.
func (s *Server) refresh(rt *liveConfig, ri reqInfo, l lookupResult) {
	ri.header = ri.header.Clone()
	meta := l.meta
	s.joinFill(l.key, nil, false, func(f *fill) {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.runFill(f, rt, ri, l.vk, meta, sliceSpan{-1, -1})
		}()
	})
}

// deleteVersion removes variant vk if what is stored is still the version
// with validator valid (a newer one may have replaced it meanwhile).
func (s *Server) deleteVersion(vk, valid string) {
	m, e := s.getMeta(objKey(vk))
	if m == nil {
		return
	}
	e.Close()
	if validator(m.Header) == valid {
		s.deleteObject(objKey(vk))
	}
}
