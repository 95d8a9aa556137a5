package autoscale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/autoscale"
)

// standInEdge is a stand-in for an edge's admin listener: it serves
// adminapi.EdgeDemand JSON at adminapi.EdgeDemandPath as the contract
// says (the edge's real endpoint is built in internal/edge), or, with
// noDemand, only a /metrics request counter as edges without the endpoint
// do. Counters are set by the test.
type standInEdge struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	region   string
	started  float64
	byRegion map[string]uint64
	// gainMs is the RTT gain of each request of a nearest region served
	// here; every request is 1000 body bytes.
	gainMs   map[string]uint64
	noDemand bool
}

func newStandInEdge(t *testing.T, region string, noDemand bool) *standInEdge {
	t.Helper()
	e := &standInEdge{t: t, region: region, started: 1000, byRegion: map[string]uint64{}, gainMs: map[string]uint64{}, noDemand: noDemand}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *standInEdge) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+edgeToken {
		http.Error(w, "token", http.StatusUnauthorized)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case r.URL.Path == adminapi.EdgeDemandPath && !e.noDemand:
		d := adminapi.EdgeDemand{Edge: e.srv.URL, Region: e.region, StartedAt: e.started}
		for n, c := range e.byRegion {
			rd := adminapi.EdgeRegionDemand{Region: n, Requests: c, Bytes: 1000 * c}
			if g, ok := e.gainMs[n]; ok {
				rd.GainRequests, rd.GainMicros = c, c*g*1000
			}
			d.Regions = append(d.Regions, rd)
		}
		json.NewEncoder(w).Encode(d)
	case r.URL.Path == "/metrics":
		total := uint64(0)
		for _, c := range e.byRegion {
			total += c
		}
		fmt.Fprintf(w, "# TYPE kubecdn_edge_requests_total counter\nkubecdn_edge_requests_total{cache=\"hit\"} %d\n"+
			"# TYPE kubecdn_process_start_time_seconds gauge\nkubecdn_process_start_time_seconds %g\n", total, e.started)
	default:
		http.NotFound(w, r)
	}
}

func (e *standInEdge) add(near string, n uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byRegion[near] += n
}

const edgeToken = "edge-source-token"

// clock is a settable clock for the sources.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func near(t *testing.T, got, want float64, what string) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %g, want %g", what, got, want)
	}
}

func TestEdgeSourceRatesFromTwoLooks(t *testing.T) {
	east := newStandInEdge(t, "us-east-1", false)
	west := newStandInEdge(t, "us-west-2", false)
	eu := newStandInEdge(t, "eu-west-1", false)
	clk := &clock{t: time.Unix(1100, 0)}
	src := &autoscale.EdgeSource{Token: edgeToken, Now: clk.now}
	views := []autoscale.RegionView{
		{Name: "us-east-1", Running: true, Routed: true, Admin: []string{east.srv.URL}},
		{Name: "us-west-2", Running: true, Routed: true, Admin: []string{west.srv.URL}},
		// Warming: its edges run, the dns does not answer with it yet.
		{Name: "eu-west-1", Running: true, Routed: false, Admin: []string{eu.srv.URL}},
		{Name: "ap-south-1", Running: false},
	}
	east.add("us-east-1", 100)
	east.add("eu-west-1", 50)
	east.gainMs["eu-west-1"], east.gainMs["us-east-1"] = 70, 0
	// The first look has no previous one: the average since the edge
	// started (100 s ago).
	s := src.Look(context.Background(), views)
	if len(s.Missing) != 0 {
		t.Fatalf("missing %v", s.Missing)
	}
	near(t, s.Served["us-east-1"], 1.5, "first look: us-east-1 served")
	near(t, s.Displaced["eu-west-1"], 0.5, "first look: eu-west-1 displaced")

	clk.advance(2 * time.Second)
	east.add("us-east-1", 10)
	east.add("eu-west-1", 60) // Dublin's users served in us-east-1: displaced
	west.add("ap-south-1", 8) // a closed region's users: displaced
	eu.add("eu-west-1", 4)    // its own users, already there: not displaced
	west.add("unknown", 2)    // unplaced clients: served, never displaced
	s = src.Look(context.Background(), views)
	near(t, s.Served["us-east-1"], 35, "us-east-1 served")
	near(t, s.Served["us-west-2"], 5, "us-west-2 served")
	near(t, s.Served["eu-west-1"], 2, "eu-west-1 served")
	near(t, s.Displaced["eu-west-1"], 30, "eu-west-1 displaced")
	near(t, s.Displaced["ap-south-1"], 4, "ap-south-1 displaced")
	near(t, s.ServedBytes["us-east-1"], 35000, "us-east-1 served bytes/s")
	near(t, s.DisplacedBytes["eu-west-1"], 30000, "eu-west-1 displaced bytes/s")
	// Dublin's users would save 70 ms in eu-west-1; ap-south-1's gain is
	// unknown (the edge could not place them).
	near(t, s.RTTGain["eu-west-1"], 70, "eu-west-1 rtt gain ms")
	if g, ok := s.RTTGain["ap-south-1"]; ok {
		t.Errorf("rtt gain %g ms for a region whose users were not placed", g)
	}
	if _, ok := s.Displaced["us-east-1"]; ok {
		t.Errorf("displaced demand reported for a routed region: %v", s.Displaced)
	}
	if _, ok := s.Served["ap-south-1"]; ok {
		t.Errorf("served load reported for a region that does not run: %v", s.Served)
	}
	got := strings.Join(s.ServedUsersOf["eu-west-1"], ",")
	if want := east.srv.URL + "," + eu.srv.URL; got != want && got != eu.srv.URL+","+east.srv.URL {
		t.Errorf("edges that served eu-west-1's users = %s, want %s", got, want)
	}

	// A restarted edge (new start time) counts from its start again.
	clk.advance(time.Second)
	east.mu.Lock()
	east.started, east.byRegion = 1102, map[string]uint64{"us-east-1": 3}
	east.mu.Unlock()
	s = src.Look(context.Background(), views)
	near(t, s.Served["us-east-1"], 3, "restarted edge served (3 requests in its 1 s)")
}

func TestEdgeSourceFallsBackAndNamesMissing(t *testing.T) {
	east := newStandInEdge(t, "us-east-1", true) // an edge without the demand endpoint
	clk := &clock{t: time.Unix(1100, 0)}
	src := &autoscale.EdgeSource{Token: edgeToken, Now: clk.now, Timeout: time.Second}
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	views := []autoscale.RegionView{
		{Name: "us-east-1", Running: true, Routed: true, Admin: []string{east.srv.URL}},
		{Name: "eu-west-1"},
	}
	src.Look(context.Background(), views)
	clk.advance(time.Second)
	east.add("eu-west-1", 7)
	s := src.Look(context.Background(), views)
	near(t, s.Served["us-east-1"], 7, "served from /metrics")
	if s.Displaced != nil {
		t.Errorf("displaced = %v from an edge that cannot say whose users it served, want nil", s.Displaced)
	}
	views[0].Admin = append(views[0].Admin, deadURL)
	s = src.Look(context.Background(), views)
	if len(s.Missing) != 1 || !strings.Contains(s.Missing[0], deadURL) {
		t.Errorf("missing = %v, want the dead edge %s named", s.Missing, deadURL)
	}
}

// TestDemandChoosesTheEdgesSignal checks which displaced signal a Demand
// sample carries: the edges' when every edge reports by nearest region,
// the dns's otherwise, and that a dns replica that does not answer makes
// the sample incomplete either way.
func TestDemandChoosesTheEdgesSignal(t *testing.T) {
	dnsDemand := newStandInDNS(t, 0.9)
	for _, tc := range []struct {
		name       string
		noDemand   bool
		dnsDown    bool
		wantSignal string
		want       float64 // eu-west-1's displaced demand
		wantMiss   bool
	}{
		{name: "edges report demand", wantSignal: autoscale.SignalEdges, want: 20},
		{name: "an edge without the endpoint", noDemand: true, wantSignal: autoscale.SignalDNS, want: 0.9},
		{name: "dns replica down", dnsDown: true, wantSignal: autoscale.SignalEdges, want: 20, wantMiss: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			east := newStandInEdge(t, "us-east-1", tc.noDemand)
			clk := &clock{t: time.Unix(1100, 0)}
			dnsURL := dnsDemand.URL
			if tc.dnsDown {
				d := httptest.NewServer(http.NotFoundHandler())
				dnsURL = d.URL
				d.Close()
			}
			d := &autoscale.Demand{
				DNS:   &autoscale.DNSSource{Admins: []string{dnsURL}, Token: edgeToken, Timeout: time.Second, Now: clk.now},
				Edges: &autoscale.EdgeSource{Token: edgeToken, Now: clk.now},
				Regions: func(context.Context) ([]autoscale.RegionView, error) {
					return []autoscale.RegionView{
						{Name: "us-east-1", Running: true, Routed: true, Admin: []string{east.srv.URL}},
						{Name: "eu-west-1"},
					}, nil
				},
			}
			d.Sample(context.Background())
			clk.advance(time.Second)
			east.add("eu-west-1", 20)
			s, err := d.Sample(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Signal(); got != tc.wantSignal {
				t.Errorf("signal = %q, want %q", got, tc.wantSignal)
			}
			near(t, s.Displaced["eu-west-1"], tc.want, "eu-west-1 displaced")
			if (len(s.Missing) > 0) != tc.wantMiss {
				t.Errorf("missing = %v, want some: %v", s.Missing, tc.wantMiss)
			}
		})
	}
}

// newStandInDNS is a stand-in for a dns admin listener serving a fixed
// DemandView (the real one is tested in dnssource_test.go).
func newStandInDNS(t *testing.T, euRate float64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != adminapi.DemandPath {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(adminapi.DemandView{Regions: []adminapi.DemandRate{
			{Region: "us-east-1", Rate10s: 5}, {Region: "eu-west-1", Rate10s: euRate}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}
