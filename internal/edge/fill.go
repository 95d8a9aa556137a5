package edge

import (
	"context"
	"net/http"
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

// fill is one upstream fetch for one cache key that any number of requests
// wait on: concurrent misses cause one fetch, and the waiters are fed while
// the body streams in.
type fill struct {
	key     string        // the storage key the fill is registered under
	leader  *http.Request // the request that started it
	varyKey string        // the leader's vary key, once the response's Vary is known
	ready   chan struct{}

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

	endErr error

	readers atomic.Int32
	waiting atomic.Int32 // fast-path requests waiting for the header
	purged  atomic.Bool  // a purge hit the key: store nothing more

	fast atomic.Pointer[fastFill] // for the fast path's collapsed requests
}

// fastFill is what the fast path writes for every request collapsed into a
// fill: the stored header serialised, and the age and ttl of the response
// at wall time at (Unix ns), which grow and shrink with the time passed.
type fastFill struct {
	rt       *runtime
	wire     []byte
	date     bool
	at       int64
	age, ttl time.Duration
}

// wireHeader returns wireHeader(f.meta.Header) and the response's current
// age and ttl, as httpcache.CurrentAge and ttlOf give them, computed once
// per fill and runtime. Call it after ready is closed.
func (f *fill) wireHeader(rt *runtime, now time.Time) (wire []byte, date bool, age, ttl time.Duration) {
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

// addStream appends the stream for slice index i.
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

// drop forgets stream i (it is in the store now) so memory stays bounded.
func (f *fill) drop(i int64) {
	f.mu.Lock()
	if j := i - f.first; j >= 0 && j < int64(len(f.streams)) {
		f.streams[j] = nil
	}
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
