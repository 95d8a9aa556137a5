package accesslog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func line(sec int, src int) []byte {
	return []byte(fmt.Sprintf(`{"time":"%s","edge":"e%d"}`, AppendTime(nil, time.Unix(int64(sec), 0)), src))
}

func TestTime(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"time":"2026-01-02T03:04:05.006Z","x":1}`, true},
		{`  {"status":200,"time":"2026-01-02T03:04:05.006Z"}` + "\n", true},
		{`time=2026-01-02T03:04:05.006Z level=INFO msg="edge serving"`, false},
		{`{"time":"yesterday"}`, false},
		{`{"status":200}`, false},
		{``, false},
	} {
		got, ok := Time([]byte(c.in))
		if ok != c.ok || (ok && !got.Equal(at)) {
			t.Errorf("Time(%q) = %v, %v; want ok=%v", c.in, got, ok, c.ok)
		}
	}
}

type push struct {
	src, sec int
	at       int // arrival, in seconds of the reader's clock
}

func TestMergerTable(t *testing.T) {
	for _, c := range []struct {
		name    string
		window  time.Duration
		sources []int
		pushes  []push
		ends    []int
		popAt   int
		want    []int // seconds released at popAt, in order
	}{
		{name: "waits for a silent source", sources: []int{0, 1}, pushes: []push{{0, 5, 0}, {0, 6, 0}}, want: nil},
		{name: "k-way by time", sources: []int{0, 1}, pushes: []push{{0, 5, 0}, {0, 7, 0}, {1, 6, 0}, {1, 8, 0}}, want: []int{5, 6, 7}},
		{name: "ended sources release all", sources: []int{0, 1}, pushes: []push{{1, 9, 0}, {0, 5, 0}, {0, 7, 0}}, ends: []int{0, 1}, want: []int{5, 7, 9}},
		{name: "window releases past a silent source", window: time.Second, sources: []int{0, 1}, pushes: []push{{0, 5, 0}, {0, 6, 1}}, popAt: 1, want: []int{5}},
		{name: "window not yet passed", window: 2 * time.Second, sources: []int{0, 1}, pushes: []push{{0, 5, 0}, {0, 6, 1}}, popAt: 1, want: nil},
		{name: "ties keep arrival order", sources: []int{0, 1}, pushes: []push{{1, 5, 0}, {0, 5, 0}}, ends: []int{0, 1}, want: []int{5, 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMerger(c.window)
			for _, s := range c.sources {
				m.Open(s)
			}
			base := time.Unix(1000, 0)
			for _, p := range c.pushes {
				m.Push(p.src, time.Unix(int64(p.sec), 0), line(p.sec, p.src), base.Add(time.Duration(p.at)*time.Second))
			}
			for _, s := range c.ends {
				m.End(s)
			}
			var got []int
			for {
				l, ok := m.Pop(base.Add(time.Duration(c.popAt) * time.Second))
				if !ok {
					break
				}
				got = append(got, int(l.Time.Unix()))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("released %v, want %v", got, c.want)
			}
		})
	}
}

// TestMergerRandom: k sources, each in time order, their lines arriving
// interleaved at random; with every source ended, the output is every line
// exactly once, in time order, and no line was released before a line
// earlier than it had arrived.
func TestMergerRandom(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		k := 1 + rng.IntN(8)
		srcs := make([][]int, k)
		total := 0
		for i := range srcs {
			sec := rng.IntN(100)
			for range rng.IntN(40) {
				sec += rng.IntN(5)
				srcs[i] = append(srcs[i], sec)
				total++
			}
		}
		m := NewMerger(0)
		for i := range srcs {
			m.Open(i)
		}
		next := make([]int, k)
		var out []int
		now := time.Unix(0, 0)
		drain := func() {
			for {
				l, ok := m.Pop(now)
				if !ok {
					return
				}
				out = append(out, int(l.Time.Unix()))
			}
		}
		for open := k; open > 0; {
			i := rng.IntN(k)
			switch {
			case next[i] < len(srcs[i]):
				sec := srcs[i][next[i]]
				m.Push(i, time.Unix(int64(sec), 0), line(sec, i), now)
				next[i]++
			case next[i] == len(srcs[i]):
				m.End(i)
				next[i]++
				open--
			}
			drain()
		}
		drain()
		var want []int
		for _, s := range srcs {
			want = append(want, s...)
		}
		slices.Sort(want)
		if !slices.Equal(out, want) || len(out) != total {
			t.Fatalf("seed %d: merged %v, want %v", seed, out, want)
		}
		if m.Held() != 0 {
			t.Fatalf("seed %d: %d lines still held", seed, m.Held())
		}
	}
}
