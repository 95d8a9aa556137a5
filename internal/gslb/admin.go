package gslb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/bearer"
	"github.com/kubecdn/kubecdn/internal/rtt"
)

// AdminHandler serves the admin endpoints:
//
//	GET  /metrics     Prometheus metrics (this server's registry)
//	GET  /healthz     200 while the process serves
//	GET  /readyz      200 once every edge and app endpoint has been probed once:
//	                  from then on every answer follows the probes
//	GET  /v1/state    regions, edges, app services, health and demand
//	                  (adminapi.State JSON)
//	GET  /v1/demand   demand per region: totals and recent rates
//	                  (adminapi.DemandView JSON)
//	POST /v1/rtt      RTT samples from an edge (rtt.Report JSON); needs
//	                  "Authorization: Bearer" with Options.AdminToken
//	POST /v1/regions/{name}/route
//	                  {"in": false} takes the region out of the answers,
//	                  {"in": true} puts it back (adminapi.RouteRequest,
//	                  SetRouted); needs the token
//	GET  /v1/resolve  what the dns would answer a client network for a
//	                  name, counting no demand (adminapi.Resolution,
//	                  Resolve); needs the token
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{Registry: s.m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready() {
			http.Error(w, "waiting for the first health probes", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET "+adminapi.StatePath, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.State()) })
	mux.HandleFunc("GET "+adminapi.DemandPath, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.Demand()) })
	mux.HandleFunc("POST "+adminapi.RTTPath, s.handleRTT)
	mux.HandleFunc("POST "+adminapi.RoutePattern, s.handleRoute)
	mux.HandleFunc("GET "+adminapi.ResolvePath, s.handleResolve)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.health {
		if !h.known {
			return false
		}
	}
	return true
}

// handleRTT takes an edge's report. The token is checked before the body
// is read; the body is bounded (rtt.MaxReportBytes, rtt.MaxReportSamples),
// decoded one sample at a time, and at most cap(s.reportSem) reports are
// decoded at once, so reports cannot grow the dns beyond the table's own
// bound.
func (s *Server) handleRTT(w http.ResponseWriter, r *http.Request) {
	if !bearer.Authorized(r, s.o.AdminToken) {
		s.m.rttReports.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="kubecdn-dns"`)
		http.Error(w, "rtt reports need the admin bearer token", http.StatusUnauthorized)
		return
	}
	from, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		http.Error(w, "unknown reporter address", http.StatusBadRequest)
		return
	}
	select {
	case s.reportSem <- struct{}{}:
		defer func() { <-s.reportSem }()
	case <-r.Context().Done():
		return
	}
	if r.ContentLength > rtt.MaxReportBytes {
		s.m.rttReports.WithLabelValues("refused").Inc()
		http.Error(w, fmt.Sprintf("rtt report over %d bytes", rtt.MaxReportBytes), http.StatusRequestEntityTooLarge)
		return
	}
	region, samples, err := rtt.DecodeReport(http.MaxBytesReader(w, r.Body, rtt.MaxReportBytes))
	if err != nil {
		s.m.rttReports.WithLabelValues("refused").Inc()
		if mb := (*http.MaxBytesError)(nil); errors.As(err, &mb) {
			http.Error(w, fmt.Sprintf("rtt report over %d bytes", mb.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad rtt report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.AddRTT(from.Addr(), region, samples); err != nil {
		s.m.rttReports.WithLabelValues("refused").Inc()
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	s.m.rttReports.WithLabelValues("ok").Inc()
	w.WriteHeader(http.StatusNoContent)
}

// AddRTT merges RTT samples that reporter (an edge of region, by its
// source address) measured, and drops the cached answers of the networks
// they cover and of those the table dropped meanwhile.
func (s *Server) AddRTT(reporter netip.Addr, region string, samples []rtt.ParsedSample) error {
	v := s.view.Load()
	name := ""
	for _, r := range v.st.regions {
		if r.Name == region {
			name = r.Name // the file's string: entries share it
		}
	}
	if name == "" {
		return &unknownRegionError{region}
	}
	gone := s.rtt.update(reporter, name, samples)
	s.m.rttSamples.WithLabelValues(name).Add(float64(len(samples)))
	s.m.rttNetworks.Set(float64(s.rtt.size()))
	s.dropPlans(v, samples, gone)
	return nil
}

// sweepRTT drops expired networks (and their cached answers) every period until
// ctx ends; between sweeps, expired estimates are already ignored.
func (s *Server) sweepRTT(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.expireRTT()
		}
	}
}

// expireRTT drops the expired networks and the answers cached from them.
func (s *Server) expireRTT() {
	if gone := s.rtt.sweep(); len(gone) > 0 {
		s.dropPlans(s.view.Load(), nil, gone)
	}
	s.m.rttNetworks.Set(float64(s.rtt.size()))
}

// dropPlans forgets, in v and in a view swapped in meanwhile, the cached
// answers of the networks of samples and of gone.
func (s *Server) dropPlans(v *view, samples []rtt.ParsedSample, gone []netip.Prefix) {
	v.dropPlans(samples, gone)
	if nv := s.view.Load(); nv != v { // swapped meanwhile: its cache may hold older plans
		nv.dropPlans(samples, gone)
	}
}

// dropPlans forgets the cached answers of the networks the samples cover,
// for every routed name.
func (v *view) dropPlans(samples []rtt.ParsedSample, gone []netip.Prefix) {
	for _, t := range append([]*targetView{v.targetView}, v.services...) {
		for _, c := range t.plans {
			for _, smp := range samples {
				c.drop(smp.Net)
			}
			for _, p := range gone {
				c.drop(p)
			}
		}
	}
}

type unknownRegionError struct{ name string }

func (e *unknownRegionError) Error() string { return "unknown region " + `"` + e.name + `"` }

// State reports regions, health and demand.
func (s *Server) State() adminapi.State {
	v := s.view.Load()
	d := s.demandRates()
	st := adminapi.State{Zone: v.st.cfg.Spec.Zone, Policy: string(v.st.policy), Region: s.o.Region, Serial: v.st.zone.soa.Serial,
		Loaded: v.st.loaded, FailOpen: v.failOpen, Unlocated: d["unknown"]}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range v.st.regions {
		serving, healthy := v.regionUp(i)
		rs := adminapi.RegionState{Name: r.Name, Provider: r.Provider, Autoscale: r.Autoscale, Serving: serving,
			Healthy: healthy, Demand: d[r.Name], Edges: []adminapi.EdgeState{}, Routed: !s.out[r.Name]}
		if r.hasLoc {
			rs.Location = &adminapi.Location{Lat: r.loc.Lat, Lon: r.loc.Lon}
		}
		if len(r.edges) > 0 {
			rs.EdgesName = RegionEdgesName(r.Name, v.st.zone.origin)
		}
		for _, e := range r.edges {
			rs.Edges = append(rs.Edges, s.memberStateLocked(e))
		}
		st.Regions = append(st.Regions, rs)
	}
	for j, svc := range v.st.services {
		t := v.services[j]
		ss := adminapi.ServiceState{Hostname: svc.host, App: svc.App, Service: svc.Service, Namespace: svc.Namespace,
			Health: svc.Health.Protocol, FailOpen: t.failOpen, Regions: []adminapi.ServiceRegionState{}}
		if svc.Health.Protocol == "http" {
			ss.Path = svc.Health.Path
		}
		for i, r := range v.st.regions {
			if len(svc.regions[i]) == 0 {
				continue
			}
			_, healthy := t.regionUp(i)
			sr := adminapi.ServiceRegionState{Name: r.Name, Healthy: healthy, Endpoints: []adminapi.EdgeState{}}
			for _, e := range svc.regions[i] {
				sr.Endpoints = append(sr.Endpoints, s.memberStateLocked(e))
			}
			ss.Regions = append(ss.Regions, sr)
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

// memberStateLocked is the probe state of an edge or endpoint. s.mu must
// be held.
func (s *Server) memberStateLocked(e member) adminapi.EdgeState {
	es := adminapi.EdgeState{Addr: e.addr.String(), Healthy: true}
	if h := s.health[e.key]; h != nil && h.known {
		es.Healthy, es.Probed, es.LastError, es.Since = h.up, true, h.err, h.since
	}
	return es
}

// Demand reports demand per region (every region in the file, open or not).
func (s *Server) Demand() adminapi.DemandView {
	v := s.view.Load()
	d := s.demandRates()
	out := adminapi.DemandView{Unlocated: d["unknown"], Regions: []adminapi.DemandRate{}, Routed: map[string]bool{}}
	s.mu.Lock()
	for _, r := range v.st.regions {
		out.Regions = append(out.Regions, d[r.Name])
		out.Routed[r.Name] = !s.out[r.Name]
	}
	s.mu.Unlock()
	return out
}

func (s *Server) demandCounter(name string) *demandCounter {
	s.demandMu.Lock()
	defer s.demandMu.Unlock()
	c := s.demandCtrs[name]
	if c == nil {
		c = &demandCounter{name: name, prom: s.m.demand.WithLabelValues(name)}
		s.demandCtrs[name] = c
	}
	return c
}

func (s *Server) demandSnapshot() map[string]uint64 {
	s.demandMu.Lock()
	defer s.demandMu.Unlock()
	out := make(map[string]uint64, len(s.demandCtrs))
	for n, c := range s.demandCtrs {
		out[n] = c.n.Load()
	}
	return out
}

func (s *Server) demandRates() map[string]adminapi.DemandRate {
	now := s.demandSnapshot()
	out := map[string]adminapi.DemandRate{}
	for n, total := range now {
		out[n] = adminapi.DemandRate{Region: n, Total: total,
			Rate10s: s.rates.rate(n, total, 10*time.Second), Rate1m: s.rates.rate(n, total, time.Minute)}
	}
	return out
}

// rateRing keeps one snapshot of the demand totals per second for a minute.
type rateRing struct {
	now  func() time.Time
	mu   sync.Mutex
	snap []rateSnap // oldest first
}

type rateSnap struct {
	at     time.Time
	totals map[string]uint64
}

func newRateRing(now func() time.Time) *rateRing { return &rateRing{now: now} }

func (r *rateRing) run(ctx context.Context, read func() map[string]uint64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	r.add(read())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.add(read())
		}
	}
}

func (r *rateRing) add(totals map[string]uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snap = append(r.snap, rateSnap{at: r.now(), totals: totals})
	if len(r.snap) > 62 {
		r.snap = r.snap[len(r.snap)-62:]
	}
}

// rate is the per-second rate of name over about window, from the oldest
// snapshot within the window to the current total.
func (r *rateRing) rate(name string, total uint64, window time.Duration) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	i := sort.Search(len(r.snap), func(i int) bool { return now.Sub(r.snap[i].at) <= window })
	if i >= len(r.snap) {
		return 0
	}
	old := r.snap[i]
	dt := now.Sub(old.at).Seconds()
	if dt < 0.5 {
		return 0
	}
	return float64(total-old.totals[name]) / dt
}
