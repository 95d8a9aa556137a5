// Package opstest has fakes of the admin APIs the operator tools read, for
// tests that need exact, controllable numbers: FakeEdge serves an edge's
// /metrics (Prometheus text), /healthz and /v1/purge; FakeDNS serves a
// dns's /v1/state and /v1/demand. They are fakes: the real servers are
// tested against the same code in internal/ops.
package opstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/bearer"
)

// FakeEdge is an edge admin listener with counters the test sets.
type FakeEdge struct {
	Server *httptest.Server
	Token  string

	mu       sync.Mutex
	requests map[string]float64
	bytes    float64
	mem      float64
	disk     float64
	unhealth bool
	onScrape func(*FakeEdge)
	purges   []adminapi.PurgeRequest
	delay    time.Duration
	start    time.Time
}

// NewFakeEdge starts a fake edge admin listener on loopback; it stops with
// the test.
func NewFakeEdge(t testing.TB, token string) *FakeEdge {
	t.Helper()
	f := &FakeEdge{Token: token, requests: map[string]float64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", f.metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		bad := f.unhealth
		f.mu.Unlock()
		if bad {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST "+adminapi.PurgePath, f.purge)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Server.Close)
	return f
}

// URL is the admin base URL.
func (f *FakeEdge) URL() string { return f.Server.URL }

// Add counts n requests of a cache status and their body bytes.
func (f *FakeEdge) Add(status string, n, bytes float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests[status] += n
	f.bytes += bytes
}

// SetFill sets the memory and disk tier gauges.
func (f *FakeEdge) SetFill(mem, disk float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mem, f.disk = mem, disk
}

// SetStartTime sets when the edge says its process started
// (kubecdn_process_start_time_seconds); unset, it says nothing.
func (f *FakeEdge) SetStartTime(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.start = t
}

// SetHealthy makes /healthz answer 200 or 503.
func (f *FakeEdge) SetHealthy(ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unhealth = !ok
}

// OnScrape runs fn before every /metrics answer (to make traffic appear
// between scrapes).
func (f *FakeEdge) OnScrape(fn func(*FakeEdge)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onScrape = fn
}

// SetPurgeDelay makes purges take d.
func (f *FakeEdge) SetPurgeDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Purges are the purge requests received with the right token.
func (f *FakeEdge) Purges() []adminapi.PurgeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]adminapi.PurgeRequest(nil), f.purges...)
}

func (f *FakeEdge) metrics(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	fn := f.onScrape
	f.mu.Unlock()
	if fn != nil {
		fn(f)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	b.WriteString("# HELP kubecdn_edge_requests_total Requests served, by cache status.\n# TYPE kubecdn_edge_requests_total counter\n")
	keys := make([]string, 0, len(f.requests))
	for k := range f.requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "kubecdn_edge_requests_total{cache=%q} %g\n", k, f.requests[k])
	}
	fmt.Fprintf(&b, "# HELP kubecdn_edge_response_bytes_total Body bytes sent to clients.\n# TYPE kubecdn_edge_response_bytes_total counter\nkubecdn_edge_response_bytes_total %g\n", f.bytes)
	fmt.Fprintf(&b, "# TYPE kubecdn_edge_memory_tier_bytes gauge\nkubecdn_edge_memory_tier_bytes %g\n", f.mem)
	fmt.Fprintf(&b, "# TYPE kubecdn_edge_disk_tier_bytes gauge\nkubecdn_edge_disk_tier_bytes %g\n", f.disk)
	if !f.start.IsZero() {
		fmt.Fprintf(&b, "# TYPE kubecdn_process_start_time_seconds gauge\nkubecdn_process_start_time_seconds %.3f\n", float64(f.start.UnixMilli())/1000)
	}
	b.WriteString("# TYPE go_goroutines gauge\ngo_goroutines 12\n")
	io.WriteString(w, b.String())
}

func (f *FakeEdge) purge(w http.ResponseWriter, r *http.Request) {
	if !bearer.Authorized(r, f.Token) {
		http.Error(w, "unauthorized: a valid bearer token is required", http.StatusUnauthorized)
		return
	}
	var req adminapi.PurgeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad purge request: "+err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.purges = append(f.purges, req)
	d := f.delay
	f.mu.Unlock()
	time.Sleep(d)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(adminapi.PurgeResponse{Purged: len(req.URLs) + len(req.Prefixes) + len(req.Tags)})
}

// FakeDNS is a dns admin listener serving a state the test sets.
type FakeDNS struct {
	Server *httptest.Server

	mu    sync.Mutex
	state adminapi.State
}

// NewFakeDNS starts a fake dns admin listener; it stops with the test.
func NewFakeDNS(t testing.TB, st adminapi.State) *FakeDNS {
	t.Helper()
	f := &FakeDNS{state: st}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+adminapi.StatePath, func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, f.state)
	})
	mux.HandleFunc("GET "+adminapi.DemandPath, func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		v := adminapi.DemandView{Unlocated: f.state.Unlocated, Regions: []adminapi.DemandRate{}}
		for _, r := range f.state.Regions {
			v.Regions = append(v.Regions, r.Demand)
		}
		writeJSON(w, v)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Server.Close)
	return f
}

// URL is the admin base URL.
func (f *FakeDNS) URL() string { return f.Server.URL }

// Update changes the state under the lock.
func (f *FakeDNS) Update(fn func(*adminapi.State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.state)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
