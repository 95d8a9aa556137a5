package ops

import (
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

func TestRateSinceStart(t *testing.T) {
	at := time.Unix(1_700_000_100, 0)
	reqs := map[string]float64{"hit": 150, "miss": 50}
	tests := []struct {
		name   string
		start  float64
		want   float64
		wantOK bool
	}{
		{"100 s old", 1_700_000_000, 2, true},
		{"start with a fraction", 1_699_999_999.5, 200 / 100.5, true},
		{"unknown start", 0, 0, false},
		{"younger than a second", 1_700_000_099.5, 0, false},
		{"clock skew: started after now", 1_700_000_200, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := RateSinceStart(EdgeCounters{Requests: reqs, StartTime: tt.start}, at)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("RateSinceStart = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// A new start time between two scrapes is a restart even when every
// counter grew past its old value again.
func TestDeltaRestartByStartTime(t *testing.T) {
	prev := EdgeCounters{Requests: map[string]float64{"hit": 10}, BytesOut: 100, StartTime: 1000}
	cur := EdgeCounters{Requests: map[string]float64{"hit": 12}, BytesOut: 150, StartTime: 1050}
	if d := Delta(prev, cur); d.Requests["hit"] != 12 || d.BytesOut != 150 {
		t.Errorf("after a restart: delta hit %v bytes %v, want 12 and 150 (everything since the restart)", d.Requests["hit"], d.BytesOut)
	}
	cur.StartTime = 1000
	if d := Delta(prev, cur); d.Requests["hit"] != 2 || d.BytesOut != 50 {
		t.Errorf("same process: delta hit %v bytes %v, want 2 and 50", d.Requests["hit"], d.BytesOut)
	}
}

// The total's ratio since start is taken over every region's requests,
// whether or not the interval saw any.
func TestTotalsSinceStart(t *testing.T) {
	a := EdgeCounters{Requests: map[string]float64{"hit": 90, "miss": 10}}
	b := EdgeCounters{Requests: map[string]float64{"hit": 10, "miss": 90, "bypass": 50}}
	rs := []RegionStatus{
		{State: StateOpen, Health: HealthUp, ReqPerSecSinceStart: ptr(3), cumulative: &a},
		{State: StateOpen, Health: HealthUp, ReqPerSecSinceStart: ptr(4), cumulative: &b},
		{State: StateOpen, Health: HealthUnreachable},
	}
	got := totals(rs)
	if got.HitRatio != nil {
		t.Errorf("HitRatio = %v, want none (no interval)", *got.HitRatio)
	}
	if got.HitRatioTotal == nil || *got.HitRatioTotal != 0.5 {
		t.Errorf("HitRatioTotal = %v, want 0.5", got.HitRatioTotal)
	}
	if got.ReqPerSecSinceStart == nil || *got.ReqPerSecSinceStart != 7 {
		t.Errorf("ReqPerSecSinceStart = %v, want 7", got.ReqPerSecSinceStart)
	}
	if got.RegionsUp != 2 || got.RegionsOpen != 3 {
		t.Errorf("regions up/open = %d/%d, want 2/3", got.RegionsUp, got.RegionsOpen)
	}
}

// A region whose API server did not answer is unreachable, says why, and
// is not purged.
func TestUnreachableTarget(t *testing.T) {
	tg := Target{Region: "eu-west-1", State: StateOpen, Error: "listing pods: context deadline exceeded"}
	rs := buildRegion(tg, nil, nil, nil)
	if rs.Health != HealthUnreachable || len(rs.Errors) != 1 || rs.Errors[0] != "eu-west-1: listing pods: context deadline exceeded" {
		t.Errorf("health %q errors %q", rs.Health, rs.Errors)
	}
	res := PurgeWith(t.Context(), nil, []Target{tg}, "", adminapi.PurgeRequest{URLs: []string{"http://www.cdn.example.com/"}})
	if res[0].Err == nil || res[0].Err.Error() != tg.Error {
		t.Errorf("purge of an unreachable region: %v", res[0].Err)
	}
}
