package gslb

import (
	"math"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/locate"
)

var (
	newYork   = config.Location{Lat: 40.7, Lon: -74.0}
	paris     = config.Location{Lat: 48.9, Lon: 2.4}
	singapore = config.Location{Lat: 1.35, Lon: 103.8}
)

// regions: 0 us-east-1, 1 eu-west-1, 2 ap-southeast-1 (closed autoscale)
func testRegions(healthy ...bool) []RegionView {
	us, _ := config.BuiltinLocation("us-east-1")
	eu, _ := config.BuiltinLocation("eu-west-1")
	ap, _ := config.BuiltinLocation("ap-southeast-1")
	rs := []RegionView{
		{Name: "us-east-1", Loc: us, HasLoc: true, Weight: 3, Serving: true},
		{Name: "eu-west-1", Loc: eu, HasLoc: true, Weight: 1, Serving: true},
		{Name: "ap-southeast-1", Loc: ap, HasLoc: true, Weight: 1, Serving: false},
	}
	for i := range rs {
		rs[i].Healthy = i < len(healthy) && healthy[i]
	}
	return rs
}

// out marks regions idx as taken out of the answers.
func out(rs []RegionView, idx ...int) []RegionView {
	for _, i := range idx {
		rs[i].Out = true
	}
	return rs
}

func at(l config.Location) Client {
	return Client{Net: netip.MustParsePrefix("198.51.100.0/24"), Loc: l, HasLoc: true}
}

func TestRoute(t *testing.T) {
	nowhere := Client{Net: netip.MustParsePrefix("192.0.2.0/24")}
	rttTable := func(m map[int]float64) RTTFunc {
		return func(i int) (float64, bool) { v, ok := m[i]; return v, ok }
	}
	tests := []struct {
		name    string
		policy  config.Policy
		regions []RegionView
		order   []int
		client  Client
		rtt     RTTFunc
		explore float64
		want    Plan
	}{
		{"geo nearest", config.PolicyGeo, testRegions(true, true), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{1}}, Best: 1, ClientDependent: true}},
		{"geo nearest is down", config.PolicyGeo, testRegions(true, false), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{0}}, Best: 1, ClientDependent: true}},
		{"geo demand names a closed region", config.PolicyGeo, testRegions(true, true), nil, at(singapore), nil, 0,
			Plan{Choices: [][]int{{1}}, Best: 2, ClientDependent: true}},
		{"geo unknown client gets all healthy", config.PolicyGeo, testRegions(true, true), nil, nowhere, nil, 0,
			Plan{Choices: [][]int{{0, 1}}, Best: -1}},
		{"all down fails open", config.PolicyGeo, testRegions(false, false), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{1}}, Best: 1, FailOpen: true, ClientDependent: true}},
		{"no serving region", config.PolicyGeo, []RegionView{{Name: "x", Serving: false}}, nil, nowhere, nil, 0,
			Plan{Best: -1}},
		{"latency measured beats distance", config.PolicyLatency, testRegions(true, true), nil, at(paris), rttTable(map[int]float64{0: 20, 1: 90}), 0,
			Plan{Choices: [][]int{{0}}, Best: 1, ClientDependent: true}},
		{"latency missing pair estimated from distance", config.PolicyLatency, testRegions(true, true), nil, at(paris), rttTable(map[int]float64{0: 95}), 0,
			Plan{Choices: [][]int{{1}}, Best: 1, ClientDependent: true}},
		{"latency explores the runner-up", config.PolicyLatency, testRegions(true, true), nil, at(newYork), rttTable(nil), 0.1,
			Plan{Choices: [][]int{{0}, {1}}, Shares: []float64{0.9, 0.1}, Best: 0, ClientDependent: true}},
		{"latency skips unhealthy", config.PolicyLatency, testRegions(false, true), nil, at(newYork), rttTable(map[int]float64{0: 1}), 0.1,
			Plan{Choices: [][]int{{1}}, Best: 0, ClientDependent: true}},
		{"latency unknown everything", config.PolicyLatency, testRegions(true, true), nil, nowhere, rttTable(nil), 0,
			Plan{Choices: [][]int{{0, 1}}, Best: -1}},
		{"weighted", config.PolicyWeighted, testRegions(true, true), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{0}, {1}}, Shares: []float64{0.75, 0.25}, Best: 1}},
		{"weighted one healthy", config.PolicyWeighted, testRegions(false, true), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{1}}, Best: 1}},
		{"weighted only zero weight healthy", config.PolicyWeighted, func() []RegionView {
			r := testRegions(false, true)
			r[1].Weight = 0
			return r
		}(), nil, nowhere, nil, 0, Plan{Choices: [][]int{{1}}, Best: -1}},
		{"failover first in order", config.PolicyFailover, testRegions(true, true), []int{1, 0, 2}, nowhere, nil, 0,
			Plan{Choices: [][]int{{1}}, Best: -1}},
		{"failover next in order", config.PolicyFailover, testRegions(true, false), []int{1, 0, 2}, nowhere, nil, 0,
			Plan{Choices: [][]int{{0}}, Best: -1}},
		{"all healthy", config.PolicyAll, testRegions(true, true), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{0, 1}}, Best: 1}},
		{"all minus the dead", config.PolicyAll, testRegions(false, true), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{1}}, Best: 1}},
		{"all fail open", config.PolicyAll, testRegions(false, false), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{0, 1}}, Best: 1, FailOpen: true}},
		{"geo nearest is out", config.PolicyGeo, out(testRegions(true, true), 1), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{0}}, Best: 1, ClientDependent: true}},
		{"all minus the out", config.PolicyAll, out(testRegions(true, true), 0), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{1}}, Best: 1}},
		{"one out, the other down: fail open", config.PolicyGeo, out(testRegions(true, false), 0), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{1}}, Best: 1, FailOpen: true, ClientDependent: true}},
		{"every region out: fail open", config.PolicyAll, out(testRegions(true, true), 0, 1), nil, at(paris), nil, 0,
			Plan{Choices: [][]int{{0, 1}}, Best: 1, FailOpen: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Route(tt.policy, tt.regions, tt.order, tt.client, tt.rtt, tt.explore)
			for i := range got.Shares {
				got.Shares[i] = math.Round(got.Shares[i]*1000) / 1000
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Route = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	d := config.DistanceKm(newYork, paris)
	if d < 5800 || d > 5900 {
		t.Errorf("New York-Paris = %.0f km, want about 5840", d)
	}
	if config.DistanceKm(paris, paris) != 0 {
		t.Error("distance to self is not 0")
	}
	if e := locate.EstimateRTT(d); e < 100 || e > 150 {
		t.Errorf("EstimateRTT(%.0f) = %.0f ms", d, e)
	}
}

func TestEdgeHealthObserve(t *testing.T) {
	var h edgeHealth
	steps := []struct {
		ok      bool
		up      bool
		changed bool
	}{
		{true, true, true},    // first result decides
		{false, true, false},  // 1 failure
		{false, true, false},  // 2
		{true, true, false},   // reset
		{false, true, false},  // 1
		{false, true, false},  // 2
		{false, false, true},  // 3: down
		{true, false, false},  // 1 success
		{false, false, false}, // reset
		{true, false, false},  // 1
		{true, true, true},    // 2: up
	}
	for i, s := range steps {
		changed := h.observe(s.ok, "", 3, 2, testNow)
		if changed != s.changed || h.up != s.up {
			t.Fatalf("step %d: changed=%v up=%v, want %v %v", i, changed, h.up, s.changed, s.up)
		}
	}
}

func TestRateRing(t *testing.T) {
	now := testNow
	r := newRateRing(func() time.Time { return now })
	total := uint64(0)
	for i := 0; i <= 70; i++ { // 70 s at 5 queries/s
		r.add(map[string]uint64{"us-east-1": total})
		now = now.Add(time.Second)
		total += 5
	}
	now = now.Add(-time.Second)
	total -= 5
	if got := r.rate("us-east-1", total, 10*time.Second); got != 5 {
		t.Errorf("rate over 10s = %v, want 5", got)
	}
	if got := r.rate("us-east-1", total, time.Minute); got != 5 {
		t.Errorf("rate over 1m = %v, want 5", got)
	}
	if got := r.rate("eu-west-1", 0, time.Minute); got != 0 {
		t.Errorf("rate of an idle region = %v", got)
	}
}
