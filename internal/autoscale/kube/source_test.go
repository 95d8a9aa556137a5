package kube

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

// fakeEdge serves the edge's autoscaler endpoints from set values (the
// edge's own implementation is being written against the same adminapi
// contract); it records what it was asked to warm.
type fakeEdge struct {
	srv *httptest.Server

	mu      sync.Mutex
	demand  adminapi.EdgeDemand
	hot     []adminapi.HotKey
	warmed  []string
	hotAsks int
	drains  []bool
}

func newFakeEdge(t *testing.T, region string) *fakeEdge {
	t.Helper()
	f := &fakeEdge{demand: adminapi.EdgeDemand{Edge: region + "-0", Region: region, StartedAt: 1000}}
	mux := http.NewServeMux()
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "token", http.StatusUnauthorized)
			return false
		}
		return true
	}
	answer := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET "+adminapi.EdgeDemandPath, func(w http.ResponseWriter, r *http.Request) {
		if auth(w, r) {
			f.mu.Lock()
			defer f.mu.Unlock()
			answer(w, f.demand)
		}
	})
	mux.HandleFunc("GET "+adminapi.HotPath, func(w http.ResponseWriter, r *http.Request) {
		if auth(w, r) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.hotAsks++
			answer(w, adminapi.HotKeys{Keys: f.hot})
		}
	})
	mux.HandleFunc("POST "+adminapi.WarmPath, func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var req adminapi.WarmRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.warmed = append(f.warmed, req.URLs...)
		answer(w, adminapi.WarmResult{Fetched: len(req.URLs)})
	})
	mux.HandleFunc("POST "+adminapi.DrainPath, func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var req adminapi.DrainRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.drains = append(f.drains, req.Drain)
		answer(w, req)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEdge) set(startedAt float64, byRegion map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.demand.StartedAt = startedAt
	f.demand.Regions = nil
	for r, n := range byRegion {
		// Every request is 2000 bytes; eu-west-1's users would save 80 ms
		// a request there.
		d := adminapi.EdgeRegionDemand{Region: r, Requests: n, Bytes: 2000 * n}
		if r == "eu-west-1" {
			d.GainRequests, d.GainMicros = n, 80_000*n
		}
		f.demand.Regions = append(f.demand.Regions, d)
	}
}

func twoRegionFile(t *testing.T) *config.CDN {
	cfg := configtest.Minimal()
	cfg.Spec.Regions.Autoscale = []config.Region{configtest.Region("eu-west-1", "gcp")}
	return configtest.Parse(t, cfg)
}

// TestSourceRates: rates come from two looks at an edge's counters; the
// first look, and a restarted edge, make the sample incomplete; served load
// counts every request, displaced demand only other regions' requests for
// a region not open; an always-on region out of reach is missing, a closed
// one is not.
func TestSourceRates(t *testing.T) {
	cfg := twoRegionFile(t)
	edge := newFakeEdge(t, "us-east-1")
	_, dnsAdmin := startDNS(t, cfg)
	reach := &staticReach{edges: map[string][]string{"us-east-1": {edge.srv.URL}},
		dns: map[string][]string{"us-east-1": {dnsAdmin}}, down: map[string]bool{"eu-west-1": true}}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	now := t0
	src := &Source{CDN: cfg, Reach: reach, Now: func() time.Time { return now }}

	edge.set(1000, map[string]uint64{"us-east-1": 100, "eu-west-1": 50})
	s, err := src.Sample(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.Complete() || !strings.Contains(strings.Join(s.Missing, ";"), "first look") {
		t.Errorf("first look: missing %v, want the edge's first look", s.Missing)
	}

	now = t0.Add(10 * time.Second)
	edge.set(1000, map[string]uint64{"us-east-1": 300, "eu-west-1": 850})
	s, _ = src.Sample(t.Context())
	if !s.Complete() {
		t.Fatalf("second look incomplete: %v", s.Missing)
	}
	if got := s.Served["us-east-1"]; got != 100 {
		t.Errorf("served us-east-1 = %g req/s, want (200+800)/10 = 100", got)
	}
	if got := s.Displaced["eu-west-1"]; got != 80 {
		t.Errorf("displaced eu-west-1 = %g req/s, want 800/10 = 80", got)
	}
	if _, ok := s.Displaced["us-east-1"]; ok {
		t.Errorf("open us-east-1 has displaced demand: %v", s.Displaced)
	}
	if s.ServedBytes["us-east-1"] != 200_000 || s.DisplacedBytes["eu-west-1"] != 160_000 || s.RTTGain["eu-west-1"] != 80 {
		t.Errorf("served %g B/s, displaced %g B/s, gain %g ms; want 200000, 160000 and 80",
			s.ServedBytes["us-east-1"], s.DisplacedBytes["eu-west-1"], s.RTTGain["eu-west-1"])
	}

	now = t0.Add(20 * time.Second)
	edge.set(2000, map[string]uint64{"us-east-1": 1})
	if s, _ = src.Sample(t.Context()); s.Complete() {
		t.Error("a restarted edge (new startedAt) gave a rate")
	}

	reach.down["us-east-1"] = true
	now = t0.Add(30 * time.Second)
	if s, _ = src.Sample(t.Context()); !strings.Contains(strings.Join(s.Missing, ";"), "region us-east-1") {
		t.Errorf("always-on region out of reach: missing %v", s.Missing)
	}
}

// TestWarm: the hot keys of the edges that served the region's users, and
// only theirs, merged hottest first within the count bound, go to one of
// the region's edges.
func TestWarm(t *testing.T) {
	cfg := configtest.Minimal()
	cfg.Spec.Regions.AlwaysOn = append(cfg.Spec.Regions.AlwaysOn, configtest.Region("ap-south-1", "aws"))
	cfg.Spec.Regions.Autoscale = []config.Region{configtest.Region("eu-west-1", "gcp")}
	cfg = configtest.Parse(t, cfg)
	us, ap, eu := newFakeEdge(t, "us-east-1"), newFakeEdge(t, "ap-south-1"), newFakeEdge(t, "eu-west-1")
	us.set(1, map[string]uint64{"eu-west-1": 10})
	us.hot = []adminapi.HotKey{{URL: "http://www.cdn.example.com/a", Bytes: 10, Hits: 5}, {URL: "http://www.cdn.example.com/b", Bytes: 10, Hits: 9}}
	ap.set(1, map[string]uint64{"ap-south-1": 10}) // served none of eu's users
	ap.hot = []adminapi.HotKey{{URL: "http://www.cdn.example.com/ap", Bytes: 10, Hits: 100}}
	reach := &staticReach{edges: map[string][]string{"us-east-1": {us.srv.URL}, "ap-south-1": {ap.srv.URL}, "eu-west-1": {eu.srv.URL}}}
	a := &Actuator{CDN: cfg, Reach: reach, HotKeys: 1}
	if err := a.Warm(t.Context(), "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://www.cdn.example.com/b"}; !slices.Equal(eu.warmed, want) {
		t.Errorf("warmed %v, want %v (the hottest of the edge that served eu's users)", eu.warmed, want)
	}
	if ap.hotAsks != 0 {
		t.Error("asked ap-south-1's edge for hot keys: it served none of eu-west-1's users")
	}
	a.HotKeys = 0
	eu.warmed = nil
	if err := a.Warm(t.Context(), "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://www.cdn.example.com/b", "http://www.cdn.example.com/a"}; !slices.Equal(eu.warmed, want) {
		t.Errorf("warmed %v, want %v", eu.warmed, want)
	}
}

// TestRouteDrainsEdges: taking a region out of the dns answers sets its
// edges' drain switch (kept-alive clients told to reconnect), putting it
// back clears it; an edge without the endpoint fails no step.
func TestRouteDrainsEdges(t *testing.T) {
	cfg := twoRegionFile(t)
	eu := newFakeEdge(t, "eu-west-1")
	_, dnsAdmin := startDNS(t, cfg)
	gone := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(gone.Close)
	reach := &staticReach{edges: map[string][]string{"eu-west-1": {eu.srv.URL, gone.URL}}, dns: map[string][]string{"us-east-1": {dnsAdmin}}}
	a := &Actuator{CDN: cfg, Reach: reach}
	for _, in := range []bool{false, true} {
		if err := a.Route(t.Context(), "eu-west-1", in); err != nil {
			t.Fatalf("route in=%v: %v", in, err)
		}
	}
	if want := []bool{true, false}; !slices.Equal(eu.drains, want) {
		t.Errorf("drain switch set to %v, want %v", eu.drains, want)
	}
}
