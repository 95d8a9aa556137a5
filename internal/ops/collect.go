package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

// Snapshot is one look at every region.
type Snapshot struct {
	At time.Time `json:"at"`
	// IntervalSeconds is the time since the previous snapshot of the same
	// Collector; rates are taken over it. 0 for a first snapshot.
	IntervalSeconds float64        `json:"intervalSeconds"`
	TookMillis      float64        `json:"tookMillis"`
	Regions         []RegionStatus `json:"regions"`
	Totals          Totals         `json:"totals"`
	DNS             []DNSStatus    `json:"dns"`
	Demand          []Demand       `json:"demand"`   // per region nearest to the clients, as the dns sees them
	Networks        []NetworkRoute `json:"networks"` // client network -> region answering, when known
	Errors          []string       `json:"errors"`   // what could not be reached
}

// RegionStatus is one region in a Snapshot. Pointers are null when the
// figure is unknown (a rate before a second scrape, a ratio without
// cacheable requests).
type RegionStatus struct {
	Region string `json:"region"`
	State  string `json:"state"`
	Health string `json:"health"` // up, degraded, down, unknown; "" for a closed region
	// Serving and DNSHealthy are the dns's view; DNSHealthy is null when no
	// dns knows the region.
	Serving    bool     `json:"serving"`
	DNSHealthy *bool    `json:"dnsHealthy"`
	EdgesUp    int      `json:"edgesUp"`
	Edges      int      `json:"edges"`
	Requests   float64  `json:"requests"`  // since the edges started
	ReqPerSec  *float64 `json:"reqPerSec"` // over the interval
	// ReqPerSecSinceStart is the sum of the edges' requests per second over
	// each edge's life (see RateSinceStart); null when no edge says when it
	// started.
	ReqPerSecSinceStart *float64     `json:"reqPerSecSinceStart"`
	HitRatio            *float64     `json:"hitRatio"`      // over the interval
	HitRatioTotal       *float64     `json:"hitRatioTotal"` // since the edges started
	BytesServed         float64      `json:"bytesServed"`
	BytesPerSec         *float64     `json:"bytesPerSec"`
	MemoryBytes         float64      `json:"memoryBytes"`
	DiskBytes           float64      `json:"diskBytes"`
	FillBytes           float64      `json:"fillBytes"` // memory + disk
	Demand              *Demand      `json:"demand"`    // clients nearest to this region
	EdgeStatus          []EdgeStatus `json:"edgeStatus"`
	Errors              []string     `json:"errors"`
	Autoscale           *Autoscale   `json:"autoscale,omitempty"` // from the Target

	interval   *EdgeCounters // growth over the interval, for the totals
	cumulative *EdgeCounters // since the edges started, for the totals
}

// EdgeStatus is one edge of a region.
type EdgeStatus struct {
	Admin     string  `json:"admin"`
	Public    string  `json:"public,omitempty"`
	Healthy   bool    `json:"healthy"`
	LatencyMs float64 `json:"latencyMs"` // of the /healthz probe
	Error     string  `json:"error,omitempty"`
}

// DNSStatus is one dns admin listener.
type DNSStatus struct {
	URL      string `json:"url"`
	Zone     string `json:"zone,omitempty"`
	Policy   string `json:"policy,omitempty"`
	FailOpen bool   `json:"failOpen"`
	Error    string `json:"error,omitempty"`
}

// Demand is how many A/AAAA queries came from clients whose nearest region
// is Region (open or not), summed over the dns servers asked.
type Demand struct {
	Region  string  `json:"region"` // "unknown": clients the dns could not place
	Total   uint64  `json:"total"`
	Rate10s float64 `json:"rate10s"`
	Rate1m  float64 `json:"rate1m"`
}

// NetworkRoute is the region the dns answers a client network with.
type NetworkRoute struct {
	Network string   `json:"network"`         // e.g. 198.51.100.0/24
	Label   string   `json:"label,omitempty"` // e.g. a place
	Region  string   `json:"region"`          // "" when the answer matched no region
	Addrs   []string `json:"addrs"`
	Error   string   `json:"error,omitempty"`
}

// NetworksFunc finds which region answers which client network (for
// example by asking the dns with EDNS Client Subnet).
type NetworksFunc func(ctx context.Context, targets []Target) ([]NetworkRoute, error)

// Collector takes snapshots and remembers the previous one's counters, so
// a snapshot has rates over the time since the last. Safe for concurrent
// use; concurrent calls are serialized.
type Collector struct {
	client   *http.Client
	now      func() time.Time
	timeout  time.Duration
	networks NetworksFunc

	mu   sync.Mutex
	prev map[string]sample // edge admin URL -> last good scrape
	last time.Time
}

type sample struct {
	at time.Time
	c  EdgeCounters
}

// CollectorOptions configure a Collector.
type CollectorOptions struct {
	// Client does the requests; if nil, a client without a proxy.
	Client *http.Client
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
	// Timeout bounds one snapshot; if zero, 2s.
	Timeout time.Duration
	// Networks, if set, fills Snapshot.Networks.
	Networks NetworksFunc
}

// NewCollector returns a Collector.
func NewCollector(o CollectorOptions) *Collector {
	if o.Client == nil {
		o.Client = defaultClient()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	return &Collector{client: o.Client, now: o.Now, timeout: o.Timeout, networks: o.Networks, prev: map[string]sample{}}
}

func defaultClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback and in-cluster addresses: never through a proxy
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// Collect takes one snapshot without a previous one: counters, health and
// fill, but no rates (see Collector for those).
func Collect(ctx context.Context, targets []Target, client *http.Client) Snapshot {
	return NewCollector(CollectorOptions{Client: client}).Collect(ctx, targets)
}

// Collect reads every edge of every open region and every dns admin in
// parallel and returns the snapshot, with rates since the previous call.
func (c *Collector) Collect(ctx context.Context, targets []Target) Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := c.now()

	var wg sync.WaitGroup
	scrapes := make([][]edgeScrape, len(targets))
	for i, t := range targets {
		if t.State != StateOpen {
			continue
		}
		scrapes[i] = make([]edgeScrape, len(t.Admin))
		for j, admin := range t.Admin {
			s := &scrapes[i][j]
			s.admin = strings.TrimRight(admin, "/")
			if j < len(t.Public) {
				s.public = t.Public[j]
			}
			wg.Go(func() { c.scrapeEdge(ctx, s) })
		}
	}
	var dnsURLs []string
	seen := map[string]bool{}
	for _, t := range targets {
		if u := strings.TrimRight(t.DNSAdmin, "/"); u != "" && !seen[u] {
			seen[u] = true
			dnsURLs = append(dnsURLs, u)
		}
	}
	dnsRes := make([]dnsScrape, len(dnsURLs))
	for i, u := range dnsURLs {
		d := &dnsRes[i]
		d.url = u
		wg.Go(func() { c.scrapeDNS(ctx, d) })
	}
	var nets []NetworkRoute
	var netErr error
	if c.networks != nil {
		wg.Go(func() { nets, netErr = c.networks(ctx, targets) })
	}
	wg.Wait()
	now := c.now()

	snap := Snapshot{At: now, TookMillis: ms(now.Sub(start)), Networks: nets, Errors: []string{}, DNS: []DNSStatus{}}
	if !c.last.IsZero() {
		snap.IntervalSeconds = now.Sub(c.last).Seconds()
	}
	c.last = now
	if netErr != nil {
		snap.Errors = append(snap.Errors, "client networks: "+netErr.Error())
	}
	byDNS := map[string]*dnsScrape{}
	for i := range dnsRes {
		d := &dnsRes[i]
		byDNS[d.url] = d
		ds := DNSStatus{URL: d.url}
		if d.err != nil {
			ds.Error = d.err.Error()
			snap.Errors = append(snap.Errors, d.err.Error())
		} else {
			ds.Zone, ds.Policy, ds.FailOpen = d.state.Zone, d.state.Policy, d.state.FailOpen
		}
		snap.DNS = append(snap.DNS, ds)
	}
	snap.Demand = mergeDemand(dnsRes)
	demand := map[string]Demand{}
	for _, d := range snap.Demand {
		demand[d.Region] = d
	}

	next := map[string]sample{}
	for i, t := range targets {
		var reg *adminapi.RegionState
		if d := byDNS[strings.TrimRight(t.DNSAdmin, "/")]; d != nil && d.err == nil {
			for k := range d.state.Regions {
				if d.state.Regions[k].Name == t.Region {
					reg = &d.state.Regions[k]
				}
			}
		}
		rs := buildRegion(t, scrapes[i], c.prev, reg)
		if d, ok := demand[t.Region]; ok {
			rs.Demand = &d
		}
		for _, s := range scrapes[i] {
			if s.metricsErr == nil {
				next[s.admin] = sample{at: s.at, c: s.counters}
			}
		}
		snap.Errors = append(snap.Errors, rs.Errors...)
		snap.Regions = append(snap.Regions, rs)
	}
	c.prev = next
	snap.Totals = totals(snap.Regions)
	return snap
}

// edgeScrape is what one edge's admin listener said.
type edgeScrape struct {
	admin, public string
	at            time.Time
	counters      EdgeCounters
	metricsErr    error
	healthErr     error
	latency       time.Duration
}

func (c *Collector) scrapeEdge(ctx context.Context, s *edgeScrape) {
	var wg sync.WaitGroup
	wg.Go(func() {
		t0 := c.now()
		_, s.healthErr = c.get(ctx, s.admin+"/healthz", 4<<10)
		s.latency = c.now().Sub(t0)
	})
	body, err := c.get(ctx, s.admin+"/metrics", 16<<20)
	s.at = c.now()
	if err == nil {
		s.counters, err = ParseEdgeMetrics(strings.NewReader(string(body)))
		if err != nil {
			err = fmt.Errorf("%s/metrics: %w", s.admin, err)
		}
	}
	s.metricsErr = err
	wg.Wait()
}

type dnsScrape struct {
	url    string
	state  adminapi.State
	demand adminapi.DemandView
	err    error
}

func (c *Collector) scrapeDNS(ctx context.Context, d *dnsScrape) {
	var wg sync.WaitGroup
	var derr error
	wg.Go(func() { derr = c.getJSON(ctx, d.url+adminapi.DemandPath, &d.demand) })
	err := c.getJSON(ctx, d.url+adminapi.StatePath, &d.state)
	wg.Wait()
	d.err = errors.Join(err, derr)
}

// get fetches url and returns its body when the status is 200.
func (c *Collector) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain))+", application/json;q=0.9, */*;q=0.1")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, firstLine(body))
	}
	return body, nil
}

func (c *Collector) getJSON(ctx context.Context, url string, v any) error {
	body, err := c.get(ctx, url, 8<<20)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// ParseEdgeMetrics reads the counters the operator tools need from an
// edge's /metrics (Prometheus text format). Absent metrics count as zero.
func ParseEdgeMetrics(r io.Reader) (EdgeCounters, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return EdgeCounters{}, fmt.Errorf("parsing metrics: %w", err)
	}
	c := EdgeCounters{Requests: map[string]float64{}}
	if f := fams["kubecdn_edge_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			c.Requests[label(m, "cache")] += value(m)
		}
	}
	one := func(name string) float64 {
		t := 0.0
		if f := fams[name]; f != nil {
			for _, m := range f.GetMetric() {
				t += value(m)
			}
		}
		return t
	}
	c.BytesOut = one("kubecdn_edge_response_bytes_total")
	c.MemoryBytes = one("kubecdn_edge_memory_tier_bytes")
	c.DiskBytes = one("kubecdn_edge_disk_tier_bytes")
	c.Purged = one("kubecdn_edge_purged_objects_total")
	c.StartTime = one("kubecdn_process_start_time_seconds")
	return c, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// buildRegion turns the scrapes of one region's edges, the previous
// samples and the dns's view of the region into its status.
func buildRegion(t Target, scr []edgeScrape, prev map[string]sample, reg *adminapi.RegionState) RegionStatus {
	rs := RegionStatus{Region: t.Region, State: t.State, Edges: len(t.Admin), EdgeStatus: []EdgeStatus{}, Errors: []string{},
		Autoscale: t.Autoscale}
	if t.Error != "" {
		rs.Errors = append(rs.Errors, t.Region+": "+t.Error)
	}
	if reg != nil {
		h := reg.Healthy
		rs.DNSHealthy = &h
		rs.Serving = reg.Serving
	}
	var cur, delta []EdgeCounters
	rate, brate := 0.0, 0.0
	for _, s := range scr {
		es := EdgeStatus{Admin: s.admin, Public: s.public, Healthy: s.healthErr == nil, LatencyMs: ms(s.latency)}
		if s.healthErr != nil {
			es.Error = s.healthErr.Error()
		} else if s.metricsErr != nil {
			es.Error = s.metricsErr.Error()
		}
		if es.Healthy {
			rs.EdgesUp++
		}
		if es.Error != "" {
			rs.Errors = append(rs.Errors, t.Region+": "+es.Error)
		}
		rs.EdgeStatus = append(rs.EdgeStatus, es)
		if s.metricsErr != nil {
			continue
		}
		cur = append(cur, s.counters)
		if r, ok := RateSinceStart(s.counters, s.at); ok {
			rs.ReqPerSecSinceStart = addPtr(rs.ReqPerSecSinceStart, &r)
		}
		if p, ok := prev[s.admin]; ok && s.at.After(p.at) {
			d := Delta(p.c, s.counters)
			delta = append(delta, d)
			dt := s.at.Sub(p.at).Seconds()
			rate += Rate(d.Total(), dt)
			brate += Rate(d.BytesOut, dt)
		}
	}
	if t.State != StateOpen {
		rs.Edges = 0
	}
	rs.Health = Health(t.State, rs.EdgesUp, rs.Edges, reg != nil, reg != nil && reg.Healthy)
	if t.Error != "" && t.State == StateOpen {
		rs.Health = HealthUnreachable
	}
	if len(cur) > 0 {
		total := sum(cur)
		rs.cumulative = &total
		rs.Requests, rs.BytesServed = total.Total(), total.BytesOut
		rs.MemoryBytes, rs.DiskBytes = total.MemoryBytes, total.DiskBytes
		rs.FillBytes = total.MemoryBytes + total.DiskBytes
		if h, ok := HitRatio(total.Requests); ok {
			rs.HitRatioTotal = &h
		}
	}
	if len(delta) > 0 {
		d := sum(delta)
		rs.interval = &d
		rs.ReqPerSec, rs.BytesPerSec = ptr(rate), ptr(brate)
		if h, ok := HitRatio(d.Requests); ok {
			rs.HitRatio = &h
		}
	}
	return rs
}

// mergeDemand sums the demand of every dns that answered (each replica
// counts the queries it answered).
func mergeDemand(ds []dnsScrape) []Demand {
	m := map[string]*Demand{}
	var order []string
	add := func(r adminapi.DemandRate, name string) {
		d := m[name]
		if d == nil {
			d = &Demand{Region: name}
			m[name] = d
			order = append(order, name)
		}
		d.Total += r.Total
		d.Rate10s += r.Rate10s
		d.Rate1m += r.Rate1m
	}
	for _, d := range ds {
		if d.err != nil {
			continue
		}
		for _, r := range d.demand.Regions {
			add(r, r.Region)
		}
		if d.demand.Unlocated.Total > 0 {
			add(d.demand.Unlocated, "unknown")
		}
	}
	out := make([]Demand, 0, len(order))
	for _, n := range order {
		if n != "" {
			out = append(out, *m[n])
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Region != "unknown" && out[j].Region == "unknown" })
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
