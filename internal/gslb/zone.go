package gslb

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
)

// zone is the static part of what the server answers: SOA, NS, glue and
// the file's static records, the routed names, plus which names exist (for
// NXDOMAIN vs NODATA).
type zone struct {
	origin  string // lower-case, fully qualified
	soa     *dns.SOA
	records map[string]map[uint16][]dns.RR // owner (lower fqdn) -> type -> RRset
	routed  map[string]routed              // names answered from health state (lower fqdn)
	exists  map[string]bool                // every name with data, and empty non-terminals
	ttl     uint32                         // A/AAAA answer TTL of the routed names
}

// routedKind is what a routed name answers.
type routedKind uint8

const (
	// routedHost: a CDN hostname, routed among the regions' edges.
	routedHost routedKind = iota
	// routedService: an app service hostname, routed among the regions'
	// endpoints for it (idx: index in AppServices order).
	routedService
	// routedRegion: <region>.edges.<zone>, that region's edges whatever the
	// policy (idx: index in AllRegions order).
	routedRegion
)

type routed struct {
	kind routedKind
	idx  int
}

// RegionEdgesName is the name that answers a region's edges,
// "<region>.edges.<zone>." (lower case, fully qualified).
func RegionEdgesName(region, zone string) string {
	return dns.Fqdn(strings.ToLower(config.EdgesName(region, zone)))
}

func buildZone(c *config.CDN, now time.Time) (*zone, error) {
	origin := dns.Fqdn(strings.ToLower(c.Spec.Zone))
	z := &zone{
		origin:  origin,
		records: map[string]map[uint16][]dns.RR{},
		routed:  map[string]routed{},
		exists:  map[string]bool{},
		ttl:     uint32(c.Spec.Routing.TTL.D() / time.Second),
	}
	defTTL := uint32(c.Spec.DNS.TTL.D() / time.Second)
	hdr := func(name string, t uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}

	type nsT struct {
		name  string
		addrs []netip.Addr
	}
	var nss []nsT
	for _, ns := range c.Spec.DNS.Nameservers {
		n := nsT{name: dns.Fqdn(strings.ToLower(ns.Name))}
		for _, a := range ns.Addresses {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("nameserver %s: %w", ns.Name, err)
			}
			n.addrs = append(n.addrs, ip.Unmap())
		}
		nss = append(nss, n)
	}
	if len(nss) == 0 {
		for _, r := range c.AllRegions() {
			if r.DNS == "" {
				continue
			}
			ap, err := config.ParseHostPort(r.DNS, 53)
			if err != nil {
				return nil, fmt.Errorf("%s.dns: %w", r.Path, err)
			}
			nss = append(nss, nsT{name: "ns-" + r.Name + "." + origin, addrs: []netip.Addr{ap.Addr()}})
		}
	}
	if len(nss) == 0 {
		nss = []nsT{{name: "ns1." + origin}}
	}
	for _, ns := range nss {
		z.add(&dns.NS{Hdr: hdr(origin, dns.TypeNS, defTTL), Ns: ns.name})
		if !dns.IsSubDomain(origin, ns.name) {
			continue
		}
		z.exists[ns.name] = true
		for _, a := range ns.addrs {
			z.add(addrRR(ns.name, a, defTTL))
		}
	}
	s := c.Spec.DNS.SOA
	mname := nss[0].name
	if s.Mname != "" {
		mname = dns.Fqdn(strings.ToLower(s.Mname))
	}
	rname := "hostmaster." + origin
	if s.Email != "" {
		e := strings.ToLower(s.Email)
		if user, dom, ok := strings.Cut(e, "@"); ok {
			e = strings.ReplaceAll(user, ".", `\.`) + "." + dom
		}
		rname = dns.Fqdn(e)
	}
	secs := func(d config.Duration) uint32 { return uint32(d.D() / time.Second) }
	z.soa = &dns.SOA{
		Hdr: hdr(origin, dns.TypeSOA, defTTL), Ns: mname, Mbox: rname,
		Serial:  uint32(now.Unix()),
		Refresh: secs(s.Refresh), Retry: secs(s.Retry), Expire: secs(s.Expire), Minttl: secs(s.Minimum),
	}
	z.add(z.soa)
	for i, r := range c.Spec.DNS.Records {
		rr, err := c.ParseRecord(r)
		if err != nil {
			return nil, fmt.Errorf("spec.dns.records[%d]: %w", i, err)
		}
		rr.Header().Name = strings.ToLower(rr.Header().Name)
		z.add(rr)
	}
	// routed names; on a clash the earlier kind wins (validation rejects
	// clashes of hostnames; region names are reserved under edges.<zone>)
	addRouted := func(n string, r routed) {
		if _, dup := z.routed[n]; dup || !dns.IsSubDomain(origin, n) {
			return
		}
		z.routed[n] = r
		z.exists[n] = true
	}
	for _, h := range c.Spec.Hostnames {
		addRouted(dns.Fqdn(strings.ToLower(h)), routed{kind: routedHost})
	}
	for i, a := range c.AppServices() {
		addRouted(normHost(a.Hostname)+".", routed{kind: routedService, idx: i})
	}
	for i, r := range c.AllRegions() {
		if len(r.Edges) > 0 {
			addRouted(RegionEdgesName(r.Name, origin), routed{kind: routedRegion, idx: i})
		}
	}
	// every ancestor of a name with data exists (empty non-terminals)
	for n := range z.exists {
		for p := n; dns.IsSubDomain(origin, p) && p != origin; {
			z.exists[p] = true
			i, end := dns.NextLabel(p, 0)
			if end {
				break
			}
			p = p[i:]
		}
	}
	z.exists[origin] = true
	return z, nil
}

func (z *zone) add(rr dns.RR) {
	h := rr.Header()
	m := z.records[h.Name]
	if m == nil {
		m = map[uint16][]dns.RR{}
		z.records[h.Name] = m
	}
	m[h.Rrtype] = append(m[h.Rrtype], rr)
	z.exists[h.Name] = true
}

// negSOA is the SOA for the authority section of negative answers, its TTL
// capped by the negative caching TTL (RFC 2308).
func (z *zone) negSOA() dns.RR {
	s := *z.soa
	s.Hdr.Ttl = min(s.Hdr.Ttl, s.Minttl)
	return &s
}

func addrRR(name string, a netip.Addr, ttl uint32) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IP(a.AsSlice())}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.IP(a.AsSlice())}
}
