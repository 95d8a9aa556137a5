package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/bearer"
	"github.com/kubecdn/kubecdn/internal/ops"
)

// RegionView is one region as a demand source sees it at one moment.
type RegionView struct {
	Name string
	// Running is set while the region's edges run (opening to draining).
	Running bool
	// Routed is set while the dns answers with the region: only those
	// regions' users are served where they should be.
	Routed bool
	// Admin are the base URLs of the region's edges' admin listeners.
	Admin []string
}

// EdgeSource reads every running edge's demand from its admin listener:
// GET adminapi.EdgeDemandPath (requests by the client's nearest region),
// or, from an edge that does not have that endpoint, the request counters
// of its /metrics (served load only). Counters are cumulative; rates are
// taken between this look and the previous one at the same edge.
type EdgeSource struct {
	Token string
	// Client makes the calls; if nil, a client that uses no proxy.
	Client *http.Client
	// Timeout bounds each call to one edge; if zero, 2s.
	Timeout time.Duration
	// Now stamps looks; if nil, time.Now.
	Now func() time.Time

	once   sync.Once
	client *http.Client
	mu     sync.Mutex
	prev   map[string]edgeLook // by admin URL
}

// edgeLook is one edge's counters at one moment.
type edgeLook struct {
	at      time.Time
	started float64 // Unix seconds; 0 unknown
	total   counts
	// byRegion is nil for an edge read through /metrics.
	byRegion map[string]counts
}

// counts are an edge's cumulative counters for one nearest region (or all).
type counts struct {
	requests, bytes, gainRequests, gainMicros float64
}

// EdgeSample is what one look at every running edge found.
type EdgeSample struct {
	// Served is the request rate of each running region's edges.
	Served map[string]float64
	// Displaced is, for every region not routed, the request rate routed
	// regions' edges served to clients whose nearest region it is. Nil
	// unless every edge answered with its demand by nearest region.
	Displaced map[string]float64
	// ServedBytes is the body bytes per second each running region's edges
	// serve; DisplacedBytes the same of Displaced (nil with it).
	ServedBytes, DisplacedBytes map[string]float64
	// RTTGain is, for regions in Displaced, the round trip (ms) opening
	// the region would save each of its users' requests on average, where
	// the edges could place the users (locate.Finder.Place); absent where
	// unknown.
	RTTGain map[string]float64
	// Missing names the edges that did not answer.
	Missing []string
	// ServedUsersOf names, per nearest region, the edges (admin URLs) that
	// served its clients since the previous look.
	ServedUsersOf map[string][]string
}

func (e *EdgeSource) setup() {
	e.once.Do(func() {
		e.client = e.Client
		if e.client == nil {
			e.client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}}
		}
		e.prev = map[string]edgeLook{}
	})
}

// Look reads every edge of every running region at once.
func (e *EdgeSource) Look(ctx context.Context, regions []RegionView) EdgeSample {
	e.setup()
	type job struct {
		region, admin string
		look          edgeLook
		err           error
	}
	var jobs []*job
	for _, r := range regions {
		if !r.Running {
			continue
		}
		for _, a := range r.Admin {
			jobs = append(jobs, &job{region: r.Name, admin: strings.TrimRight(a, "/")})
		}
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { j.look, j.err = e.lookEdge(ctx, j.admin) })
	}
	wg.Wait()

	routed := map[string]bool{}
	for _, r := range regions {
		routed[r.Name] = r.Routed
	}
	s := EdgeSample{Served: map[string]float64{}, Displaced: map[string]float64{}, ServedUsersOf: map[string][]string{},
		ServedBytes: map[string]float64{}, DisplacedBytes: map[string]float64{}}
	for _, r := range regions {
		if r.Running {
			s.Served[r.Name], s.ServedBytes[r.Name] = 0, 0
		}
		if !r.Routed {
			s.Displaced[r.Name], s.DisplacedBytes[r.Name] = 0, 0
		}
	}
	gainReqs, gainUs := map[string]float64{}, map[string]float64{}
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]bool{}
	for _, j := range jobs {
		seen[j.admin] = true
		if j.err != nil {
			s.Missing = append(s.Missing, fmt.Sprintf("edge %s (%s): %v", j.admin, j.region, j.err))
			delete(e.prev, j.admin)
			continue
		}
		prev, ok := e.prev[j.admin]
		e.prev[j.admin] = j.look
		s.Served[j.region] += rateOf(prev, ok, j.look, func(l edgeLook) float64 { return l.total.requests })
		s.ServedBytes[j.region] += rateOf(prev, ok, j.look, func(l edgeLook) float64 { return l.total.bytes })
		if j.look.byRegion == nil {
			s.Displaced, s.DisplacedBytes = nil, nil // this edge cannot say whose users it served
			continue
		}
		for near := range j.look.byRegion {
			rate := func(v func(counts) float64) float64 {
				return rateOf(prev, ok && prev.byRegion != nil, j.look, func(l edgeLook) float64 { return v(l.byRegion[near]) })
			}
			r := rate(func(c counts) float64 { return c.requests })
			if r > 0 {
				s.ServedUsersOf[near] = append(s.ServedUsersOf[near], j.admin)
			}
			// A region's own edges serving its users is not displaced
			// demand (a draining region still serves some).
			if s.Displaced != nil && near != j.region && routed[j.region] && !routed[near] {
				if _, known := routed[near]; known {
					s.Displaced[near] += r
					s.DisplacedBytes[near] += rate(func(c counts) float64 { return c.bytes })
					gainReqs[near] += rate(func(c counts) float64 { return c.gainRequests })
					gainUs[near] += rate(func(c counts) float64 { return c.gainMicros })
				}
			}
		}
	}
	if s.Displaced != nil {
		s.RTTGain = map[string]float64{}
		for near, n := range gainReqs {
			if n > 0 {
				s.RTTGain[near] = gainUs[near] / n / 1000
			}
		}
	}
	for a := range e.prev {
		if !seen[a] {
			delete(e.prev, a) // a stopped edge starts afresh
		}
	}
	return s
}

// rateOf is the per-second growth of a counter between two looks at one
// edge. Without a previous look of the same process (the first look, or
// the edge restarted, or a counter went back), it is the average since
// the edge started where that is known, else 0.
func rateOf(prev edgeLook, havePrev bool, cur edgeLook, v func(edgeLook) float64) float64 {
	if havePrev && (cur.started == 0 || prev.started == cur.started) && v(cur) >= v(prev) {
		dt := cur.at.Sub(prev.at).Seconds()
		if dt <= 0 {
			return 0
		}
		return (v(cur) - v(prev)) / dt
	}
	if cur.started > 0 {
		if age := float64(cur.at.UnixNano())/1e9 - cur.started; age > 0 {
			return v(cur) / age
		}
	}
	return 0
}

// errNoDemandEndpoint marks an edge that predates adminapi.EdgeDemandPath.
var errNoDemandEndpoint = errors.New("no demand endpoint")

func (e *EdgeSource) lookEdge(ctx context.Context, admin string) (edgeLook, error) {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	var d adminapi.EdgeDemand
	err := e.get(ctx, admin+adminapi.EdgeDemandPath, func(r io.Reader) error { return decodeJSON(r, &d) })
	if err == nil {
		l := edgeLook{at: now(), started: d.StartedAt, byRegion: map[string]counts{}}
		for _, r := range d.Regions {
			c := counts{float64(r.Requests), float64(r.Bytes), float64(r.GainRequests), float64(r.GainMicros)}
			l.byRegion[r.Region] = l.byRegion[r.Region].plus(c)
			l.total = l.total.plus(c)
		}
		return l, nil
	}
	if !errors.Is(err, errNoDemandEndpoint) {
		return edgeLook{}, err
	}
	// An edge without the endpoint still says how much it serves.
	var c ops.EdgeCounters
	err = e.get(ctx, admin+"/metrics", func(r io.Reader) (err error) { c, err = ops.ParseEdgeMetrics(r); return err })
	if err != nil {
		return edgeLook{}, err
	}
	return edgeLook{at: now(), started: c.StartTime, total: counts{requests: c.Total(), bytes: c.BytesOut}}, nil
}

func (c counts) plus(d counts) counts {
	return counts{c.requests + d.requests, c.bytes + d.bytes, c.gainRequests + d.gainRequests, c.gainMicros + d.gainMicros}
}

// get sends one GET with the token within the timeout and hands a 200
// body to read; a 404 is errNoDemandEndpoint.
func (e *EdgeSource) get(ctx context.Context, target string, read func(io.Reader) error) error {
	t := e.Timeout
	if t <= 0 {
		t = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	bearer.Set(req, e.Token)
	resp, err := e.client.Do(req)
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxAdminBody)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNoDemandEndpoint
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(body, 512))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return read(body)
}

// Demand is the Source of an autoscaler that reaches the dns replicas and
// the edges: served load from the edges, displaced demand from the edges
// when every edge reports it by nearest region, else from the dns.
//
// Why the edges win: the thresholds are requests per second of users, and
// an edge counts exactly those. The dns counts queries, and a resolver asks
// once per TTL for all the users behind it, so the dns's rate follows the
// number of active resolver networks, not the users: a thousand users
// behind one resolver are one query per TTL. It stays the fallback for
// edges that predate adminapi.EdgeDemandPath.
type Demand struct {
	// DNS reads the replicas' demand; nil for none. Its replicas are asked
	// even while the edges supply the displaced demand: a replica that does
	// not answer cannot be steered either, so it freezes decisions.
	DNS   *DNSSource
	Edges *EdgeSource
	// Regions lists every region with its edges as it is now.
	Regions func(ctx context.Context) ([]RegionView, error)
	// Log, if set, gets a line whenever the displaced signal changes.
	Log *slog.Logger

	mu     sync.Mutex
	signal string
	last   EdgeSample
}

// The displaced-demand signals Demand chooses between.
const (
	SignalEdges = "edges" // users' requests, counted by the edges
	SignalDNS   = "dns"   // resolvers' queries, counted by the dns
)

// Sample implements Source.
func (d *Demand) Sample(ctx context.Context) (Sample, error) {
	regions, err := d.Regions(ctx)
	if err != nil {
		return Sample{}, fmt.Errorf("listing regions: %w", err)
	}
	routed := map[string]bool{}
	for _, r := range regions {
		routed[r.Name] = r.Routed
	}
	var dnsSmp Sample
	var es EdgeSample
	var wg sync.WaitGroup
	if d.DNS != nil {
		wg.Go(func() { dnsSmp = d.DNS.Displaced(ctx, func(n string) bool { return routed[n] }) })
	}
	wg.Go(func() { es = d.Edges.Look(ctx, regions) })
	wg.Wait()
	s := Sample{Served: es.Served, ServedBytes: es.ServedBytes, Missing: append(es.Missing, dnsSmp.Missing...), DNSRoutes: dnsSmp.DNSRoutes}
	signal := SignalEdges
	switch {
	case es.Displaced != nil:
		s.Displaced, s.DisplacedBytes, s.RTTGain = es.Displaced, es.DisplacedBytes, es.RTTGain
	case d.DNS != nil:
		s.Displaced, signal = dnsSmp.Displaced, SignalDNS
	default:
		s.Missing = append(s.Missing, "displaced demand: an edge has no demand endpoint and no dns is configured")
		signal = ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = es
	if signal != d.signal && d.Log != nil {
		d.Log.Info("autoscale: displaced demand signal", "signal", signal, "why", signalWhy(signal))
	}
	d.signal = signal
	return s, nil
}

func signalWhy(signal string) string {
	switch signal {
	case SignalEdges:
		return "every edge counts its requests by the client's nearest region: users' requests per second"
	case SignalDNS:
		return "an edge does not count by nearest region: the dns's queries per second (resolver networks, not users)"
	}
	return "none"
}

// Signal is the displaced signal of the latest sample (SignalEdges,
// SignalDNS, or "" before the first or when there is none).
func (d *Demand) Signal() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.signal
}

// ServedUsersOf names the edges (admin URLs) that served clients nearest to
// region in the latest sample; nil when the edges do not say.
func (d *Demand) ServedUsersOf(region string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.last.ServedUsersOf[region]...)
}

var _ Source = (*Demand)(nil)

func decodeJSON(r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}
