package local

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/local/demo"
)

// Banner writes what runs where and three commands to try.
func (u *Up) Banner(w io.Writer) {
	l, c := u.lay, u.cfg
	fmt.Fprintf(w, "kubecdn up: %q on this machine (zone %s, policy %s)\n\n", c.Metadata.Name, c.Spec.Zone, c.Spec.Routing.Policy)
	row := func(name, mid, rest string) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-11s %-34s %s", name, mid, rest), " "))
	}
	switch l.OriginKind {
	case OriginDemo:
		row("origin", "http://"+l.OriginAddr, "demo: "+demo.Describe(u.demoLargeSize()))
		if u.video != nil {
			row("", "", u.video.Describe())
		}
	case OriginDir:
		row("origin", "http://"+l.OriginAddr, "files of "+l.OriginDir)
	default:
		row("origin", l.OriginURL, "")
	}
	row("dns", l.DNS+" (udp, tcp)", "admin http://"+l.DNSAdmin)
	u.mu.Lock()
	for _, r := range l.Regions {
		state := u.regions[r.Name].state
		var edges []string
		for _, e := range r.Edges {
			edges = append(edges, e.Listen)
		}
		mid := fmt.Sprintf("%-7s edge %s", state, strings.Join(edges, ","))
		rest := "admin http://" + r.Edges[0].Admin
		if len(r.Edges) > 1 {
			rest += ",..."
		}
		if r.Parent != "" {
			rest += "  parent " + r.Parent
		}
		switch {
		case state == StateClosed && u.as != nil:
			rest += "  (autoscale: opens under load, e.g. kubecdn load --from NETWORK; or kubecdn region open " + r.Name + ")"
		case state == StateClosed:
			rest += "  (autoscale; open it: kubecdn region up " + r.Name + ")"
		}
		row(r.Name, mid, rest)
	}
	u.mu.Unlock()
	row("status", "http://"+l.Control+"/", "")
	row("token", u.tokenFile, "")

	host := c.Spec.Hostnames[0]
	fmt.Fprintln(w, "\nTry:")
	dnsHost, dnsPort := splitAddr(l.DNS)
	dig := fmt.Sprintf("dig @%s -p %s %s", dnsHost, dnsPort, host)
	if cidr, region, ip := u.digExample(); cidr != "" {
		dig += " +subnet=" + cidr + " +short"
		if ip != "" {
			dig += fmt.Sprintf("    # %s (%s)", ip, region)
		}
	} else {
		dig += " +short"
	}
	fmt.Fprintln(w, "  "+dig)
	if first, ok := u.firstOpen(); ok {
		fmt.Fprintf(w, "  curl -sI -H 'Host: %s' http://%s/ | grep -i cache-status\n", host, first.Edges[0].Listen)
	}
	if first, ok := u.firstOpen(); ok && u.video != nil && u.video.Reason() == "" {
		// A browser sends the CDN's hostname only if told where it is.
		ip, port := splitAddr(first.Edges[0].Listen)
		fmt.Fprintf(w, "  chromium --host-resolver-rules='MAP %s %s' http://%s:%s/video/   # the video player\n", host, ip, host, port)
	}
	purge := "kubecdn purge"
	if l.Control != DefaultControl {
		purge += " --control http://" + l.Control
	}
	fmt.Fprintf(w, "  %s http://%s/\n", purge, host)
	fmt.Fprintln(w, "\nCtrl-C stops everything.")
}

func (u *Up) demoLargeSize() int64 {
	if u.o.DemoLargeSize > 0 {
		return u.o.DemoLargeSize
	}
	return demo.DefaultLargeSize
}

func splitAddr(a string) (host, port string) {
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return a, "53"
	}
	return ap.Addr().String(), fmt.Sprint(ap.Port())
}

func (u *Up) firstOpen() (RegionPlan, bool) {
	for _, r := range u.lay.Regions {
		if r.Initial == StateOpen {
			return r, true
		}
	}
	return RegionPlan{}, false
}

// digExample picks a client network of the file for the banner's dig: with
// the geo policy, the first network whose nearest open region is not the
// first open region (so the answer shows routing at work), with that
// region's first edge IP.
func (u *Up) digExample() (cidr, region, ip string) {
	nets := u.cfg.Spec.Routing.Geo.Networks
	if len(nets) == 0 {
		return "", "", ""
	}
	first, ok := u.firstOpen()
	if u.cfg.Spec.Routing.Policy != config.PolicyGeo || !ok {
		return nets[0].CIDR, "", ""
	}
	for _, n := range nets {
		if n.Location == nil {
			continue
		}
		if p, err := netip.ParsePrefix(n.CIDR); err != nil || !p.Addr().Is4() {
			continue
		}
		best, bestD := RegionPlan{}, math.Inf(1)
		for _, r := range u.lay.Regions {
			rc, _ := findRegion(u.cfg, r.Name)
			loc, ok := config.LocationOf(rc)
			if r.Initial != StateOpen || !ok {
				continue
			}
			if d := config.DistanceKm(*n.Location, loc); d < bestD {
				best, bestD = r, d
			}
		}
		if best.Name != "" && best.Name != first.Name {
			ap, _ := netip.ParseAddrPort(best.Edges[0].Listen)
			return n.CIDR, best.Name, ap.Addr().String()
		}
	}
	return nets[0].CIDR, "", ""
}

func findRegion(c *config.CDN, name string) (config.Region, bool) {
	for _, r := range c.AllRegions() {
		if r.Name == name {
			return r.Region, true
		}
	}
	return config.Region{}, false
}
