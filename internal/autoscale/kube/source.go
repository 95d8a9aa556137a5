package kube

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
)

// Source measures the demand of a deployed CDN: every dns replica's demand
// per nearest region and every edge's requests per nearest region, both
// reached through the regions' API servers.
//
//   - Served is, per region, the request rate its edges serve.
//   - Displaced is, per region not open, the larger of two signals: the
//     request rate the edges of other regions serve to clients nearest to
//     it, and the dns queries per second from networks nearest to it. The
//     edges count users' requests, in the unit of the thresholds; the dns
//     counts resolver networks, fewer, but sees users the edges cannot
//     place. The larger is the evidence that holds.
//
// A region that must answer (always-on, or running) whose API server, dns
// or edge does not answer makes the sample incomplete, and so does an edge
// seen for the first time or restarted: its counters are cumulative, and
// a rate takes two looks.
type Source struct {
	CDN   *config.CDN
	Reach Reach
	// Phase is where the controller has each region; if nil, always-on
	// regions are open and autoscale ones closed.
	Phase func(region string) autoscale.Phase
	// CallTimeout bounds each call to one admin listener; if zero, 2s.
	CallTimeout time.Duration
	Now         func() time.Time

	mu   sync.Mutex
	last map[string]look // by edge admin URL
}

// look is one edge's counters at one moment.
type look struct {
	at      time.Time
	started float64
	req     map[string]adminapi.EdgeRegionDemand // by nearest region
}

// rates are one nearest region's counters per second between two looks.
type rates struct{ req, bytes, gainReq, gainUs float64 }

var _ autoscale.Source = (*Source)(nil)

func (s *Source) phase(region string) autoscale.Phase { return phaseOf(s.CDN, s.Phase, region) }

// Sample reads every dns replica and edge once and sums.
func (s *Source) Sample(ctx context.Context) (autoscale.Sample, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	timeout := s.CallTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	found := reachAll(ctx, s.CDN, s.Reach)
	open := func(r string) bool { return s.phase(r) == autoscale.Open }
	var missing []string
	var dnsURLs []string
	type edge struct{ region, url string }
	var edges []edge
	for _, ref := range s.CDN.AllRegions() {
		if err := found.errs[ref.Name]; err != nil {
			if s.phase(ref.Name) != autoscale.Closed {
				missing = append(missing, fmt.Sprintf("region %s: %v", ref.Name, err))
			}
			continue
		}
		dnsURLs = append(dnsURLs, found.dns[ref.Name]...)
		for _, u := range found.edges[ref.Name] {
			edges = append(edges, edge{ref.Name, u})
		}
	}
	dsrc := &autoscale.DNSSource{Admins: dnsURLs, Client: s.Reach.Client(), Timeout: timeout, Now: now}
	var dnsSample autoscale.Sample
	views := make([]adminapi.EdgeDemand, len(edges))
	errs := make([]error, len(edges))
	var wg sync.WaitGroup
	wg.Go(func() { dnsSample = dsrc.Displaced(ctx, open) })
	for i, e := range edges {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			errs[i] = call(cctx, s.Reach.Client(), http.MethodGet, e.url+adminapi.EdgeDemandPath, nil, &views[i])
		})
	}
	wg.Wait()
	at := now()
	out := autoscale.Sample{At: at, Missing: append(missing, dnsSample.Missing...),
		Displaced: map[string]float64{}, Served: map[string]float64{}, DNSRoutes: dnsSample.DNSRoutes,
		DisplacedBytes: map[string]float64{}, ServedBytes: map[string]float64{}, RTTGain: map[string]float64{}}
	gainReq, gainUs := map[string]float64{}, map[string]float64{}
	if len(dnsURLs) == 0 {
		out.Missing = append(out.Missing, "no dns replica found in any region")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]look{}
	for i, e := range edges {
		if errs[i] != nil {
			out.Missing = append(out.Missing, fmt.Sprintf("edge %s: %v", e.url, errs[i]))
			continue
		}
		cur := look{at: at, started: views[i].StartedAt, req: map[string]adminapi.EdgeRegionDemand{}}
		for _, r := range views[i].Regions {
			c := cur.req[r.Region]
			c.Requests += r.Requests
			c.Bytes += r.Bytes
			c.GainRequests += r.GainRequests
			c.GainMicros += r.GainMicros
			cur.req[r.Region] = c
		}
		next[e.url] = cur
		rates, ok := rate(s.last[e.url], cur)
		if !ok {
			out.Missing = append(out.Missing, fmt.Sprintf("edge %s: first look since it started, its rate needs a second", e.url))
			continue
		}
		for nearest, v := range rates {
			out.Served[e.region] += v.req
			out.ServedBytes[e.region] += v.bytes
			if nearest != e.region && !open(nearest) {
				out.Displaced[nearest] += v.req
				out.DisplacedBytes[nearest] += v.bytes
				gainReq[nearest] += v.gainReq
				gainUs[nearest] += v.gainUs
			}
		}
	}
	for r, n := range gainReq {
		if n > 0 {
			out.RTTGain[r] = gainUs[r] / n / 1000
		}
	}
	s.last = next
	for r, v := range dnsSample.Displaced {
		out.Displaced[r] = max(out.Displaced[r], v)
	}
	return out, nil
}

// rate is the rates by nearest region between two looks at one edge;
// false when there is no earlier look of the same run of the edge.
func rate(prev, cur look) (map[string]rates, bool) {
	dt := cur.at.Sub(prev.at).Seconds()
	if prev.req == nil || prev.started != cur.started || dt <= 0 {
		return nil, false
	}
	out := map[string]rates{}
	for r, n := range cur.req {
		p := prev.req[r]
		if n.Requests < p.Requests || n.Bytes < p.Bytes || n.GainRequests < p.GainRequests || n.GainMicros < p.GainMicros {
			return nil, false // counters went back: a restart the edge did not report
		}
		out[r] = rates{float64(n.Requests-p.Requests) / dt, float64(n.Bytes-p.Bytes) / dt,
			float64(n.GainRequests-p.GainRequests) / dt, float64(n.GainMicros-p.GainMicros) / dt}
	}
	return out, true
}
