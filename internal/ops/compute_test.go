package ops

import (
	"math"
	"testing"
)

func TestCounterDelta(t *testing.T) {
	tests := []struct {
		name            string
		prev, cur, want float64
	}{
		{"grew", 10, 25, 15},
		{"same", 7, 7, 0},
		{"reset to less", 100, 4, 4},
		{"reset to zero", 100, 0, 0},
		{"from zero", 0, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CounterDelta(tt.prev, tt.cur); got != tt.want {
				t.Errorf("CounterDelta(%v, %v) = %v, want %v", tt.prev, tt.cur, got, tt.want)
			}
		})
	}
}

func TestDelta(t *testing.T) {
	prev := EdgeCounters{Requests: map[string]float64{"hit": 10, "miss": 5}, BytesOut: 1000, MemoryBytes: 1, Purged: 2}
	tests := []struct {
		name      string
		cur       EdgeCounters
		wantTotal float64
		wantBytes float64
		wantHit   float64
	}{
		{"grew", EdgeCounters{Requests: map[string]float64{"hit": 30, "miss": 6, "bypass": 1}, BytesOut: 1500, MemoryBytes: 9, Purged: 2}, 22, 500, 20},
		// one counter going back means the edge restarted: all count from zero.
		{"restart", EdgeCounters{Requests: map[string]float64{"hit": 12, "miss": 1}, BytesOut: 2000, MemoryBytes: 9}, 13, 2000, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Delta(prev, tt.cur)
			if d.Total() != tt.wantTotal || d.BytesOut != tt.wantBytes || d.Requests["hit"] != tt.wantHit {
				t.Errorf("Delta = total %v bytes %v hit %v, want %v %v %v", d.Total(), d.BytesOut, d.Requests["hit"], tt.wantTotal, tt.wantBytes, tt.wantHit)
			}
			if d.MemoryBytes != tt.cur.MemoryBytes {
				t.Errorf("gauge MemoryBytes = %v, want the current %v", d.MemoryBytes, tt.cur.MemoryBytes)
			}
		})
	}
}

func TestRate(t *testing.T) {
	tests := []struct{ n, s, want float64 }{
		{10, 2, 5}, {0, 1, 0}, {10, 0, 0}, {10, -1, 0}, {3, 0.5, 6},
	}
	for _, tt := range tests {
		if got := Rate(tt.n, tt.s); got != tt.want {
			t.Errorf("Rate(%v, %v) = %v, want %v", tt.n, tt.s, got, tt.want)
		}
	}
}

func TestHitRatio(t *testing.T) {
	tests := []struct {
		name   string
		req    map[string]float64
		want   float64
		wantOK bool
	}{
		{"none", nil, 0, false},
		{"only bypass and error", map[string]float64{"bypass": 5, "error": 2}, 0, false},
		{"all hits", map[string]float64{"hit": 4}, 1, true},
		{"hits and misses", map[string]float64{"hit": 3, "miss": 1}, 0.75, true},
		{"stale and revalidated are hits", map[string]float64{"stale": 1, "revalidated": 1, "miss": 2}, 0.5, true},
		{"bypass not counted", map[string]float64{"hit": 1, "miss": 1, "bypass": 100}, 0.5, true},
		{"all misses", map[string]float64{"miss": 9}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := HitRatio(tt.req)
			if ok != tt.wantOK || math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("HitRatio = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name                 string
		state                string
		up, edges            int
		dnsKnown, dnsHealthy bool
		want                 string
	}{
		{"closed", StateClosed, 0, 0, true, false, ""},
		{"stopped by operator", StateDown, 0, 2, true, true, HealthDown},
		{"all up, dns agrees", StateOpen, 2, 2, true, true, HealthUp},
		{"all up, no dns", StateOpen, 2, 2, false, false, HealthUp},
		{"one edge failing", StateOpen, 1, 2, true, true, HealthDegraded},
		{"no edge answers", StateOpen, 0, 2, true, true, HealthDown},
		{"dns marks it unhealthy", StateOpen, 2, 2, true, false, HealthDown},
		{"dns only, healthy", StateOpen, 0, 0, true, true, HealthUp},
		{"dns only, unhealthy", StateOpen, 0, 0, true, false, HealthDown},
		{"nothing to ask", StateOpen, 0, 0, false, false, HealthUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Health(tt.state, tt.up, tt.edges, tt.dnsKnown, tt.dnsHealthy); got != tt.want {
				t.Errorf("Health = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTotals(t *testing.T) {
	a := EdgeCounters{Requests: map[string]float64{"hit": 9, "miss": 1}}
	b := EdgeCounters{Requests: map[string]float64{"hit": 1, "miss": 9}}
	rs := []RegionStatus{
		{State: StateOpen, Health: HealthUp, ReqPerSec: ptr(10), BytesServed: 100, FillBytes: 5, interval: &a},
		{State: StateOpen, Health: HealthDegraded, ReqPerSec: ptr(5), BytesServed: 50, FillBytes: 1, interval: &b},
		{State: StateOpen, Health: HealthDown},
		{State: StateClosed},
	}
	got := totals(rs)
	if got.RegionsOpen != 3 || got.RegionsUp != 2 {
		t.Errorf("regions open/up = %d/%d, want 3/2", got.RegionsOpen, got.RegionsUp)
	}
	if got.ReqPerSec == nil || *got.ReqPerSec != 15 {
		t.Errorf("ReqPerSec = %v, want 15", got.ReqPerSec)
	}
	if got.HitRatio == nil || *got.HitRatio != 0.5 {
		t.Errorf("HitRatio = %v, want 0.5 (over all requests, not a mean of ratios)", got.HitRatio)
	}
	if got.BytesServed != 150 || got.FillBytes != 6 || got.BytesPerSec != nil {
		t.Errorf("bytes %v fill %v bytes/s %v", got.BytesServed, got.FillBytes, got.BytesPerSec)
	}
}
