package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/render"
)

// EdgeHostPort and friends are the public ports of the load balancers
// render makes.
const (
	edgePublicService = "kubecdn-edge-public"
	dnsPublicService  = "kubecdn-dns"
	edgePublicPort    = 80
	dnsPublicPort     = 53
)

// Desired is what the CDN publishes in an external DNS provider, from the
// file and each region's load-balancer addresses: every hostname with one
// target per region that has edges, "<region>.edges.<zone>" per region, and
// every app service hostname with one target per region it runs in.
// Regions missing from addrs (not deployed, removed, no address yet) are
// left out.
func Desired(cfg *config.CDN, addrs map[string]RegionState) publish.Desired {
	d := publish.Desired{Zone: cfg.Spec.Zone, Owner: cfg.Owner()}
	ttl := cfg.Spec.Routing.TTL.D()
	policy := cfg.Spec.Routing.Policy
	order := failoverOrder(cfg)
	target := func(r config.RegionRef, as []Address, h publish.Health) (publish.Target, bool) {
		t := publish.Target{Region: r.Name, Provider: r.Provider, Weight: 1, Order: order[r.Name], Health: h}
		if w, ok := cfg.Spec.Routing.Weights[r.Name]; ok {
			t.Weight = w
		}
		if l, ok := config.LocationOf(r.Region); ok {
			t.Location = &l
		}
		for _, a := range as {
			if a.Hostname != "" {
				t.Hostname, t.Addresses = a.Hostname, nil
				break
			}
			if ip, err := netip.ParseAddr(a.IP); err == nil && !slices.Contains(t.Addresses, ip.Unmap()) {
				t.Addresses = append(t.Addresses, ip.Unmap())
			}
		}
		return t, t.Hostname != "" || len(t.Addresses) > 0
	}
	regions := cfg.AllRegions()
	for _, h := range cfg.Spec.Hostnames {
		n := publish.Name{FQDN: h, TTL: ttl, Policy: policy}
		for _, r := range regions {
			st, ok := addrs[r.Name]
			if !ok {
				continue
			}
			if t, ok := target(r, st.Edges, publish.Health{Protocol: "http", Port: edgePublicPort, Path: config.HealthPath, Host: h}); ok {
				n.Targets = append(n.Targets, t)
			}
		}
		d.Names = append(d.Names, n)
	}
	for _, r := range regions {
		st, ok := addrs[r.Name]
		if !ok {
			continue
		}
		if t, ok := target(r, st.Edges, publish.Health{}); ok {
			t.Order, t.Weight = 0, 1
			d.Names = append(d.Names, publish.Name{FQDN: config.EdgesName(r.Name, cfg.Spec.Zone), TTL: ttl, Policy: config.PolicyAll, Targets: []publish.Target{t}})
		}
	}
	for _, s := range cfg.AppServices() {
		n := publish.Name{FQDN: s.Hostname, TTL: ttl, Policy: policy}
		for _, r := range regions {
			st, ok := addrs[r.Name]
			if !ok || !s.InRegion(r.Name) {
				continue
			}
			as := st.Endpoints[s.Hostname]
			if len(as) == 0 {
				continue
			}
			h := publish.Health{Protocol: s.Health.Protocol, Port: uint16(as[0].Port), Host: s.Hostname}
			if h.Protocol == "http" {
				h.Path = s.Health.Path
			}
			if t, ok := target(r, as, h); ok {
				n.Targets = append(n.Targets, t)
			}
		}
		d.Names = append(d.Names, n)
	}
	return d
}

// failoverOrder is each region's position for the failover policy: the
// file's routing.failover list first, then the rest in file order.
func failoverOrder(cfg *config.CDN) map[string]int {
	out := map[string]int{}
	for _, n := range cfg.Spec.Routing.Failover {
		if _, ok := out[n]; !ok {
			out[n] = len(out)
		}
	}
	for _, r := range cfg.AllRegions() {
		if _, ok := out[r.Name]; !ok {
			out[r.Name] = len(out)
		}
	}
	return out
}

// Resolver looks up the addresses of a load balancer that has a host name
// (AWS's do) for kubecdn's own dns, which answers with IPs.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// WithAddresses returns a copy of cfg whose regions carry the addresses in
// addrs: edges (port 80), the dns (port 53) and app endpoints. It is the
// file every region's kubecdn dns gets (provider kubecdn). Regions not in
// addrs keep what the file says (nothing, unless the user listed static
// addresses), so the dns does not answer an undeployed region. Host names are
// resolved with res; one that does not resolve is left out and reported.
func WithAddresses(ctx context.Context, cfg *config.CDN, addrs map[string]RegionState, res Resolver) (*config.CDN, []error) {
	var errs []error
	hostPorts := func(as []Address, def int32) []string {
		var out []string
		for _, a := range as {
			port := a.Port
			if port == 0 {
				port = def
			}
			var ips []netip.Addr
			if a.Hostname != "" {
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				found, err := res.LookupNetIP(lctx, "ip", a.Hostname)
				cancel()
				if err != nil {
					errs = append(errs, fmt.Errorf("resolve load balancer %s: %w", a.Hostname, err))
				}
				ips = found
			} else if ip, err := netip.ParseAddr(a.IP); err == nil {
				ips = []netip.Addr{ip}
			}
			for _, ip := range ips {
				hp := net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(int(port)))
				if !slices.Contains(out, hp) {
					out = append(out, hp)
				}
			}
		}
		return out
	}
	c := *cfg
	fill := func(rs []config.Region) []config.Region {
		out := slices.Clone(rs)
		for i := range out {
			r := &out[i]
			st, ok := addrs[r.Name]
			if !ok {
				continue // static addresses from the file, if any, stay
			}
			r.Edges, r.DNS, r.Endpoints = nil, "", nil
			r.Edges = hostPorts(st.Edges, edgePublicPort)
			if d := hostPorts(st.DNS, dnsPublicPort); len(d) > 0 {
				r.DNS = d[0]
			}
			for h, as := range st.Endpoints {
				if hp := hostPorts(as, 0); len(hp) > 0 {
					if r.Endpoints == nil {
						r.Endpoints = map[string][]string{}
					}
					r.Endpoints[h] = hp
				}
			}
		}
		return out
	}
	c.Spec.Regions.AlwaysOn = fill(cfg.Spec.Regions.AlwaysOn)
	c.Spec.Regions.Autoscale = fill(cfg.Spec.Regions.Autoscale)
	return &c, errs
}

// publishDNS gives DNS the addresses of the regions in addrs: every
// region's kubecdn dns gets them in its file (whatever the provider, so the
// dns in each region can always answer), and an external publisher, if the
// file names one, gets one record set per region.
func (d *deployer) publishDNS(ctx context.Context, active []config.RegionRef, results map[string]*RegionResult, addrs map[string]RegionState) ([]publish.Change, error) {
	var errs []error
	updated := 0
	var targets []string
	for _, r := range active {
		// A region whose edges are down is reached all the same: its dns
		// must stop answering with them too.
		if rr := results[r.Name]; d.clusters[r.Name] != nil && (rr.Err == nil || rr.Addresses != nil || rr.EdgesDown) {
			targets = append(targets, r.Name)
		}
	}
	var out map[string][]render.Object
	if len(targets) > 0 {
		ro := d.opts.Render
		ro.Regions = targets
		var err error
		if out, err = render.Render(d.addressed(ctx, addrs), ro); err != nil {
			return nil, err
		}
	}
	for _, name := range targets {
		c := d.clusters[name]
		for _, obj := range out[name] {
			if obj.GetObjectKind().GroupVersionKind().Kind != "ConfigMap" || obj.GetName() != render.ConfigName {
				continue
			}
			o, err := render.Unstructured(obj)
			if err != nil {
				return nil, err
			}
			d.setLabels(o, name)
			live, err := c.Get(ctx, o, "default")
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			applied, err := c.Apply(ctx, o, "default", d.opts.DryRun)
			if err != nil && d.opts.DryRun && live == nil && isNamespaceMissing(err) {
				updated++ // would be created with the namespace
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			if live == nil || !Same(live, applied) {
				updated++
			}
		}
	}
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	d.printf("dns", "kubecdn: %s", dnsLine(updated, names, d.opts.DryRun))
	if d.opts.Publisher == nil {
		return nil, errors.Join(errs...)
	}
	changes, err := d.opts.Publisher.Publish(ctx, Desired(d.cfg, addrs), d.opts.DryRun)
	for _, c := range changes {
		d.printf("dns", "%s", c)
	}
	verb := "made"
	if d.opts.DryRun {
		verb = "would be made"
	}
	if err != nil {
		d.printf("dns", "%s: %v", d.cfg.Spec.Publish.Provider, err)
		errs = append(errs, err)
	} else {
		d.printf("dns", "%s: %d record changes %s", d.cfg.Spec.Publish.Provider, len(changes), verb)
	}
	return changes, errors.Join(errs...)
}

// dnsLine says what publishing to kubecdn's own dns did: how many regions'
// dns got new addresses, and which regions are in DNS; in a dry run, what
// it would do, in words that do not claim it was done.
func dnsLine(updated int, inDNS []string, dryRun bool) string {
	whose := "regions'"
	if updated == 1 {
		whose = "region's"
	}
	given, in, none := "given new addresses", "regions in DNS", "no region in DNS"
	if dryRun {
		given, in, none = "would be given new addresses", "regions that would be in DNS", "no region would be in DNS"
	}
	listed := none
	if len(inDNS) > 0 {
		listed = in + ": " + strings.Join(inDNS, ", ")
	}
	return fmt.Sprintf("%d %s dns %s (%s)", updated, whose, given, listed)
}
