package gslb

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/locate"
	"github.com/kubecdn/kubecdn/internal/rtt"
)

// Locator finds where a client address is (Options.Locator); see package
// locate, which the edges share.
type Locator = locate.Locator

// static is everything derived from one version of the CDN file.
type static struct {
	cfg      *config.CDN
	zone     *zone
	regions  []regionStatic
	services []serviceStatic // app services, in file order (zone routed indices)
	probes   []probeSpec     // every address probed: edges, then app endpoints
	order    []int           // failover order
	policy   config.Policy
	explore  float64
	locator  *locate.Finder
	closer   io.Closer
	rrl      *rrl
	loaded   time.Time
	// demand counters per region index, then one for unknown clients
	demand     []*demandCounter
	answersCtr []prometheus.Counter
}

type regionStatic struct {
	config.RegionRef
	loc    config.Location
	hasLoc bool
	weight int
	edges  []member
}

// serviceStatic is an app service (spec.apps[].services[]) routed among the
// regions that list endpoints for its hostname.
type serviceStatic struct {
	config.AppServiceRef
	host       string     // lower-case hostname, the metrics' service label
	regions    [][]member // per region index: its endpoints
	answersCtr []prometheus.Counter
}

// member is one probed address of a routed name: an edge or an app
// endpoint.
type member struct {
	key  string // the identity of its health state
	addr netip.AddrPort
}

// probeKind is how an address is probed.
type probeKind uint8

const (
	probeEdge probeKind = iota // GET config.HealthPath, 200 is healthy
	probeTCP                   // a TCP connect within the timeout
	probeHTTP                  // GET path with Host, 2xx or 3xx is healthy
)

// probeSpec is one health probe loop.
type probeSpec struct {
	key  string
	kind probeKind
	addr netip.AddrPort
	host string // http: the Host header
	path string // http: the request path
}

func (p probeSpec) what() string {
	if p.kind == probeEdge {
		return "edge"
	}
	return "app endpoint"
}

// endpointKey identifies an app endpoint's health state: a changed check
// (protocol or path) starts afresh, the same check keeps its state.
func endpointKey(host, region string, ap netip.AddrPort, h config.AppHealth) string {
	k := host + "|" + region + "|" + ap.String() + "|" + h.Protocol
	if h.Protocol == "http" {
		k += "|" + h.Path
	}
	return k
}

func (s *Server) buildStatic(c *config.CDN) (*static, error) {
	z, err := buildZone(c, s.now())
	if err != nil {
		return nil, err
	}
	st := &static{cfg: c, zone: z, policy: c.Spec.Routing.Policy, explore: c.Spec.Routing.Explore, loaded: s.now()}
	idx := map[string]int{}
	for i, r := range c.AllRegions() {
		rs := regionStatic{RegionRef: r, weight: 1}
		rs.loc, rs.hasLoc = config.LocationOf(r.Region)
		if w, ok := c.Spec.Routing.Weights[r.Name]; ok {
			rs.weight = w
		}
		for _, e := range r.Edges {
			ap, err := config.ParseHostPort(e, 80)
			if err != nil {
				return nil, fmt.Errorf("%s.edges: %w", r.Path, err)
			}
			rs.edges = append(rs.edges, member{key: r.Name + "|" + ap.String(), addr: ap})
		}
		idx[r.Name] = i
		st.regions = append(st.regions, rs)
		st.demand = append(st.demand, s.demandCounter(r.Name))
		st.answersCtr = append(st.answersCtr, s.m.answers.WithLabelValues(r.Name))
	}
	st.demand = append(st.demand, s.demandCounter("unknown"))
	if err := s.buildServices(st, c); err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, n := range c.Spec.Routing.Failover {
		st.order = append(st.order, idx[n])
		seen[idx[n]] = true
	}
	for i := range st.regions {
		if !seen[i] {
			st.order = append(st.order, i)
		}
	}
	f, err := locate.New(c, locate.Options{Locator: s.o.Locator})
	if err != nil {
		return nil, err
	}
	st.locator, st.closer = f, f
	if r := c.Spec.DNS.RRL; r.Rate > 0 {
		st.rrl = newRRL(float64(r.Rate), *r.Slip, s.now)
	}
	return st, nil
}

// buildServices adds the app services with the endpoints each region
// lists for their hostnames, and the list of probes (edges first). An
// endpoints entry that names no app service is ignored (validation
// rejects it).
func (s *Server) buildServices(st *static, c *config.CDN) error {
	seen := map[string]bool{}
	for _, r := range st.regions {
		for _, e := range r.edges {
			if !seen[e.key] {
				seen[e.key] = true
				st.probes = append(st.probes, probeSpec{key: e.key, kind: probeEdge, addr: e.addr})
			}
		}
	}
	for _, ref := range c.AppServices() {
		host := normHost(ref.Hostname)
		svc := serviceStatic{AppServiceRef: ref, host: host, regions: make([][]member, len(st.regions)),
			answersCtr: make([]prometheus.Counter, len(st.regions))}
		for i, r := range st.regions {
			for k, list := range r.Endpoints {
				if normHost(k) != host {
					continue
				}
				if len(list) > 0 && svc.answersCtr[i] == nil {
					svc.answersCtr[i] = s.m.serviceAnswers.WithLabelValues(host, r.Name)
				}
				for j, e := range list {
					ap, err := config.ParseHostPort(e, 80)
					if err != nil {
						return fmt.Errorf("%s.endpoints.%s[%d]: %w", r.Path, k, j, err)
					}
					ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
					key := endpointKey(host, r.Name, ap, ref.Health)
					svc.regions[i] = append(svc.regions[i], member{key: key, addr: ap})
					if !seen[key] {
						seen[key] = true
						p := probeSpec{key: key, kind: probeTCP, addr: ap}
						if ref.Health.Protocol == "http" {
							p.kind, p.host, p.path = probeHTTP, host, ref.Health.Path
							if p.path == "" {
								p.path = "/"
							}
						}
						st.probes = append(st.probes, p)
					}
				}
			}
		}
		st.services = append(st.services, svc)
	}
	return nil
}

// normHost is a hostname as the file's names are compared: lower case,
// without the final dot.
func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".") }

// view is one (file, health) state; its plan caches are valid for exactly
// this state and are dropped with it.
type view struct {
	st *static
	// the CDN hostnames, routed among the regions' edges
	*targetView
	// per app service (index of st.services), routed among its endpoints
	services []*targetView
}

// targetView is the health state of one routed name (the CDN hostnames or
// an app service) with its plan caches.
type targetView struct {
	// regions per address family (0: IPv4 for A, 1: IPv6 for AAAA): a
	// region serves a family when it has members of it and is healthy for
	// it when one of those passes its probe.
	regions  [2][]RegionView
	healthy  []addrSet // per region: healthy members
	all      []addrSet // per region: every member
	ups      []bool    // every member's health, in order: reuse the view while equal
	outs     []bool    // per region: taken out of the answers (reused while equal too)
	failOpen bool
	plans    [2]*planCache
}

type addrSet struct{ v4, v6 []net.IP }

func (a *addrSet) add(ap netip.Addr) {
	if ap.Is4() {
		a.v4 = append(a.v4, net.IP(ap.AsSlice()))
	} else {
		a.v6 = append(a.v6, net.IP(ap.AsSlice()))
	}
}

// cachedPlan is a Plan with its answers ready.
type cachedPlan struct {
	Plan
	sets []addrSet // per choice
	cum  []float64 // cumulative shares, nil for one choice
}

func (cp *cachedPlan) pick(rnd func() float64) int {
	if len(cp.cum) == 0 {
		return 0
	}
	x := rnd()
	for i, c := range cp.cum {
		if x < c {
			return i
		}
	}
	return len(cp.cum) - 1
}

// clientKey is the network a decision is made for: /24 (IPv4) or /48.
func clientKey(a netip.Addr) netip.Prefix { return rtt.NetOf(a) }

func (s *Server) plan(v *view, t *targetView, key netip.Prefix, fam int) *cachedPlan {
	if cp := t.plans[fam].get(key); cp != nil {
		return cp
	}
	s.m.planComputes.Inc()
	c := Client{Net: key}
	c.Loc, c.HasLoc = v.st.locator.Locate(key.Addr())
	var rttf RTTFunc
	if v.st.policy == config.PolicyLatency {
		rttf = func(i int) (float64, bool) { return s.rtt.lookup(key, v.st.regions[i].Name) }
	}
	p := Route(v.st.policy, t.regions[fam], v.st.order, c, rttf, v.st.explore)
	cp := &cachedPlan{Plan: p}
	for _, ch := range p.Choices {
		var set addrSet
		for _, ri := range ch {
			src := t.healthy[ri]
			if p.FailOpen {
				src = t.all[ri]
			}
			set.v4 = append(set.v4, src.v4...)
			set.v6 = append(set.v6, src.v6...)
		}
		cp.sets = append(cp.sets, set)
	}
	if len(p.Shares) > 1 {
		sum := 0.0
		for _, sh := range p.Shares {
			sum += sh
			cp.cum = append(cp.cum, sum)
		}
	}
	t.plans[fam].put(key, cp)
	return cp
}

// planCache maps client networks to plans. Reads are lock-free (sync.Map:
// a cached network is a load without a shared write); the cache is bounded
// by starting afresh when full.
type planCache struct {
	m atomic.Pointer[planMap]
}

type planMap struct {
	m sync.Map // netip.Prefix -> *cachedPlan
	n atomic.Int64
}

const planCacheMax = 1 << 18

func newPlanCache() *planCache {
	c := &planCache{}
	c.m.Store(&planMap{})
	return c
}

func (c *planCache) get(k netip.Prefix) *cachedPlan {
	if p, ok := c.m.Load().m.Load(k); ok {
		return p.(*cachedPlan)
	}
	return nil
}

func (c *planCache) put(k netip.Prefix, p *cachedPlan) {
	pm := c.m.Load()
	if pm.n.Add(1) > planCacheMax {
		pm = &planMap{}
		c.m.Store(pm)
	}
	pm.m.Store(k, p)
}

func (c *planCache) drop(k netip.Prefix) { c.m.Load().m.Delete(k) }

// demandCounter counts queries by best region; the Prometheus counter and a
// plain atomic (for the admin endpoint's rates) move together.
type demandCounter struct {
	name string
	n    atomic.Uint64
	prom prometheus.Counter
}

func (d *demandCounter) inc() {
	d.n.Add(1)
	d.prom.Inc()
}
