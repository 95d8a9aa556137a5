package local

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Region states, as the control API and ops.Target name them.
const (
	StateOpen   = "open"   // the region's edges run and the dns probes them
	StateDown   = "down"   // stopped by `kubecdn region down`; the dns sees them fail
	StateClosed = "closed" // an autoscale region not opened: no edges, not in the dns answers
)

// Defaults of the addresses up binds.
const (
	DefaultDNS        = "127.0.0.1:5353"
	DefaultDNSAdmin   = "127.0.0.1:9053"
	DefaultControl    = "127.0.0.1:9400"
	DefaultOriginAddr = "127.0.0.1:9000"
	defaultEdgePort   = 8080
	adminPortOffset   = 1010 // 8080 -> 9090
)

// EdgeAddrs are the two listeners of one edge.
type EdgeAddrs struct {
	Listen string // public HTTP, the address the dns answers with
	Admin  string // purge, metrics, health
}

// RegionPlan is one region as up runs it.
type RegionPlan struct {
	Name      string
	Autoscale bool
	// Parent is the shield region's name, if any.
	Parent string
	// Initial is the state at start: open for alwaysOn, closed for autoscale.
	Initial string
	Edges   []EdgeAddrs
}

// OriginKind says what up serves as the origin.
type OriginKind int

// The origins up can serve.
const (
	OriginExternal OriginKind = iota // the file's origin.url; up serves nothing
	OriginDemo                       // the embedded demo
	OriginDir                        // the file's origin.dir, served over HTTP
)

// Layout is every address up binds and what runs there; PlanLayout computes
// it from the file and the flags without touching the network.
type Layout struct {
	Regions  []RegionPlan
	DNS      string
	DNSAdmin string
	Control  string
	// OriginAddr is where up serves the origin (demo or dir); empty for an
	// external origin.
	OriginAddr string
	OriginKind OriginKind
	OriginDir  string
	// OriginURL is the URL the edges fetch misses from.
	OriginURL string
}

// PlanOptions are the flags that shape a Layout. Zero values get defaults.
type PlanOptions struct {
	DNS, DNSAdmin, Control, OriginAddr string
	// EdgesPerRegion is the number of edges of a region whose file entry
	// names none; if zero, 1. Edges of one region share its loopback IP and
	// take consecutive ports from 8080.
	EdgesPerRegion int
	// Demo serves the embedded demo origin at OriginAddr instead of the
	// file's origin.
	Demo bool
}

// PlanLayout assigns addresses: a region whose file entry lists edges uses
// them; the others get the next free loopback IP (127.0.0.2, .3, ...) in file
// order, port 8080 (and up, one per edge). Each edge's admin listener is on
// the same IP, port + 1010 (8080 -> 9090). Two listeners on one address are
// an error.
func PlanLayout(cfg *config.CDN, o PlanOptions) (Layout, error) {
	if o.DNS == "" {
		o.DNS = DefaultDNS
	}
	if o.DNSAdmin == "" {
		o.DNSAdmin = DefaultDNSAdmin
	}
	if o.Control == "" {
		o.Control = DefaultControl
	}
	if o.OriginAddr == "" {
		o.OriginAddr = DefaultOriginAddr
	}
	if o.EdgesPerRegion <= 0 {
		o.EdgesPerRegion = 1
	}
	if o.EdgesPerRegion > 16 {
		return Layout{}, fmt.Errorf("edges per region: %d is more than 16", o.EdgesPerRegion)
	}
	l := Layout{DNS: o.DNS, DNSAdmin: o.DNSAdmin, Control: o.Control}
	switch {
	case o.Demo:
		l.OriginKind, l.OriginAddr, l.OriginURL = OriginDemo, o.OriginAddr, "http://"+o.OriginAddr
	case cfg.Spec.Origin.Dir != "":
		l.OriginKind, l.OriginAddr, l.OriginURL = OriginDir, o.OriginAddr, "http://"+o.OriginAddr
		l.OriginDir = cfg.ResolvePath(cfg.Spec.Origin.Dir)
	default:
		l.OriginKind, l.OriginURL = OriginExternal, cfg.Spec.Origin.URL
	}

	regions := cfg.AllRegions()
	usedIP := map[netip.Addr]bool{}
	for _, r := range regions {
		for _, e := range r.Edges {
			if ap, err := config.ParseHostPort(e, 80); err == nil {
				usedIP[ap.Addr()] = true
			}
		}
	}
	next := netip.AddrFrom4([4]byte{127, 0, 0, 2})
	for _, r := range regions {
		rp := RegionPlan{Name: r.Name, Autoscale: r.Autoscale, Parent: r.Parent, Initial: StateOpen}
		if r.Autoscale {
			rp.Initial = StateClosed
		}
		if len(r.Edges) > 0 {
			for _, e := range r.Edges {
				ap, err := config.ParseHostPort(e, 80)
				if err != nil {
					return Layout{}, fmt.Errorf("%s.edges: %w", r.Path, err)
				}
				admin, err := adminFor(ap)
				if err != nil {
					return Layout{}, fmt.Errorf("%s.edges: %w", r.Path, err)
				}
				rp.Edges = append(rp.Edges, EdgeAddrs{Listen: ap.String(), Admin: admin})
			}
		} else {
			for usedIP[next] {
				next = next.Next()
			}
			if !next.IsLoopback() {
				return Layout{}, errors.New("out of loopback addresses for the regions")
			}
			for j := 0; j < o.EdgesPerRegion; j++ {
				ap := netip.AddrPortFrom(next, uint16(defaultEdgePort+j))
				admin, _ := adminFor(ap)
				rp.Edges = append(rp.Edges, EdgeAddrs{Listen: ap.String(), Admin: admin})
			}
			usedIP[next] = true
		}
		l.Regions = append(l.Regions, rp)
	}
	if err := l.checkDistinct(); err != nil {
		return Layout{}, err
	}
	return l, nil
}

func adminFor(ap netip.AddrPort) (string, error) {
	p := int(ap.Port()) + adminPortOffset
	if p > 65535 {
		p = int(ap.Port()) - adminPortOffset
	}
	if p <= 0 {
		return "", fmt.Errorf("%s: no port for the edge's admin listener (port %d±%d)", ap, ap.Port(), adminPortOffset)
	}
	return netip.AddrPortFrom(ap.Addr(), uint16(p)).String(), nil
}

// Listener is one address up binds, with what it is for.
type Listener struct {
	Addr string
	Net  string // tcp or udp
	Role string // e.g. "us-east-1 edge", "dns admin"
	// Region is set for an edge's listeners.
	Region string
	// Later is true for the listeners of a closed region: checked at start,
	// bound only when the region opens.
	Later bool
}

// Listeners lists every address of the layout in start order.
func (l Layout) Listeners() []Listener {
	var out []Listener
	if l.OriginAddr != "" {
		out = append(out, Listener{Addr: l.OriginAddr, Net: "tcp", Role: "origin"})
	}
	for _, r := range l.Regions {
		for j, e := range r.Edges {
			role := r.Name + " edge"
			if len(r.Edges) > 1 {
				role += " " + strconv.Itoa(j+1)
			}
			later := r.Initial == StateClosed
			out = append(out,
				Listener{Addr: e.Listen, Net: "tcp", Role: role, Region: r.Name, Later: later},
				Listener{Addr: e.Admin, Net: "tcp", Role: role + " admin", Region: r.Name, Later: later})
		}
	}
	out = append(out,
		Listener{Addr: l.DNS, Net: "udp", Role: "dns"},
		Listener{Addr: l.DNS, Net: "tcp", Role: "dns"},
		Listener{Addr: l.DNSAdmin, Net: "tcp", Role: "dns admin"},
		Listener{Addr: l.Control, Net: "tcp", Role: "control API and status page"})
	return out
}

func (l Layout) checkDistinct() error {
	seen := map[string]string{}
	var errs []error
	for _, ln := range l.Listeners() {
		k := ln.Net + " " + ln.Addr
		if prev, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("%s: used twice, by %s and by %s", ln.Addr, prev, ln.Role))
			continue
		}
		seen[k] = ln.Role
	}
	return errors.Join(errs...)
}

// Region returns the plan of the named region.
func (l Layout) Region(name string) (RegionPlan, bool) {
	for _, r := range l.Regions {
		if r.Name == name {
			return r, true
		}
	}
	return RegionPlan{}, false
}

// DNSConfig is the file as the dns sees it: every region that is not
// closed lists its edges (so the dns probes them, and sees a region that
// is down fail); closed regions list none (the dns still counts the demand
// nearest to them).
func (l Layout) DNSConfig(cfg *config.CDN, states map[string]string) *config.CDN {
	c := *cfg
	edgesOf := func(r config.Region) []string {
		if states[r.Name] == StateClosed {
			return nil
		}
		p, _ := l.Region(r.Name)
		var out []string
		for _, e := range p.Edges {
			out = append(out, e.Listen)
		}
		return out
	}
	c.Spec.Regions.AlwaysOn = make([]config.Region, len(cfg.Spec.Regions.AlwaysOn))
	for i, r := range cfg.Spec.Regions.AlwaysOn {
		r.Edges = edgesOf(r)
		c.Spec.Regions.AlwaysOn[i] = r
	}
	c.Spec.Regions.Autoscale = make([]config.Region, len(cfg.Spec.Regions.Autoscale))
	for i, r := range cfg.Spec.Regions.Autoscale {
		r.Edges = edgesOf(r)
		c.Spec.Regions.Autoscale[i] = r
	}
	return &c
}
