package accesslog

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Logger. Every field but Sink is optional.
type Options struct {
	// Sink receives the lines, in batches of whole lines. Required.
	Sink io.Writer
	// SampleRate is the share of requests logged, from 0 to 1: 1 logs
	// every request, 0 only the errors (responses with a status of 500 or
	// more are always logged). It has no default: a zero Options logs
	// errors only.
	SampleRate float64
	// Seed seeds the sampling (tests make it exact).
	Seed uint64
	// Edge and Region name this edge in every line.
	Edge, Region string
	// BufferBytes bounds the lines held for the sink, in two halves: one
	// being filled while the other is written. If zero, defaults to 4 MiB:
	// at 40,000 lines a second (some 13 MB/s) the writer may be held up for
	// 150 ms, by a slow disk or a busy CPU, before lines are dropped.
	BufferBytes int
	// FlushInterval is the longest a line waits for its batch to be
	// written. If zero, defaults to 200ms.
	FlushInterval time.Duration
}

// Logger writes access log lines to a sink without ever blocking the
// request that logs: lines go into a bounded buffer that one goroutine
// writes out in batches; when the buffer is full (the sink is slow), a line
// is dropped and counted instead.
type Logger struct {
	sink          io.Writer
	edge, region  []byte // JSON-encoded, with their quotes
	flushAt       int    // a batch this large is written at once
	max           int    // a batch never grows beyond this
	all, none     bool
	threshold     uint64 // sampling: a request is logged when its draw is below
	seed          uint64
	draws         atomic.Uint64
	flushInterval time.Duration

	flushMu sync.Mutex // one flush at a time
	mu      sync.Mutex
	cur     []byte // the batch being filled
	next    []byte // the empty buffer the flusher hands back; nil while it writes

	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once
	// written and dropped count lines; writeErrs counts failed batches.
	written, dropped, writeErrs atomic.Uint64
	lastErr                     atomic.Pointer[error]
}

// New starts a Logger; Close stops it after writing what it holds.
func New(o Options) (*Logger, error) {
	if o.Sink == nil {
		return nil, errors.New("accesslog: no sink")
	}
	if math.IsNaN(o.SampleRate) || o.SampleRate < 0 || o.SampleRate > 1 {
		return nil, fmt.Errorf("accesslog: sample rate %v: want 0 to 1", o.SampleRate)
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = 4 << 20
	}
	if o.BufferBytes < 8<<10 {
		return nil, fmt.Errorf("accesslog: buffer of %d bytes: want at least 8 KiB", o.BufferBytes)
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	half := o.BufferBytes / 2
	l := &Logger{
		sink:          o.Sink,
		edge:          AppendString(nil, o.Edge),
		region:        AppendString(nil, o.Region),
		max:           half,
		flushAt:       min(half/4, 64<<10),
		seed:          o.Seed,
		flushInterval: o.FlushInterval,
		cur:           make([]byte, 0, half),
		next:          make([]byte, 0, half),
		kick:          make(chan struct{}, 1),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	switch rate := o.SampleRate; {
	case rate == 1:
		l.all = true
	case rate == 0:
		l.none = true
	default:
		l.threshold = uint64(rate * (1 << 64))
	}
	go l.run()
	return l, nil
}

// Sample tells whether a request answered with status is logged: always
// when status is 500 or more, else at the sample rate. A caller that knows
// the status before serving (the fast paths answer only 200) asks first and
// skips the record's work when the answer is no.
func (l *Logger) Sample(status int) bool {
	switch {
	case l.all || status >= 500:
		return true
	case l.none:
		return false
	}
	// splitmix64 over a counter: a well-spread draw per request with no
	// lock and no shared generator state to contend on beyond one add.
	z := l.seed + l.draws.Add(1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return z < l.threshold
}

// scratch holds one line while it is encoded, outside the lock.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Log writes r (which Sample has let through). It never blocks on the sink.
func (l *Logger) Log(r *Record) {
	bp := scratch.Get().(*[]byte)
	b := r.AppendJSON((*bp)[:0], l.edge, l.region)
	b = append(b, '\n')
	l.mu.Lock()
	ok := len(l.cur)+len(b) <= l.max
	if ok {
		l.cur = append(l.cur, b...)
	}
	full := len(l.cur) >= l.flushAt
	l.mu.Unlock()
	if cap(b) <= 16<<10 {
		*bp = b
		scratch.Put(bp)
	}
	if !ok {
		l.dropped.Add(1)
		return
	}
	l.written.Add(1)
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// run writes the batches: when one is large enough, every flush interval,
// and at Close.
func (l *Logger) run() {
	defer close(l.done)
	t := time.NewTicker(l.flushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.kick:
		case <-t.C:
		case <-l.stop:
			l.flush()
			return
		}
		l.flush()
	}
}

// flush writes the batch being filled, swapping in the empty one so that
// requests go on logging while the sink takes its time.
func (l *Logger) flush() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	b := l.cur
	if len(b) == 0 {
		l.mu.Unlock()
		return
	}
	l.cur, l.next = l.next, nil
	l.mu.Unlock()
	if _, err := l.sink.Write(b); err != nil {
		l.writeErrs.Add(1)
		l.lastErr.Store(&err)
	}
	l.mu.Lock()
	l.next = b[:0]
	l.mu.Unlock()
}

// Flush writes what the logger holds now (tests, and before a reopen).
func (l *Logger) Flush() {
	select {
	case <-l.done:
	default:
		l.flush()
	}
}

// Close writes what is held and stops the logger; lines logged after it
// are dropped and counted.
func (l *Logger) Close() error {
	l.closing.Do(func() {
		l.mu.Lock()
		l.max = 0 // from now on every line is dropped
		l.mu.Unlock()
		close(l.stop)
		<-l.done
	})
	if p := l.lastErr.Load(); p != nil {
		return fmt.Errorf("accesslog: writing: %w", *p)
	}
	return nil
}

// Stats are a logger's counters.
type Stats struct {
	Written, Dropped, WriteErrors uint64
}

// Stats returns the counters: lines accepted for writing, lines dropped
// because the buffer was full, and batches the sink failed to take.
func (l *Logger) Stats() Stats {
	return Stats{Written: l.written.Load(), Dropped: l.dropped.Load(), WriteErrors: l.writeErrs.Load()}
}
