package ops_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/opstest"
)

// fakeClock is a clock the test advances.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestCollectorRatesAndHealth(t *testing.T) {
	east1, east2 := opstest.NewFakeEdge(t, "tok"), opstest.NewFakeEdge(t, "tok")
	west := opstest.NewFakeEdge(t, "tok")
	d := opstest.NewFakeDNS(t, adminapi.State{Zone: "cdn.localhost", Policy: "geo", Regions: []adminapi.RegionState{
		{Name: "us-east-1", Serving: true, Healthy: true, Demand: adminapi.DemandRate{Region: "us-east-1", Total: 40, Rate10s: 2.5}},
		{Name: "us-west-2", Serving: true, Healthy: false, Demand: adminapi.DemandRate{Region: "us-west-2", Total: 4, Rate10s: 0.5}},
		{Name: "eu-west-1", Autoscale: true, Demand: adminapi.DemandRate{Region: "eu-west-1", Total: 7, Rate10s: 1}},
	}})
	east1.Add("hit", 100, 1000)
	east1.Add("miss", 100, 1000)
	east1.SetFill(300, 1000)
	east2.SetFill(200, 0)
	targets := []ops.Target{
		{Region: "us-east-1", State: ops.StateOpen, Admin: []string{east1.URL(), east2.URL() + "/"}, DNSAdmin: d.URL()},
		{Region: "us-west-2", State: ops.StateOpen, Admin: []string{west.URL()}, DNSAdmin: d.URL()},
		{Region: "eu-west-1", State: ops.StateClosed, DNSAdmin: d.URL()},
	}
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := ops.NewCollector(ops.CollectorOptions{Now: clk.now})

	first := c.Collect(context.Background(), targets)
	if len(first.Regions) != 3 {
		t.Fatalf("regions = %d, want 3", len(first.Regions))
	}
	e := first.Regions[0]
	if e.ReqPerSec != nil || e.HitRatio != nil {
		t.Errorf("first snapshot has rates: req/s %v hit %v", e.ReqPerSec, e.HitRatio)
	}
	if e.Requests != 200 || e.BytesServed != 2000 || e.FillBytes != 1500 || e.MemoryBytes != 500 {
		t.Errorf("first: requests %v bytes %v fill %v mem %v", e.Requests, e.BytesServed, e.FillBytes, e.MemoryBytes)
	}
	if e.HitRatioTotal == nil || *e.HitRatioTotal != 0.5 {
		t.Errorf("first: cumulative hit ratio %v, want 0.5", e.HitRatioTotal)
	}

	// Two seconds later: 30 hits, 10 misses and 8 bypasses on one edge, 20
	// hits on the other; an east edge then fails its health probe.
	east1.Add("hit", 30, 3000)
	east1.Add("miss", 10, 1000)
	east1.Add("bypass", 8, 0)
	east2.Add("hit", 20, 2000)
	east2.SetHealthy(false)
	clk.t = clk.t.Add(2 * time.Second)
	snap := c.Collect(context.Background(), targets)
	if snap.IntervalSeconds != 2 {
		t.Errorf("interval = %v, want 2", snap.IntervalSeconds)
	}
	e, w, eu := snap.Regions[0], snap.Regions[1], snap.Regions[2]
	if e.ReqPerSec == nil || *e.ReqPerSec != 34 { // (30+10+8+20)/2
		t.Errorf("us-east-1 req/s = %v, want 34", deref(e.ReqPerSec))
	}
	if e.HitRatio == nil || *e.HitRatio != 50.0/60 {
		t.Errorf("us-east-1 hit ratio = %v, want %v", deref(e.HitRatio), 50.0/60)
	}
	if e.BytesPerSec == nil || *e.BytesPerSec != 3000 {
		t.Errorf("us-east-1 bytes/s = %v, want 3000", deref(e.BytesPerSec))
	}
	if e.Health != ops.HealthDegraded || e.EdgesUp != 1 || e.Edges != 2 {
		t.Errorf("us-east-1 health %q edges %d/%d, want degraded 1/2", e.Health, e.EdgesUp, e.Edges)
	}
	if len(e.Errors) != 1 || !strings.Contains(e.Errors[0], east2.URL()+"/healthz") {
		t.Errorf("us-east-1 errors = %q, want one naming %s/healthz", e.Errors, east2.URL())
	}
	if !e.Serving || e.DNSHealthy == nil || !*e.DNSHealthy || e.Demand == nil || e.Demand.Rate10s != 2.5 {
		t.Errorf("us-east-1 dns view: serving %v healthy %v demand %+v", e.Serving, e.DNSHealthy, e.Demand)
	}
	if w.Health != ops.HealthDown {
		t.Errorf("us-west-2 health = %q, want down (the dns marks it unhealthy)", w.Health)
	}
	if w.ReqPerSec == nil || *w.ReqPerSec != 0 || w.HitRatio != nil {
		t.Errorf("idle us-west-2: req/s %v hit ratio %v, want 0 and unknown", deref(w.ReqPerSec), w.HitRatio)
	}
	if eu.Health != "" || eu.Edges != 0 || eu.Demand == nil || eu.Demand.Total != 7 {
		t.Errorf("closed eu-west-1: health %q edges %d demand %+v", eu.Health, eu.Edges, eu.Demand)
	}
	if snap.Totals.ReqPerSec == nil || *snap.Totals.ReqPerSec != 34 || snap.Totals.RegionsOpen != 2 || snap.Totals.RegionsUp != 1 {
		t.Errorf("totals = %+v", snap.Totals)
	}
	if len(snap.DNS) != 1 || snap.DNS[0].Zone != "cdn.localhost" {
		t.Errorf("dns = %+v, want one, asked once", snap.DNS)
	}
	if len(snap.Demand) != 3 || snap.Demand[2].Region != "eu-west-1" {
		t.Errorf("demand = %+v", snap.Demand)
	}
}

func TestCollectorEdgeRestartAndUnreachable(t *testing.T) {
	e := opstest.NewFakeEdge(t, "tok")
	e.Add("hit", 1000, 0)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	targets := []ops.Target{
		{Region: "a", State: ops.StateOpen, Admin: []string{e.URL()}},
		{Region: "b", State: ops.StateOpen, Admin: []string{deadURL}},
		{Region: "c", State: ops.StateDown, Admin: []string{deadURL}},
	}
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := ops.NewCollector(ops.CollectorOptions{Now: clk.now})
	c.Collect(context.Background(), targets)

	// The edge restarts: its counters start again from zero, then count 10.
	e.Add("hit", -1000+10, 0)
	clk.t = clk.t.Add(time.Second)
	snap := c.Collect(context.Background(), targets)
	a, b, cc := snap.Regions[0], snap.Regions[1], snap.Regions[2]
	if a.ReqPerSec == nil || *a.ReqPerSec != 10 {
		t.Errorf("after a restart req/s = %v, want 10 (not negative)", deref(a.ReqPerSec))
	}
	if b.Health != ops.HealthDown || len(b.Errors) == 0 || !strings.Contains(strings.Join(b.Errors, " "), strings.TrimPrefix(deadURL, "http://")) {
		t.Errorf("unreachable region: health %q errors %q", b.Health, b.Errors)
	}
	if cc.Health != ops.HealthDown || len(cc.Errors) != 0 {
		t.Errorf("stopped region: health %q errors %q (it must not be asked)", cc.Health, cc.Errors)
	}
}

func TestParseEdgeMetricsOfARealEdge(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello from the origin "+r.URL.Path)
	}))
	defer origin.Close()
	pub, admin := startEdge(t, origin.URL, "secret")
	for range 3 {
		get(t, pub+"/a.txt")
	}
	get(t, pub+"/b.txt")
	snap := ops.Collect(context.Background(), []ops.Target{{Region: "r", State: ops.StateOpen, Admin: []string{admin}}}, nil)
	r := snap.Regions[0]
	if r.Requests != 4 || r.HitRatioTotal == nil || *r.HitRatioTotal != 0.5 || r.Health != ops.HealthUp {
		t.Fatalf("real edge: requests %v hit ratio %v health %q errors %q", r.Requests, deref(r.HitRatioTotal), r.Health, snap.Errors)
	}
	if r.BytesServed != float64(3*len("hello from the origin /a.txt")+len("hello from the origin /b.txt")) || r.MemoryBytes <= 0 {
		t.Errorf("real edge: bytes %v memory %v", r.BytesServed, r.MemoryBytes)
	}
}

// startEdge runs a real edge in process, its public and admin handlers on
// loopback test servers.
func startEdge(t *testing.T, origin, token string) (public, admin string) {
	t.Helper()
	s, err := edge.New(edge.Config{Listen: "127.0.0.1:0", Origin: origin, AdminToken: token}, edge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := httptest.NewServer(s)
	a := httptest.NewServer(s.AdminHandler())
	t.Cleanup(func() { p.Close(); a.Close() })
	return p.URL, a.URL
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return resp.Header.Get("Cache-Status")
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
