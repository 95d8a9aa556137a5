package edge

// Demand by nearest region: what this edge serves, counted by the client's
// nearest region of the CDN file (internal/locate, the locator the dns
// uses), for the autoscaler (GET adminapi.EdgeDemandPath) and Prometheus
// (kubecdn_edge_demand_*_total{nearest}). Each serving tier counts where
// it finishes a request (see accesslog.go): net/http in the wrapper
// accessLogged puts around the handler, the fast tiers in
// serveFastHitLogged and serveLogged. The fast tiers place a client once
// per connection (fastConnState.placed), so a kept-alive hit costs two
// atomic adds (four when the client's gain is known). kubecdn's own
// traffic is not counted: the health path, requests carrying a valid hop
// signature (peer and child edges; the fast tiers never answer those), and
// warming, which calls the handler directly.
//
// Beside requests and bytes, each nearest region's counter sums the round
// trip its clients would have saved had their nearest region served them
// instead of this edge's (locate.Finder.Place: the estimate from the
// distances), over the requests where that is known: the RTT gain opening
// that region would bring.

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/locate"
)

// DemandRegion is a region of the CDN file as the edge's demand counters
// know it: its name and, when known, where it is.
type DemandRegion struct {
	Name     string           `json:"name"`
	Location *config.Location `json:"location,omitempty"`
}

// SetDemandFrom fills the settings that place clients for the demand
// counters (DemandRegions and Geo) from the CDN file, the one way `kubecdn
// render` and `kubecdn up` do it: every region in file order with its
// location (built-in or the file's), and the file's geo settings, the
// database's path resolved against the file's directory.
func (s *Settings) SetDemandFrom(cfg *config.CDN) {
	s.DemandRegions = nil
	for _, r := range cfg.AllRegions() {
		d := DemandRegion{Name: r.Name}
		if loc, ok := config.LocationOf(r.Region); ok {
			d.Location = &loc
		}
		s.DemandRegions = append(s.DemandRegions, d)
	}
	s.Geo = cfg.Spec.Routing.Geo
	s.Geo.Networks = slices.Clone(s.Geo.Networks)
	s.Geo.Database = cfg.ResolvePath(s.Geo.Database)
}

// demandCount is what the edge served to the clients of one nearest
// region. Padded to a cache line of its own: the two serving cores add to
// neighbouring counters at once.
type demandCount struct {
	requests, bytes atomic.Uint64
	// gainRequests counts the requests whose gain is known, gainMicros
	// sums their gains in µs.
	gainRequests, gainMicros atomic.Uint64
	_                        [32]byte
}

// placed is a client's nearest region's counter and its gain (µs) when
// known.
type placed struct {
	count     *demandCount
	gainUs    uint64
	gainKnown bool
}

func (p placed) add(bytes int64) {
	p.count.requests.Add(1)
	p.count.bytes.Add(uint64(max(bytes, 0)))
	if p.gainKnown {
		p.count.gainRequests.Add(1)
		p.count.gainMicros.Add(p.gainUs)
	}
}

// demand holds the counters, one per label of the finder (the file's
// regions and locate.Unknown: a fixed set).
type demand struct {
	finder  *locate.Finder
	labels  []string
	counts  []demandCount
	byLabel map[string]*demandCount
	started time.Time
	serving string // this edge's region: the gains are against it
}

// newDemand builds the finder from the config's regions and geo settings.
func newDemand(cfg Config, started time.Time) (*demand, error) {
	file := &config.CDN{}
	for _, r := range cfg.DemandRegions {
		file.Spec.Regions.AlwaysOn = append(file.Spec.Regions.AlwaysOn, config.Region{Name: r.Name, Location: r.Location})
	}
	file.Spec.Routing.Geo = cfg.Geo
	f, err := locate.New(file, locate.Options{})
	if err != nil {
		return nil, fmt.Errorf("geo: %w", err)
	}
	d := &demand{finder: f, labels: f.Labels(), byLabel: map[string]*demandCount{}, started: started, serving: cfg.Region}
	d.counts = make([]demandCount, len(d.labels))
	for i, l := range d.labels {
		d.byLabel[l] = &d.counts[i]
	}
	return d, nil
}

// place finds the counter of the client at a and its gain.
func (d *demand) place(a netip.Addr) placed {
	region, ok, gain, known := d.finder.Place(a, d.serving)
	if !ok {
		region = locate.Unknown
	}
	return placed{count: d.byLabel[region], gainUs: uint64(gain * 1000), gainKnown: known}
}

// register exposes the counters as Prometheus counters read at scrape time
// (no work per request beyond the atomics).
func (d *demand) register(reg *prometheus.Registry) {
	const ns, sub = "kubecdn", "edge"
	for i, l := range d.labels {
		c := &d.counts[i]
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "demand_requests_total",
				Help:        "Requests served to clients, by the client's nearest region of the CDN file (unknown: not placed); kubecdn's own traffic excluded.",
				ConstLabels: prometheus.Labels{"nearest": l},
			}, func() float64 { return float64(c.requests.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "demand_bytes_total",
				Help:        "Body bytes served to clients, by the client's nearest region of the CDN file.",
				ConstLabels: prometheus.Labels{"nearest": l},
			}, func() float64 { return float64(c.bytes.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "demand_rtt_gain_seconds_total",
				Help:        "Round-trip time the clients of each nearest region would have saved had that region served them instead of this edge's, summed over the requests where it is known (estimated from the distances).",
				ConstLabels: prometheus.Labels{"nearest": l},
			}, func() float64 { return float64(c.gainMicros.Load()) / 1e6 }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: ns, Subsystem: sub, Name: "demand_rtt_gain_requests_total",
				Help:        "Requests counted in kubecdn_edge_demand_rtt_gain_seconds_total (client and both regions located).",
				ConstLabels: prometheus.Labels{"nearest": l},
			}, func() float64 { return float64(c.gainRequests.Load()) }),
		)
	}
}

// snapshot is the counters as the admin API shows them.
func (d *demand) snapshot() []adminapi.EdgeRegionDemand {
	out := make([]adminapi.EdgeRegionDemand, len(d.labels))
	for i, l := range d.labels {
		c := &d.counts[i]
		out[i] = adminapi.EdgeRegionDemand{Region: l, Requests: c.requests.Load(), Bytes: c.bytes.Load(),
			GainRequests: c.gainRequests.Load(), GainMicros: c.gainMicros.Load()}
	}
	return out
}

// countFast counts a request a fast tier answered: st.out holds what its
// lookup found, st.peer the client. The client is placed once per
// connection state.
func (s *Server) countFast(st *fastConnState, head bool) {
	if st.placed.count == nil {
		st.placed = s.demand.place(st.peer.Addr())
	}
	n := st.out.bytes
	if head {
		n = 0
	}
	st.placed.add(n)
	s.hot.add(urlOfKey(st.k), st.out.bytes)
}

// countServed counts a request net/http answered, once it has ended: lw
// saw the response. fromEdge: the request carried a valid hop signature.
func (s *Server) countServed(r *http.Request, lw *logWriter, fromEdge bool, rt *liveConfig) {
	if fromEdge || (len(rt.hosts) > 0 && !rt.hosts[hostOnly(r.Host)]) {
		return
	}
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		a = ap.Addr()
	}
	s.demand.place(a).add(lw.bytes)
	// Hot keys are what the cache holds: worth warming elsewhere.
	if (lw.status == http.StatusOK || lw.status == http.StatusPartialContent) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if hit, stored := cacheHeld(lw.Header()); hit || stored {
			if size := objectSize(lw.status, lw.Header()); size >= 0 {
				s.hot.addRequest(r, size)
			}
		}
	}
}

// handleDemand serves GET adminapi.EdgeDemandPath.
func (s *Server) handleDemand(w http.ResponseWriter, r *http.Request) {
	if !s.authorizedOr401(w, r) {
		return
	}
	rt := s.rt.Load()
	writeJSON(w, adminapi.EdgeDemand{
		Edge: rt.self, Region: rt.cfg.Region,
		StartedAt: float64(s.demand.started.UnixNano()) / 1e9,
		Regions:   s.demand.snapshot(),
	})
}
