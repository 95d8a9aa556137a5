package accesslog

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"time"
)

// Time returns the "time" field of an access log line; ok is false for a
// line that is not one (an edge's pod log also holds its stderr).
func Time(line []byte) (t time.Time, ok bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return t, false
	}
	// The writer puts the time first: read it without decoding the line.
	const prefix = `{"time":"`
	if rest, found := bytes.CutPrefix(line, []byte(prefix)); found {
		if end := bytes.IndexByte(rest, '"'); end > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:end])); err == nil {
				return t, true
			}
		}
	}
	var v struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(line, &v) != nil || v.Time.IsZero() {
		return t, false
	}
	return v.Time, true
}

// Merger puts the lines of several sources (one per edge) in time order,
// as a k-way merge: a line is released once every open source has sent a
// line at least as late, so nothing earlier can still come. A source that
// has nothing to say (an idle edge, when following) would hold the others
// back forever; with a window, a line is released anyway once it has
// waited that long, so lines within the window of each other come out in
// order and a straggler later than that comes out late rather than never.
// It is not safe for concurrent use.
type Merger struct {
	window time.Duration // 0: wait for every open source
	held   lineHeap
	last   map[int]time.Time // open sources: the latest time each has sent
	seq    uint64
}

// Line is a line with its source and time.
type Line struct {
	Source int
	Time   time.Time
	Text   []byte

	arrived time.Time
	seq     uint64
}

// NewMerger returns a Merger with the given reorder window (0: none, for
// sources that all end).
func NewMerger(window time.Duration) *Merger {
	return &Merger{window: window, last: map[int]time.Time{}}
}

// Open announces a source: until it sends a line or ends, lines of the
// others wait for it (or for the window).
func (m *Merger) Open(src int) {
	if _, ok := m.last[src]; !ok {
		m.last[src] = time.Time{}
	}
}

// End says src sends nothing more.
func (m *Merger) End(src int) { delete(m.last, src) }

// Push adds a line of src, received at now.
func (m *Merger) Push(src int, t time.Time, text []byte, now time.Time) {
	if last, ok := m.last[src]; ok && t.After(last) {
		m.last[src] = t
	}
	m.seq++
	heap.Push(&m.held, Line{Source: src, Time: t, Text: text, arrived: now, seq: m.seq})
}

// Pop returns the next line that may go out at now; false when none may
// yet.
func (m *Merger) Pop(now time.Time) (Line, bool) {
	if len(m.held) == 0 {
		return Line{}, false
	}
	top := m.held[0]
	if !top.Time.After(m.watermark()) || (m.window > 0 && now.Sub(top.arrived) >= m.window) {
		heap.Pop(&m.held)
		return top, true
	}
	return Line{}, false
}

// Held is how many lines wait.
func (m *Merger) Held() int { return len(m.held) }

// watermark is the time up to which every open source has sent its lines.
func (m *Merger) watermark() time.Time {
	first := true
	var w time.Time
	for _, t := range m.last {
		if first || t.Before(w) {
			w, first = t, false
		}
	}
	if first {
		return time.Unix(1<<62, 0) // no source open: everything may go
	}
	return w
}

// lineHeap orders lines by time, then by arrival.
type lineHeap []Line

func (h lineHeap) Len() int { return len(h) }
func (h lineHeap) Less(i, j int) bool {
	if !h[i].Time.Equal(h[j].Time) {
		return h[i].Time.Before(h[j].Time)
	}
	return h[i].seq < h[j].seq
}
func (h lineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *lineHeap) Push(x any)   { *h = append(*h, x.(Line)) }
func (h *lineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = Line{}
	*h = old[:len(old)-1]
	return x
}
