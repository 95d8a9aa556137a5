// Package gslb is kubecdn's authoritative DNS server for the CDN zone: a
// global server load balancer that answers each client with the best
// healthy region.
//
// Three kinds of names are routed from health state: the CDN hostnames
// (the edges of the best region), the app services' hostnames
// (spec.apps[].services[], the same policy among the regions that list
// endpoints for them) and "<region>.edges.<zone>" (that region's edges,
// whatever the policy: how a child region's edges reach their shield).
//
// The routing decision (Route) is a pure function over the file's policy,
// a health snapshot, the client's network and location and the RTT table.
// Its result is cached per routed name, client network (/24, /48) and
// health state, so a query costs a map lookup; a health change builds new
// caches for the names it touches, an RTT report drops the networks it
// covers. The server probes every edge itself (GET
// /.well-known/kubecdn/health) and every app endpoint (a TCP connect, or an
// HTTP GET), counts demand per nearest region (open or closed) for
// autoscaling, limits response rates, and serves an admin HTTP listener
// (metrics, state, demand, and the edges' RTT feed at POST /v1/rtt, which
// needs the admin bearer token; see rttTable for why a token holder still
// cannot steer the answers alone).
package gslb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubecdn/kubecdn/internal/config"
)

// The dns's addresses when Options (or `kubecdn dns`'s flags) name none.
const (
	DefaultListen = "127.0.0.1:5353"
	DefaultAdmin  = "127.0.0.1:9053"
)

// Options configure a Server. Zero values get the documented defaults.
type Options struct {
	// Listen is the UDP and TCP address; if empty, DefaultListen.
	// Ignored for a transport given pre-bound below.
	Listen string
	// PacketConn and Listener are pre-bound UDP and TCP sockets (tests bind
	// 127.0.0.1:0 and read the addresses back).
	PacketConn net.PacketConn
	Listener   net.Listener
	// Admin is the admin HTTP address; if empty, DefaultAdmin; "off"
	// disables it. AdminListener is a pre-bound alternative.
	Admin         string
	AdminListener net.Listener
	// AdminToken is the bearer token the admin listener's write endpoint
	// (POST /v1/rtt, the edges' reports) requires: the edges' admin token.
	// If empty, every report is refused.
	AdminToken string
	// Region is the region this replica runs in (informational).
	Region string
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
	// Rand returns a float in [0,1) for weighted and explore choices; it
	// must be safe for concurrent use. If nil, math/rand/v2.Float64.
	Rand func() float64
	// ProbeClient performs the HTTP health probes (the edges, and the app
	// services with http health, for which redirects are not followed); if
	// nil, a client with keep-alive connections and no proxy.
	ProbeClient *http.Client
	// Locator, if set, is asked before the file's geo networks and
	// database (tests, or a custom source).
	Locator Locator
}

// maxUDP is the EDNS buffer size the server advertises and answers within
// (the DNS flag day 2020 value).
const maxUDP = 1232

// Server is the authoritative DNS server. Create it with New, then Run.
type Server struct {
	o           Options
	log         *slog.Logger
	now         func() time.Time
	rand        func() float64
	probeClient *http.Client
	appClient   *http.Client // probeClient without following redirects (app http probes)
	m           *metrics
	rtt         *rttTable
	reportSem   chan struct{} // reports decoded at once: bounds their memory

	udp   net.PacketConn
	tcp   net.Listener
	admin net.Listener

	view atomic.Pointer[view]

	mu         sync.Mutex // serializes view rebuilds, health updates and reloads
	health     map[string]*edgeHealth
	runCtx     context.Context
	stopProbes context.CancelFunc
	probeGen   uint64
	probeWG    sync.WaitGroup
	// out names the regions taken out of the answers (SetRouted); kept
	// by name across reloads, guarded by mu.
	out        map[string]bool
	demandMu   sync.Mutex
	demandCtrs map[string]*demandCounter
	rates      *rateRing
	started    time.Time
}

// New validates nothing (cfg must come from config.Load or config.Parse),
// binds the listeners that were not given, and returns a Server ready to
// Run. Addresses are readable right away (UDPAddr, TCPAddr, AdminAddr).
func New(cfg *config.CDN, o Options) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("dns: nil config")
	}
	s := &Server{o: o, log: o.Logger, now: o.Now, rand: o.Rand, probeClient: o.ProbeClient,
		m: newMetrics(), health: map[string]*edgeHealth{}, out: map[string]bool{}, demandCtrs: map[string]*demandCounter{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Float64
	}
	if s.probeClient == nil {
		s.probeClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}}
	}
	s.appClient = noRedirects(s.probeClient)
	s.rtt = newRTTTable(s.now, rttMaxAge, rttMaxNetworks)
	s.reportSem = make(chan struct{}, 2)
	s.rates = newRateRing(s.now)
	st, err := s.buildStatic(cfg)
	if err != nil {
		return nil, fmt.Errorf("building dns state: %w", err)
	}
	s.mu.Lock()
	s.startProbesLocked(st)
	s.rebuildLocked(st)
	s.mu.Unlock()
	s.m.info.WithLabelValues(o.Region, cfg.Spec.Zone, string(cfg.Spec.Routing.Policy)).Set(1)

	listen := o.Listen
	if listen == "" {
		listen = DefaultListen
	}
	s.udp, s.tcp, s.admin = o.PacketConn, o.Listener, o.AdminListener
	if s.udp == nil {
		if s.udp, err = net.ListenPacket("udp", listen); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listening on udp %s: %w", listen, err)
		}
	}
	if s.tcp == nil {
		if s.tcp, err = net.Listen("tcp", listen); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listening on tcp %s: %w", listen, err)
		}
	}
	if s.admin == nil && o.Admin != "off" {
		addr := o.Admin
		if addr == "" {
			addr = DefaultAdmin
		}
		if s.admin, err = net.Listen("tcp", addr); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("listening on admin %s: %w", addr, err)
		}
	}
	return s, nil
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.admin != nil {
		s.admin.Close()
	}
}

// UDPAddr is the bound UDP address.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// TCPAddr is the bound TCP address.
func (s *Server) TCPAddr() net.Addr { return s.tcp.Addr() }

// AdminAddr is the bound admin address, nil when the admin listener is off.
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil {
		return nil
	}
	return s.admin.Addr()
}

// Run serves DNS (UDP and TCP), probes the edges and serves the admin
// listener until ctx ends; then it stops everything and returns nil, or
// the first listener error.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.runCtx = ctx
	s.started = s.now()
	s.startProbesLocked(s.view.Load().st)
	s.mu.Unlock()

	udpSrv := &dns.Server{PacketConn: s.udp, Handler: s, UDPSize: 4096}
	tcpSrv := &dns.Server{Listener: s.tcp, Handler: s, ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	for _, srv := range []*dns.Server{udpSrv, tcpSrv} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("serving dns: %w", err)
			}
		}()
	}
	var hs *http.Server
	if s.admin != nil {
		hs = &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(s.admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving admin: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.rates.run(ctx, s.demandSnapshot)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.sweepRTT(ctx, rttSweepEvery)
	}()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = udpSrv.ShutdownContext(sctx)
	_ = tcpSrv.ShutdownContext(sctx)
	if hs != nil {
		_ = hs.Shutdown(sctx)
	}
	s.closeListeners()
	wg.Wait()
	s.probeWG.Wait()
	if st := s.view.Load().st; st.closer != nil {
		st.closer.Close()
	}
	return err
}

// Reload swaps in a new version of the file without dropping queries:
// listeners stay, health of unchanged edges is kept, probes restart.
func (s *Server) Reload(cfg *config.CDN) error {
	st, err := s.buildStatic(cfg)
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		return fmt.Errorf("reloading dns state: %w", err)
	}
	s.mu.Lock()
	old := s.view.Load().st
	s.startProbesLocked(st)
	s.rebuildLocked(st)
	s.dropStaleSeries(old, st)
	s.mu.Unlock()
	if old.closer != nil {
		old.closer.Close() // in-flight lookups on the old db may fail: they fall back to unknown
	}
	s.m.info.Reset()
	s.m.info.WithLabelValues(s.o.Region, cfg.Spec.Zone, string(cfg.Spec.Routing.Policy)).Set(1)
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("cdn file reloaded", "zone", cfg.Spec.Zone, "regions", len(st.regions), "policy", st.policy)
	return nil
}

// dropStaleSeries deletes the health series of regions, edges, app
// services and endpoints that old had and cur no longer has.
func (s *Server) dropStaleSeries(old, cur *static) {
	keep := map[string]bool{}
	for i, r := range cur.regions {
		if len(r.edges) > 0 {
			keep["r|"+r.Name] = true
		}
		for _, e := range r.edges {
			keep["e|"+r.Name+"|"+e.addr.String()] = true
		}
		for _, svc := range cur.services {
			if len(svc.regions[i]) > 0 {
				keep["s|"+svc.host+"|"+r.Name] = true
			}
			for _, e := range svc.regions[i] {
				keep["p|"+svc.host+"|"+r.Name+"|"+e.addr.String()] = true
			}
		}
	}
	for _, r := range cur.regions {
		keep["n|"+r.Name] = true
	}
	for i, r := range old.regions {
		if !keep["n|"+r.Name] {
			s.m.regionRouted.DeleteLabelValues(r.Name)
		}
		if len(r.edges) > 0 && !keep["r|"+r.Name] {
			s.m.regionHealthy.DeleteLabelValues(r.Name)
		}
		for _, e := range r.edges {
			if !keep["e|"+r.Name+"|"+e.addr.String()] {
				s.m.edgeHealthy.DeleteLabelValues(r.Name, e.addr.String())
			}
		}
		for _, svc := range old.services {
			if len(svc.regions[i]) > 0 && !keep["s|"+svc.host+"|"+r.Name] {
				s.m.serviceHealthy.DeleteLabelValues(svc.host, r.Name)
			}
			for _, e := range svc.regions[i] {
				if !keep["p|"+svc.host+"|"+r.Name+"|"+e.addr.String()] {
					s.m.endpointHealthy.DeleteLabelValues(svc.host, r.Name, e.addr.String())
				}
			}
		}
	}
}

// rebuildLocked builds the view for st and the current health, logs and
// exports region changes. A routed name whose members' health did not
// change keeps its target view, and so its cached answers. s.mu must be
// held.
func (s *Server) rebuildLocked(st *static) {
	old := s.view.Load()
	var prev *view // the same file: unchanged targets are reused
	if old != nil && old.st == st {
		prev = old
	}
	v := &view{st: st, services: make([]*targetView, len(st.services))}
	var pt *targetView
	if prev != nil {
		pt = prev.targetView
	}
	v.targetView = s.buildTarget(st, func(i int) []member { return st.regions[i].edges }, pt)
	if v.targetView != pt {
		for i, r := range st.regions {
			for _, e := range r.edges {
				s.m.edgeHealthy.WithLabelValues(r.Name, e.addr.String()).Set(b2f(s.upLocked(e.key)))
			}
			if serving, ok := v.regionUp(i); serving {
				s.m.regionHealthy.WithLabelValues(r.Name).Set(b2f(ok))
			}
		}
	}
	for j := range st.services {
		svc := &st.services[j]
		pt = nil
		if prev != nil {
			pt = prev.services[j]
		}
		t := s.buildTarget(st, func(i int) []member { return svc.regions[i] }, pt)
		v.services[j] = t
		if t == pt {
			continue
		}
		for i, r := range st.regions {
			for _, e := range svc.regions[i] {
				s.m.endpointHealthy.WithLabelValues(svc.host, r.Name, e.addr.String()).Set(b2f(s.upLocked(e.key)))
			}
			if serving, ok := t.regionUp(i); serving {
				s.m.serviceHealthy.WithLabelValues(svc.host, r.Name).Set(b2f(ok))
			}
		}
	}
	if old != nil {
		s.logChanges(old, v)
	}
	s.m.failOpenState.Set(b2f(v.failOpen))
	s.exportRoutedLocked(st)
	s.view.Store(v)
}

// buildTarget builds the regions and answer sets of one routed name from
// its members per region and their health; prev is returned as is when
// every member's health is the same as in it.
func (s *Server) buildTarget(st *static, members func(region int) []member, prev *targetView) *targetView {
	var ups []bool
	for i := range st.regions {
		for _, e := range members(i) {
			ups = append(ups, s.upLocked(e.key))
		}
	}
	outs := make([]bool, len(st.regions))
	for i, r := range st.regions {
		outs[i] = s.out[r.Name]
	}
	if prev != nil && slices.Equal(prev.ups, ups) && slices.Equal(prev.outs, outs) {
		return prev
	}
	t := &targetView{ups: ups, outs: outs, plans: [2]*planCache{newPlanCache(), newPlanCache()}}
	anyServing, anyHealthy := false, false
	k := 0
	for i, r := range st.regions {
		var rv [2]RegionView
		var healthy, all addrSet
		for f := range rv {
			rv[f] = RegionView{Name: r.Name, Loc: r.loc, HasLoc: r.hasLoc, Weight: r.weight, Out: outs[i]}
		}
		for _, e := range members(i) {
			a := e.addr.Addr()
			f := 0
			if !a.Is4() {
				f = 1
			}
			all.add(a)
			rv[f].Serving = true
			if ups[k] {
				healthy.add(a)
				rv[f].Healthy = true
			}
			k++
		}
		serving, ok := rv[0].Serving || rv[1].Serving, (rv[0].Serving && rv[0].Healthy) || (rv[1].Serving && rv[1].Healthy)
		anyServing = anyServing || serving
		anyHealthy = anyHealthy || (ok && !outs[i])
		for f := range rv {
			t.regions[f] = append(t.regions[f], rv[f])
		}
		t.healthy = append(t.healthy, healthy)
		t.all = append(t.all, all)
	}
	t.failOpen = anyServing && !anyHealthy
	return t
}

// logChanges logs and counts the region health changes from old to v, for
// the edges and for each app service.
func (s *Server) logChanges(old, v *view) {
	state := map[bool]string{true: "up", false: "down"}
	if v.targetView != old.targetView {
		healthChanges(old.st, old.targetView, v.st, v.targetView, func(region string, up bool) {
			s.m.transitions.WithLabelValues(region, state[up]).Inc()
			s.log.Log(context.Background(), healthLevel(up), "region health changed", "region", region, "state", state[up])
		})
		if v.failOpen && !old.failOpen {
			s.log.Error("no serving region is healthy and routed in: failing open, answering every serving region")
		}
	}
	olds := map[string]*targetView{}
	for j, t := range old.services {
		olds[old.st.services[j].host] = t
	}
	for j, t := range v.services {
		svc := v.st.services[j]
		ot, ok := olds[svc.host]
		if !ok || ot == t {
			continue
		}
		healthChanges(old.st, ot, v.st, t, func(region string, up bool) {
			s.m.serviceTransitions.WithLabelValues(svc.host, region, state[up]).Inc()
			s.log.Log(context.Background(), healthLevel(up), "app service health changed", "service", svc.host, "region", region, "state", state[up])
		})
		if t.failOpen && !ot.failOpen {
			s.log.Error("no region of the app service is healthy: failing open, answering every region", "service", svc.host)
		}
	}
}

// healthChanges calls changed for each region that serves in both the old
// and the new view and whose health differs between them.
func healthChanges(oldSt *static, old *targetView, newSt *static, cur *targetView, changed func(region string, up bool)) {
	was := map[string]bool{}
	for i := range oldSt.regions {
		if serving, up := old.regionUp(i); serving {
			was[oldSt.regions[i].Name] = up
		}
	}
	for i, r := range newSt.regions {
		serving, up := cur.regionUp(i)
		if prev, known := was[r.Name]; known && serving && prev != up {
			changed(r.Name, up)
		}
	}
}

// regionUp says whether region i has members and whether one of them is up.
func (t *targetView) regionUp(i int) (serving, healthy bool) {
	for f := range t.regions {
		r := t.regions[f][i]
		serving = serving || r.Serving
		healthy = healthy || (r.Serving && r.Healthy)
	}
	return serving, healthy
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	v := s.view.Load()
	remote, tcp := peer(w.RemoteAddr())
	resp := s.respond(v, req, remote, tcp)
	if !tcp && v.st.rrl != nil && remote.IsValid() {
		kind := v.st.zone.origin
		if resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0 && len(req.Question) == 1 {
			kind = strings.ToLower(req.Question[0].Name)
		}
		var qtype uint16
		if len(req.Question) == 1 {
			qtype = req.Question[0].Qtype
		}
		switch v.st.rrl.check(remote, kind, qtype, resp.Rcode) {
		case rrlDrop:
			s.m.rrl.WithLabelValues("drop").Inc()
			s.m.queries.WithLabelValues("udp", "DROPPED").Inc()
			return
		case rrlSlip:
			s.m.rrl.WithLabelValues("slip").Inc()
			resp.Answer, resp.Ns = nil, nil
			extra := resp.Extra[:0]
			for _, rr := range resp.Extra {
				if rr.Header().Rrtype == dns.TypeOPT {
					extra = append(extra, rr)
				}
			}
			resp.Extra = extra
			resp.Truncated = true
		}
	}
	s.m.query(tcp, resp.Rcode)
	_ = w.WriteMsg(resp)
}

func peer(a net.Addr) (netip.Addr, bool) {
	switch x := a.(type) {
	case *net.UDPAddr:
		return x.AddrPort().Addr().Unmap(), false
	case *net.TCPAddr:
		return x.AddrPort().Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// respond builds the response to req from view v for a client at remote
// (the resolver) over UDP or TCP. It never returns nil.
func (s *Server) respond(v *view, req *dns.Msg, remote netip.Addr, tcp bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	m.RecursionAvailable = false
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	size := dns.MinMsgSize
	var ecs *dns.EDNS0_SUBNET
	opt := req.IsEdns0()
	if opt != nil {
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			m.Extra = append(m.Extra, newOPT(nil))
			return m
		}
		size = max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDP))
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				ecs = e
			}
		}
	}
	client := remote
	var ecsOut *dns.EDNS0_SUBNET
	if ecs != nil {
		a, ok := ecsAddr(ecs)
		if !ok {
			m.Rcode = dns.RcodeFormatError
			m.Extra = append(m.Extra, newOPT(nil))
			return m
		}
		ecsOut = &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: ecs.Family, SourceNetmask: ecs.SourceNetmask, Address: ecs.Address}
		if ecs.SourceNetmask > 0 {
			client = a
		}
	}
	r := resolution{s: s, v: v, m: m, client: client}
	r.resolve(req.Question[0])
	if opt != nil {
		if ecsOut != nil && r.clientDependent && ecs.SourceNetmask > 0 {
			ecsOut.SourceScope = 24
			if ecs.Family == 2 {
				ecsOut.SourceScope = 48
			}
		}
		var opts []dns.EDNS0
		if ecsOut != nil {
			opts = append(opts, ecsOut)
		}
		m.Extra = append(m.Extra, newOPT(opts))
	}
	if !tcp {
		m.Truncate(size)
	}
	return m
}

func newOPT(opts []dns.EDNS0) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}, Option: opts}
	o.SetUDPSize(maxUDP)
	return o
}

// ecsAddr returns the client subnet's address, or false when the option is
// malformed (RFC 7871 §6: FORMERR).
func ecsAddr(e *dns.EDNS0_SUBNET) (netip.Addr, bool) {
	var a netip.Addr
	switch e.Family {
	case 1:
		ip := e.Address.To4()
		if ip == nil || e.SourceNetmask > 32 {
			return a, false
		}
		a = netip.AddrFrom4([4]byte(ip))
	case 2:
		ip := e.Address.To16()
		if ip == nil || e.SourceNetmask > 128 {
			return a, false
		}
		a = netip.AddrFrom16([16]byte(ip))
	case 0:
		return a, e.SourceNetmask == 0
	default:
		return a, false
	}
	if p, err := a.Prefix(int(e.SourceNetmask)); err != nil || p.Addr() != a {
		return a, false // bits set beyond the source prefix
	}
	return a, true
}

// resolution answers one question into m.
type resolution struct {
	s               *Server
	v               *view
	m               *dns.Msg
	client          netip.Addr
	clientDependent bool
	// dry is set for a lookup that is no query (Resolve): it counts no
	// demand and no answers, and notes what it answered below.
	dry *dryRun
}

func (r *resolution) resolve(q dns.Question) {
	z := r.v.st.zone
	m := r.m
	lname := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET || !dns.IsSubDomain(z.origin, lname) {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
		return
	case dns.TypeANY: // RFC 8482: a minimal answer
		if !z.exists[lname] {
			m.Rcode = dns.RcodeNameError
			m.Ns = append(m.Ns, z.negSOA())
			return
		}
		m.Answer = append(m.Answer, &dns.HINFO{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: z.ttl}, Cpu: "RFC8482"})
		return
	}
	name := q.Name
	for depth := 0; depth < 8; depth++ {
		lname = strings.ToLower(name)
		if rt, ok := z.routed[lname]; ok && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) {
			if r.routedAnswer(name, q.Qtype, rt) || len(m.Answer) > 0 {
				return
			}
			m.Ns = append(m.Ns, z.negSOA())
			return
		}
		rrs := z.records[lname]
		if set := rrs[q.Qtype]; len(set) > 0 {
			for _, rr := range set {
				c := dns.Copy(rr)
				c.Header().Name = name
				m.Answer = append(m.Answer, c)
				if ns, ok := rr.(*dns.NS); ok {
					for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
						m.Extra = append(m.Extra, z.records[ns.Ns][t]...)
					}
				}
			}
			return
		}
		if cn := rrs[dns.TypeCNAME]; len(cn) > 0 && q.Qtype != dns.TypeCNAME {
			c := dns.Copy(cn[0])
			c.Header().Name = name
			m.Answer = append(m.Answer, c)
			target := cn[0].(*dns.CNAME).Target
			if !dns.IsSubDomain(z.origin, strings.ToLower(target)) {
				return
			}
			name = target
			continue
		}
		if !z.exists[lname] {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, z.negSOA())
		return
	}
	m.Rcode = dns.RcodeServerFailure // CNAME chain too long
}

// routedAnswer adds the A or AAAA records of a routed name; false when
// there are none (NODATA).
func (r *resolution) routedAnswer(name string, qtype uint16, rt routed) bool {
	v := r.v
	switch rt.kind {
	case routedRegion:
		return r.regionAnswer(name, qtype, rt.idx)
	case routedService:
		if rt.idx >= len(v.services) {
			return false
		}
		return r.targetAnswer(name, qtype, v.services[rt.idx], v.st.services[rt.idx].answersCtr, false)
	}
	return r.targetAnswer(name, qtype, v.targetView, v.st.answersCtr, true)
}

// targetAnswer adds the routed A or AAAA records of a CDN hostname (cdn)
// or an app service (t) and counts the demand; false when there are none.
func (r *resolution) targetAnswer(name string, qtype uint16, t *targetView, answersCtr []prometheus.Counter, cdn bool) bool {
	v := r.v
	fam := 0
	if qtype == dns.TypeAAAA {
		fam = 1
	}
	cp := r.s.plan(v, t, clientKey(r.client), fam)
	r.clientDependent = r.clientDependent || cp.ClientDependent
	best := cp.Best
	if best < 0 {
		best = len(v.st.regions) // unknown
	}
	if r.dry == nil {
		v.st.demand[best].inc()
	}
	if len(cp.sets) == 0 {
		return false
	}
	i := cp.pick(r.s.rand)
	switch {
	case r.dry != nil:
		r.dry.note(v.st, cp, i)
	default:
		if cp.FailOpen && cdn {
			r.s.m.failOpen.Inc()
		}
		for _, ri := range cp.Choices[i] {
			if c := answersCtr[ri]; c != nil {
				c.Inc()
			}
		}
	}
	set := cp.sets[i]
	if qtype == dns.TypeA {
		return r.addrs(name, qtype, set.v4)
	}
	return r.addrs(name, qtype, set.v6)
}

// regionAnswer adds the edges of region ri, the healthy ones or all of
// them when none of the family is healthy: the name a child region's edges
// reach their parent (shield) region by, whatever the policy.
func (r *resolution) regionAnswer(name string, qtype uint16, ri int) bool {
	h, all := r.v.healthy[ri].v4, r.v.all[ri].v4
	if qtype == dns.TypeAAAA {
		h, all = r.v.healthy[ri].v6, r.v.all[ri].v6
	}
	if len(h) == 0 {
		h = all
	}
	return r.addrs(name, qtype, h)
}

// addrs appends one A or AAAA record per address; false when there are none.
func (r *resolution) addrs(name string, qtype uint16, ips []net.IP) bool {
	ttl := r.v.st.zone.ttl
	for _, ip := range ips {
		if qtype == dns.TypeA {
			r.m.Answer = append(r.m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: ip})
		} else {
			r.m.Answer = append(r.m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: ip})
		}
	}
	return len(ips) > 0
}

var _ dns.Handler = (*Server)(nil)
