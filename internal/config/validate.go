package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// SetDefaults fills the documented defaults of zero fields.
func (c *CDN) SetDefaults() {
	s := &c.Spec
	s.Zone = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s.Zone)), ".")
	if s.Routing.Policy == "" {
		s.Routing.Policy = PolicyLatency
	}
	if s.Routing.TTL == 0 {
		s.Routing.TTL = Duration(30 * time.Second)
	}
	h := &s.Routing.Health
	if h.Interval == 0 {
		h.Interval = Duration(time.Second)
	}
	if h.Timeout == 0 {
		h.Timeout = Duration(500 * time.Millisecond)
	}
	if h.FailAfter == 0 {
		h.FailAfter = 3
	}
	if h.PassAfter == 0 {
		h.PassAfter = 2
	}
	d := &s.DNS
	if d.TTL == 0 {
		d.TTL = Duration(time.Hour)
	}
	if d.SOA.Refresh == 0 {
		d.SOA.Refresh = Duration(time.Hour)
	}
	if d.SOA.Retry == 0 {
		d.SOA.Retry = Duration(10 * time.Minute)
	}
	if d.SOA.Expire == 0 {
		d.SOA.Expire = Duration(7 * 24 * time.Hour)
	}
	if d.SOA.Minimum == 0 {
		d.SOA.Minimum = Duration(30 * time.Second)
	}
	if d.RRL.Slip == nil {
		two := 2
		d.RRL.Slip = &two
	}
	c.setPublishDefaults()
	c.setInfraDefaults()
}

// ResolvePath resolves a path from the file against BaseDir.
func (c *CDN) ResolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) || c.BaseDir == "" {
		return p
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return filepath.Join(c.BaseDir, p)
}

var (
	regionNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	staticTypes  = []string{"A", "AAAA", "CNAME", "TXT", "CAA", "MX", "SRV"}
)

// Validate checks the whole file (after SetDefaults) and returns every
// problem as Errors, or nil.
func (c *CDN) Validate() error {
	v := &validator{}
	c.validate(v)
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

type validator struct{ errs Errors }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func fieldIdx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func (c *CDN) validate(v *validator) {
	if c.APIVersion != APIVersion {
		v.add("apiVersion", "must be %q, got %q", APIVersion, c.APIVersion)
	}
	if c.Kind != Kind {
		v.add("kind", "must be %q, got %q", Kind, c.Kind)
	}
	if c.Metadata.Name == "" {
		v.add("metadata.name", "required")
	} else if !regionNameRe.MatchString(c.Metadata.Name) {
		v.add("metadata.name", "%q must be lowercase letters, digits and '-'", c.Metadata.Name)
	}
	s := &c.Spec
	zoneOK := false
	if s.Zone == "" {
		v.add("spec.zone", "required")
	} else if _, ok := dns.IsDomainName(s.Zone); !ok || strings.Count(s.Zone, ".") < 1 || strings.ContainsAny(s.Zone, " *") {
		v.add("spec.zone", "%q is not a domain name", s.Zone)
	} else {
		zoneOK = true
	}
	if len(s.Hostnames) == 0 {
		v.add("spec.hostnames", "at least one hostname is required")
	}
	seenHost := map[string]int{}
	for i, h := range s.Hostnames {
		f := fieldIdx("spec.hostnames", i)
		n := strings.ToLower(strings.TrimSuffix(h, "."))
		if _, ok := dns.IsDomainName(n); !ok || n == "" || strings.ContainsAny(n, " *") {
			v.add(f, "%q is not a host name", h)
			continue
		}
		if j, dup := seenHost[n]; dup {
			v.add(f, "duplicate hostname %q (also spec.hostnames[%d])", h, j)
		}
		seenHost[n] = i
		if zoneOK && !dns.IsSubDomain(s.Zone+".", n+".") {
			v.add(f, "%q is not inside spec.zone %q", h, s.Zone)
		}
	}
	switch {
	case s.Origin.URL != "" && s.Origin.Dir != "":
		v.add("spec.origin", "set url or dir, not both")
	case s.Origin.URL == "" && s.Origin.Dir == "":
		v.add("spec.origin", "one of url or dir is required")
	case s.Origin.URL != "":
		u, err := url.Parse(s.Origin.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("spec.origin.url", "%q must be an http:// or https:// URL", s.Origin.URL)
		}
	}
	if s.Cache.Memory < 0 {
		v.add("spec.cache.memory", "must not be negative")
	}
	if s.Cache.Disk.Size > 0 && s.Cache.Disk.Path == "" {
		v.add("spec.cache.disk.path", "required when spec.cache.disk.size is set")
	}
	v.errs = append(v.errs, s.Cache.Video.Validate("spec.cache.video")...)

	regions := c.AllRegions()
	names := map[string]string{} // name -> path
	for _, r := range regions {
		c.validateRegion(v, r, names)
	}
	if len(s.Regions.AlwaysOn) == 0 {
		v.add("spec.regions.alwaysOn", "at least one always-on region is required")
	}
	// parents: must exist, no cycles
	parent := map[string]string{}
	for _, r := range regions {
		if r.Parent == "" {
			continue
		}
		switch _, ok := names[r.Parent]; {
		case r.Parent == r.Name:
			v.add(r.Path+".parent", "a region cannot be its own parent")
		case !ok:
			v.add(r.Path+".parent", "unknown region %q", r.Parent)
		default:
			parent[r.Name] = r.Parent
		}
	}
	for _, r := range regions {
		seen := map[string]bool{r.Name: true}
		for p := parent[r.Name]; p != ""; p = parent[p] {
			if seen[p] {
				v.add(r.Path+".parent", "parent chain of %q has a cycle", r.Name)
				break
			}
			seen[p] = true
		}
	}
	c.validateRouting(v, regions, names)
	c.validateDNS(v, zoneOK)
	c.validatePublish(v, zoneOK, names)
	c.validateAutoscale(v)
	c.validateInfra(v)
}

func (c *CDN) validateRegion(v *validator, r RegionRef, names map[string]string) {
	switch {
	case r.Name == "":
		v.add(r.Path+".name", "required")
	case !regionNameRe.MatchString(r.Name):
		v.add(r.Path+".name", "%q must be lowercase letters, digits and '-'", r.Name)
	default:
		if prev, dup := names[r.Name]; dup {
			v.add(r.Path+".name", "duplicate region %q (also %s)", r.Name, prev)
		} else {
			names[r.Name] = r.Path
		}
	}
	if r.Provider == "" {
		v.add(r.Path+".provider", "required (one of %s)", strings.Join(Providers, ", "))
	} else if !slices.Contains(Providers, r.Provider) {
		v.add(r.Path+".provider", "unknown provider %q (want one of %s)", r.Provider, strings.Join(Providers, ", "))
	}
	if r.Location != nil {
		validateLocation(v, r.Path+".location", *r.Location)
	}
	p := c.Spec.Routing.Policy
	if _, ok := LocationOf(r.Region); !ok && (p == PolicyGeo || p == PolicyLatency) && r.Name != "" {
		v.add(r.Path+".location", "required: %q is not a well-known cloud region and policy %q needs coordinates", r.Name, p)
	}
	seen := map[string]int{}
	for i, e := range r.Edges {
		f := fieldIdx(r.Path+".edges", i)
		if _, err := ParseHostPort(e, 80); err != nil {
			v.add(f, "%v", err)
			continue
		}
		if j, dup := seen[e]; dup {
			v.add(f, "duplicate edge %q (also edges[%d])", e, j)
		}
		seen[e] = i
	}
	if r.DNS != "" {
		if _, err := ParseHostPort(r.DNS, 53); err != nil {
			v.add(r.Path+".dns", "%v", err)
		}
	}
}

// ParseHostPort parses "ip:port" or a bare IP (with defPort).
func ParseHostPort(s string, defPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("%q: port must not be 0", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), defPort), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err == nil {
		if _, perr := strconv.ParseUint(port, 10, 16); perr == nil && net.ParseIP(host) == nil {
			return netip.AddrPort{}, fmt.Errorf("%q: host must be an IP address (the dns answers with it)", s)
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%q is not an ip:port address", s)
}

func validateLocation(v *validator, f string, l Location) {
	if l.Lat < -90 || l.Lat > 90 {
		v.add(f+".lat", "%v is out of range [-90, 90]", l.Lat)
	}
	if l.Lon < -180 || l.Lon > 180 {
		v.add(f+".lon", "%v is out of range [-180, 180]", l.Lon)
	}
}

func (c *CDN) validateRouting(v *validator, regions []RegionRef, names map[string]string) {
	r := &c.Spec.Routing
	if !slices.Contains(Policies, r.Policy) {
		ps := make([]string, len(Policies))
		for i, p := range Policies {
			ps[i] = string(p)
		}
		v.add("spec.routing.policy", "unknown policy %q (want one of %s)", r.Policy, strings.Join(ps, ", "))
	}
	if r.TTL < 0 || r.TTL.D() > 24*time.Hour {
		v.add("spec.routing.ttl", "must be between 0s and 24h")
	} else if r.TTL.D()%time.Second != 0 {
		v.add("spec.routing.ttl", "must be whole seconds")
	}
	h := r.Health
	if h.Interval < 0 || (h.Interval > 0 && h.Interval.D() < 10*time.Millisecond) {
		v.add("spec.routing.health.interval", "must be at least 10ms")
	}
	if h.Timeout < 0 {
		v.add("spec.routing.health.timeout", "must be positive")
	} else if h.Timeout > h.Interval {
		v.add("spec.routing.health.timeout", "%s must not exceed interval %s", h.Timeout.D(), h.Interval.D())
	}
	if h.FailAfter < 1 {
		v.add("spec.routing.health.failAfter", "must be at least 1")
	}
	if h.PassAfter < 1 {
		v.add("spec.routing.health.passAfter", "must be at least 1")
	}
	if r.Geo.Database != "" {
		if _, err := os.Stat(c.ResolvePath(r.Geo.Database)); err != nil {
			v.add("spec.routing.geo.database", "%q: %v", r.Geo.Database, unwrapPathErr(err))
		}
	}
	seenNet := map[netip.Prefix]int{}
	for i, n := range r.Geo.Networks {
		f := fieldIdx("spec.routing.geo.networks", i)
		p, err := netip.ParsePrefix(n.CIDR)
		if err != nil {
			v.add(f+".cidr", "%q is not a CIDR such as 192.0.2.0/24", n.CIDR)
		} else {
			p = p.Masked()
			if j, dup := seenNet[p]; dup {
				v.add(f+".cidr", "duplicate network %s (also networks[%d])", p, j)
			}
			seenNet[p] = i
		}
		if n.Location == nil {
			v.add(f+".location", "required")
		} else {
			validateLocation(v, f+".location", *n.Location)
		}
	}
	positive := 0
	for _, k := range sortedKeysInt(r.Weights) {
		if _, ok := names[k]; !ok {
			v.add("spec.routing.weights."+k, "unknown region %q", k)
		}
		if r.Weights[k] < 0 {
			v.add("spec.routing.weights."+k, "must not be negative")
		}
		if r.Weights[k] > 0 {
			positive++
		}
	}
	if r.Policy == PolicyWeighted && len(r.Weights) > 0 && positive == 0 {
		v.add("spec.routing.weights", "at least one weight must be positive")
	}
	seen := map[string]int{}
	for i, n := range r.Failover {
		f := fieldIdx("spec.routing.failover", i)
		if _, ok := names[n]; !ok {
			v.add(f, "unknown region %q", n)
		}
		if j, dup := seen[n]; dup {
			v.add(f, "duplicate region %q (also failover[%d])", n, j)
		}
		seen[n] = i
	}
	if r.Explore < 0 || r.Explore > 0.5 {
		v.add("spec.routing.explore", "%v must be between 0 and 0.5", r.Explore)
	}
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func sortedKeysInt(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// AbsName turns a record or nameserver name from the file into a lower-case
// fully-qualified name: "@" and "" are the apex, "www" is www.<zone>., and a
// name ending in "." is already absolute.
func AbsName(name, zone string) string {
	n := strings.TrimSpace(name)
	switch {
	case n == "" || n == "@":
		return dns.Fqdn(zone)
	case strings.HasSuffix(n, "."):
		return strings.ToLower(n)
	case dns.IsSubDomain(zone+".", strings.ToLower(n)+"."):
		return strings.ToLower(n) + "."
	default:
		return strings.ToLower(n) + "." + dns.Fqdn(zone)
	}
}

// ParseRecord turns a static record into a miekg/dns RR.
func (c *CDN) ParseRecord(r Record) (dns.RR, error) {
	t := strings.ToUpper(strings.TrimSpace(r.Type))
	if !slices.Contains(staticTypes, t) {
		return nil, fmt.Errorf("type %q not supported (want one of %s)", r.Type, strings.Join(staticTypes, ", "))
	}
	val := strings.TrimSpace(r.Value)
	if val == "" {
		return nil, fmt.Errorf("value is required")
	}
	if t == "TXT" && !strings.HasPrefix(val, `"`) {
		val = strconv.Quote(val)
	}
	ttl := r.TTL.D()
	if ttl == 0 {
		ttl = c.Spec.DNS.TTL.D()
	}
	text := fmt.Sprintf("$ORIGIN %s\n%s %d IN %s %s", dns.Fqdn(c.Spec.Zone), AbsName(r.Name, c.Spec.Zone), int64(ttl/time.Second), t, val)
	rr, err := dns.NewRR(text)
	if err != nil {
		return nil, fmt.Errorf("bad %s value %q: %w", t, r.Value, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("empty record")
	}
	return rr, nil
}

func (c *CDN) validateDNS(v *validator, zoneOK bool) {
	d := &c.Spec.DNS
	zone := c.Spec.Zone
	if d.TTL < 0 || d.TTL.D()%time.Second != 0 {
		v.add("spec.dns.ttl", "must be whole seconds, not negative")
	}
	for i, ns := range d.Nameservers {
		f := fieldIdx("spec.dns.nameservers", i)
		n := strings.TrimSuffix(ns.Name, ".")
		if _, ok := dns.IsDomainName(n); !ok || n == "" || strings.Count(n, ".") < 1 {
			v.add(f+".name", "%q is not a host name", ns.Name)
			continue
		}
		inZone := zoneOK && dns.IsSubDomain(zone+".", strings.ToLower(n)+".")
		if inZone && len(ns.Addresses) == 0 {
			v.add(f+".addresses", "required: %q is inside the zone and needs glue", ns.Name)
		}
		for j, a := range ns.Addresses {
			if _, err := netip.ParseAddr(a); err != nil {
				v.add(fieldIdx(f+".addresses", j), "%q is not an IP address", a)
			}
		}
	}
	if d.SOA.Email != "" && !strings.Contains(d.SOA.Email, "@") && strings.Count(d.SOA.Email, ".") < 1 {
		v.add("spec.dns.soa.email", "%q is not a mailbox", d.SOA.Email)
	}
	if !zoneOK {
		return
	}
	cnames := map[string]int{}
	owners := map[string]int{}
	hosts := map[string]bool{dns.Fqdn(zone): true}
	for _, h := range c.Spec.Hostnames {
		hosts[strings.ToLower(dns.Fqdn(h))] = true
	}
	for i, r := range d.Records {
		f := fieldIdx("spec.dns.records", i)
		if r.TTL < 0 || r.TTL.D()%time.Second != 0 {
			v.add(f+".ttl", "must be whole seconds, not negative")
		}
		rr, err := c.ParseRecord(r)
		if err != nil {
			v.add(f, "%v", err)
			continue
		}
		owner := strings.ToLower(rr.Header().Name)
		if !dns.IsSubDomain(dns.Fqdn(zone), owner) {
			v.add(f+".name", "%q is not inside zone %q", r.Name, zone)
			continue
		}
		if rr.Header().Rrtype == dns.TypeCNAME {
			if hosts[owner] {
				v.add(f+".name", "a CNAME cannot be at the apex or at a CDN hostname (%s)", owner)
			}
			if j, ok := owners[owner]; ok {
				v.add(f+".name", "a CNAME cannot sit beside other records at %s (records[%d])", owner, j)
			}
			cnames[owner] = i
		} else {
			if j, ok := cnames[owner]; ok {
				v.add(f+".name", "%s already has a CNAME (records[%d])", owner, j)
			}
			if hosts[owner] && owner != dns.Fqdn(zone) && (rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA) {
				v.add(f+".name", "%s is a CDN hostname; its A/AAAA records come from the regions", owner)
			}
		}
		if _, ok := owners[owner]; !ok {
			owners[owner] = i
		}
	}
	if d.RRL.Rate < 0 {
		v.add("spec.dns.rrl.rate", "must not be negative")
	}
	if d.RRL.Slip != nil && (*d.RRL.Slip < 0 || *d.RRL.Slip > 10) {
		v.add("spec.dns.rrl.slip", "must be between 0 and 10")
	}
}
