package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a sink tests read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		out = append(out, m)
	}
	return out
}

func newLogger(t *testing.T, o Options) *Logger {
	t.Helper()
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLoggerWritesOnClose(t *testing.T) {
	var sink syncBuffer
	l := newLogger(t, Options{Sink: &sink, SampleRate: 1, Edge: "e1", Region: "r1", FlushInterval: time.Hour})
	for i := range 100 {
		l.Log(&Record{Time: time.Unix(int64(i), 0), Method: "GET", URL: "/x", Status: 200, Cache: Hit})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := sink.lines(t)
	if len(lines) != 100 {
		t.Fatalf("%d lines after Close, want 100", len(lines))
	}
	if lines[0]["edge"] != "e1" || lines[0]["region"] != "r1" {
		t.Errorf("first line %v: want edge e1, region r1", lines[0])
	}
	l.Log(&Record{Time: time.Unix(0, 0)})
	if st := l.Stats(); st.Written != 100 || st.Dropped != 1 {
		t.Errorf("stats %+v: want 100 written, 1 dropped (after Close)", st)
	}
}

func TestLoggerFlushesPeriodically(t *testing.T) {
	var sink syncBuffer
	l := newLogger(t, Options{Sink: &sink, SampleRate: 1, FlushInterval: 10 * time.Millisecond})
	l.Log(&Record{Time: time.Now(), Status: 200})
	for deadline := time.Now().Add(5 * time.Second); len(sink.lines(t)) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("line not written within 5s with a 10ms flush interval")
		}
	}
}

// TestSampling: over a seeded run, the share logged is within bounds of
// the rate (six standard deviations of the binomial), and errors are
// always logged.
func TestSampling(t *testing.T) {
	const n = 100000
	for _, rate := range []float64{0, 0.01, 0.1, 0.5, 0.9, 1} {
		l := newLogger(t, Options{Sink: &syncBuffer{}, SampleRate: rate, Seed: 42})
		got := 0
		for range n {
			if l.Sample(200) {
				got++
			}
		}
		sd := math.Sqrt(n * rate * (1 - rate))
		if d := math.Abs(float64(got) - n*rate); d > 6*sd+0.5 {
			t.Errorf("rate %v: %d of %d sampled, want %.0f ± %.0f", rate, got, n, n*rate, 6*sd)
		}
		for _, st := range []int{500, 503, 599} {
			if !l.Sample(st) {
				t.Errorf("rate %v: status %d not logged", rate, st)
			}
		}
	}
}

func TestSampleRateRange(t *testing.T) {
	for _, rate := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := New(Options{Sink: &syncBuffer{}, SampleRate: rate}); err == nil {
			t.Errorf("rate %v accepted", rate)
		}
	}
}

// blockingSink takes nothing until released.
type blockingSink struct {
	release chan struct{}
	syncBuffer
}

func (s *blockingSink) Write(p []byte) (int, error) {
	<-s.release
	return s.syncBuffer.Write(p)
}

// TestSlowSinkDrops: with a sink that takes nothing, logging goes on at
// full speed, lines beyond the buffer are dropped and counted, and once
// the sink moves again every line counted as written arrives.
func TestSlowSinkDrops(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	l := newLogger(t, Options{Sink: sink, SampleRate: 1, BufferBytes: 64 << 10, FlushInterval: time.Millisecond})
	r := &Record{Time: time.Now(), Method: "GET", Host: "www.example.com", URL: "/some/object", Status: 200, Cache: Hit}
	const n = 20000
	start := time.Now()
	for range n {
		l.Log(r)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d lines took %v with a stuck sink: logging blocked", n, d)
	}
	st := l.Stats()
	if st.Dropped == 0 || st.Written+st.Dropped != n {
		t.Fatalf("stats %+v: want some dropped, written+dropped = %d", st, n)
	}
	close(sink.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.lines(t)); uint64(got) != st.Written {
		t.Errorf("%d lines reached the sink, %d counted written", got, st.Written)
	}
}

func TestLogAllocs(t *testing.T) {
	l := newLogger(t, Options{Sink: &syncBuffer{}, SampleRate: 1, BufferBytes: 64 << 20})
	r := &Record{Time: time.Now(), Method: "GET", URL: "/x", Status: 200, Cache: Hit}
	if n := testing.AllocsPerRun(1000, func() { l.Log(r) }); n > 0 {
		t.Errorf("Log: %v allocations per line, want 0", n)
	}
}

// TestFileReopen: after the file is moved away (logrotate), Reopen makes
// new lines go to a new file at the path.
func TestFileReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	sink, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	l := newLogger(t, Options{Sink: sink, SampleRate: 1})
	l.Log(&Record{Time: time.Unix(1, 0), Status: 200})
	l.Flush()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := sink.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Log(&Record{Time: time.Unix(2, 0), Status: 200})
	l.Flush()
	for _, c := range []struct {
		path string
		sec  string
	}{{path + ".1", "1970-01-01T00:00:01.000Z"}, {path, "1970-01-01T00:00:02.000Z"}} {
		b, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte("\n")); n != 1 || !bytes.Contains(b, []byte(c.sec)) {
			t.Errorf("%s: %q, want one line at %s", c.path, b, c.sec)
		}
	}
}

// BenchmarkLog is the CPU one request's line costs the edge: encoding and
// copying into the batch (the writing is the flusher's, in the background).
func BenchmarkLog(b *testing.B) {
	l, err := New(Options{Sink: io.Discard, SampleRate: 1, Edge: "kubecdn-edge-0", Region: "us-east-1"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	r := &Record{Time: time.Now(), Client: netip.MustParseAddrPort("192.0.2.7:51234"), Method: "GET", Host: "www.cdn.example.com",
		URL: "/obj/1KiB/hot", Protocol: "HTTP/1.1", Status: 200, Bytes: 1024, Duration: 21 * time.Microsecond, TTFB: 20 * time.Microsecond,
		Cache: Hit, UserAgent: "wrk/4.1.0"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Log(r)
		}
	})
}
