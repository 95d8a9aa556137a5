package route53

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// The routing policies of a record set, as this package names them.
const (
	simple     = ""
	weighted   = "weighted"
	latency    = "latency"
	geoloc     = "geolocation"
	failover   = "failover"
	multivalue = "multivalue"
)

// defaultTTL is used for a Name without a TTL, ownershipTTL for the
// ownership TXT records.
const (
	defaultTTL   = 60
	ownershipTTL = 300
)

// rset is a record set in a form that compares: names lower case without
// the trailing dot, values sorted.
type rset struct {
	Name, Type, SetID string
	Policy            string
	TTL               int64
	Values            []string
	Weight            int64
	Region            string
	Continent         string
	Country           string
	Failover          string
	HealthCheckID     string
	Alias             bool

	// target is the region whose health check the set carries (desired
	// sets only); raw is the set as listed (existing sets only), which a
	// DELETE must repeat exactly.
	target string
	raw    *types.ResourceRecordSet
}

func (r rset) key() string { return r.Name + "|" + r.Type + "|" + r.SetID }

func (r rset) equal(o rset) bool {
	return r.Name == o.Name && r.Type == o.Type && r.SetID == o.SetID && r.Policy == o.Policy && r.TTL == o.TTL &&
		slices.Equal(r.Values, o.Values) && r.Weight == o.Weight && r.Region == o.Region && r.Continent == o.Continent &&
		r.Country == o.Country && r.Failover == o.Failover && r.HealthCheckID == o.HealthCheckID && r.Alias == o.Alias
}

// detail describes a set for a publish.Change; it leaves out the health
// check's ID so that a dry run reads the same as the real one.
func (r rset) detail() string {
	var b strings.Builder
	if r.Alias {
		b.WriteString("alias")
	} else {
		b.WriteString(strings.Join(r.Values, ","))
	}
	fmt.Fprintf(&b, " ttl=%d", r.TTL)
	switch r.Policy {
	case weighted:
		fmt.Fprintf(&b, " weighted weight=%d", r.Weight)
	case latency:
		b.WriteString(" latency region=" + r.Region)
	case geoloc:
		if r.Continent != "" {
			b.WriteString(" geolocation continent=" + r.Continent)
		} else {
			b.WriteString(" geolocation country=" + r.Country)
		}
	case failover:
		b.WriteString(" failover " + r.Failover)
	case multivalue:
		b.WriteString(" multivalue")
	}
	if r.HealthCheckID != "" {
		b.WriteString(" health-checked")
	}
	return b.String()
}

// decodeName turns a listed name (trailing dot, \ddd escapes) into the
// form of publish.Name.FQDN.
func decodeName(n string) string {
	var b strings.Builder
	for i := 0; i < len(n); i++ {
		if n[i] == '\\' && i+4 <= len(n) {
			if v, err := strconv.ParseUint(n[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(n[i])
	}
	return strings.TrimSuffix(strings.ToLower(b.String()), ".")
}

func fromSDK(raw types.ResourceRecordSet) rset {
	r := rset{
		Name:          decodeName(aws.ToString(raw.Name)),
		Type:          string(raw.Type),
		SetID:         aws.ToString(raw.SetIdentifier),
		TTL:           aws.ToInt64(raw.TTL),
		Region:        string(raw.Region),
		Failover:      string(raw.Failover),
		HealthCheckID: aws.ToString(raw.HealthCheckId),
		Alias:         raw.AliasTarget != nil,
		raw:           &raw,
	}
	for _, rr := range raw.ResourceRecords {
		r.Values = append(r.Values, aws.ToString(rr.Value))
	}
	slices.Sort(r.Values)
	switch {
	case raw.Weight != nil:
		r.Policy, r.Weight = weighted, *raw.Weight
	case raw.Region != "":
		r.Policy = latency
	case raw.GeoLocation != nil:
		r.Policy = geoloc
		r.Continent, r.Country = aws.ToString(raw.GeoLocation.ContinentCode), aws.ToString(raw.GeoLocation.CountryCode)
	case raw.Failover != "":
		r.Policy = failover
	case aws.ToBool(raw.MultiValueAnswer):
		r.Policy = multivalue
	}
	return r
}

func (r rset) toSDK() types.ResourceRecordSet {
	out := types.ResourceRecordSet{
		Name: aws.String(r.Name + "."),
		Type: types.RRType(r.Type),
		TTL:  aws.Int64(r.TTL),
	}
	if r.SetID != "" {
		out.SetIdentifier = aws.String(r.SetID)
	}
	for _, v := range r.Values {
		out.ResourceRecords = append(out.ResourceRecords, types.ResourceRecord{Value: aws.String(v)})
	}
	switch r.Policy {
	case weighted:
		out.Weight = aws.Int64(r.Weight)
	case latency:
		out.Region = types.ResourceRecordSetRegion(r.Region)
	case geoloc:
		g := &types.GeoLocation{}
		if r.Continent != "" {
			g.ContinentCode = aws.String(r.Continent)
		} else {
			g.CountryCode = aws.String(r.Country)
		}
		out.GeoLocation = g
	case failover:
		out.Failover = types.ResourceRecordSetFailover(r.Failover)
	case multivalue:
		out.MultiValueAnswer = aws.Bool(true)
	}
	if r.HealthCheckID != "" {
		out.HealthCheckId = aws.String(r.HealthCheckID)
	}
	return out
}

// route is one record set's routing for one target, before it is split
// into A, AAAA and CNAME sets.
type route struct {
	target    int
	setID     string
	policy    string
	weight    int64
	region    string
	continent string
	country   string
	failover  string
}

// routes decides the routing of a Name's targets. warn is told about
// targets that get no set.
func routes(n publish.Name, warn func(msg string, args ...any)) ([]route, error) {
	ts := n.Targets
	if len(ts) == 0 {
		return nil, nil
	}
	hosts := 0
	for _, t := range ts {
		if t.Hostname != "" {
			hosts++
		}
	}
	if hosts > 0 && hosts < len(ts) {
		return nil, fmt.Errorf("some regions have a hostname (CNAME) and others addresses; Route 53 cannot have a CNAME beside A/AAAA records at one name")
	}
	policy := n.Policy
	if policy == "" {
		policy = config.PolicyLatency
	}
	var out []route
	switch policy {
	case config.PolicyAll:
		switch {
		case len(ts) == 1:
			out = append(out, route{target: 0})
		case hosts > 0:
			// Multivalue answers cannot be CNAMEs: equal weights spread
			// the clients over every region instead.
			for i, t := range ts {
				out = append(out, route{target: i, setID: t.Region, policy: weighted, weight: 1})
			}
		default:
			for i, t := range ts {
				out = append(out, route{target: i, setID: t.Region, policy: multivalue})
			}
		}
	case config.PolicyLatency:
		for i, t := range ts {
			r, err := latencyRegion(t)
			if err != nil {
				return nil, err
			}
			out = append(out, route{target: i, setID: t.Region, policy: latency, region: r})
		}
	case config.PolicyWeighted:
		for i, t := range ts {
			if t.Weight < 0 || t.Weight > 255 {
				return nil, fmt.Errorf("region %s: weight %d is outside Route 53's 0..255", t.Region, t.Weight)
			}
			out = append(out, route{target: i, setID: t.Region, policy: weighted, weight: int64(t.Weight)})
		}
	case config.PolicyFailover:
		if len(ts) > 2 {
			return nil, fmt.Errorf("failover in Route 53 has one primary and one secondary, and %d regions are given", len(ts))
		}
		idx := []int{0, 1}[:len(ts)]
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ts[a].Order, ts[b].Order) })
		for k, i := range idx {
			role := []string{"PRIMARY", "SECONDARY"}[k]
			out = append(out, route{target: i, setID: ts[i].Region, policy: failover, failover: role})
		}
	case config.PolicyGeo:
		return geoRoutes(ts, warn)
	default:
		return nil, fmt.Errorf("unknown policy %q", policy)
	}
	return out, nil
}

// geoRoutes gives each target the continent it is on (the first listed
// wins when several share one), each continent without a target to the
// nearest target, and the default location ("*", clients Route 53 cannot
// place) to the first target.
func geoRoutes(ts []publish.Target, warn func(string, ...any)) ([]route, error) {
	locs := make([]config.Location, len(ts))
	for i, t := range ts {
		l, ok := location(t)
		if !ok {
			return nil, fmt.Errorf("region %s: geolocation routing needs the region's location", t.Region)
		}
		locs[i] = l
	}
	var out []route
	claimed := map[string]bool{}
	for i, t := range ts {
		c := continent(locs[i])
		if claimed[c] {
			warn("route53: region shares a continent with a region listed before it and gets no geolocation set of its own", "region", t.Region, "continent", c)
			continue
		}
		claimed[c] = true
		out = append(out, route{target: i, setID: t.Region, policy: geoloc, continent: c})
	}
	for _, c := range continents {
		if claimed[c.code] {
			continue
		}
		best := 0
		for i := range ts {
			if config.DistanceKm(c.at, locs[i]) < config.DistanceKm(c.at, locs[best]) {
				best = i
			}
		}
		out = append(out, route{target: best, setID: ts[best].Region + "/" + c.code, policy: geoloc, continent: c.code})
	}
	out = append(out, route{target: 0, setID: ts[0].Region + "/default", policy: geoloc, country: "*"})
	return out, nil
}

// desiredSets are the record sets of one Name; target marks the region
// whose health check each set carries.
func desiredSets(n publish.Name, warn func(string, ...any)) ([]rset, error) {
	rs, err := routes(n, warn)
	if err != nil {
		return nil, err
	}
	ttl := int64(n.TTL / time.Second)
	if ttl <= 0 {
		ttl = defaultTTL
	}
	// With a routing policy, AAAA queries could only go to the regions
	// that have IPv6 whatever the policy says, and dual-stack clients
	// prefer IPv6: AAAA sets are made only when every region has one.
	withV6 := true
	if len(n.Targets) > 1 && n.Policy != config.PolicyAll {
		for _, t := range n.Targets {
			if t.Hostname == "" && !slices.ContainsFunc(t.Addresses, func(a netip.Addr) bool { return !a.Unmap().Is4() }) {
				withV6 = false
			}
		}
		if !withV6 && slices.ContainsFunc(n.Targets, func(t publish.Target) bool {
			return slices.ContainsFunc(t.Addresses, func(a netip.Addr) bool { return !a.Unmap().Is4() })
		}) {
			warn("route53: not every region has an IPv6 address, so no AAAA sets are published")
		}
	}
	var out []rset
	for _, r := range rs {
		t := n.Targets[r.target]
		var v4, v6 []string
		for _, a := range t.Addresses {
			if a = a.Unmap(); a.Is4() {
				v4 = append(v4, a.String())
			} else {
				v6 = append(v6, a.String())
			}
		}
		base := rset{Name: n.FQDN, SetID: r.setID, Policy: r.policy, TTL: ttl, Weight: r.weight, Region: r.region,
			Continent: r.continent, Country: r.country, Failover: r.failover, target: t.Region}
		add := func(typ string, vals []string) {
			if len(vals) == 0 {
				return
			}
			s := base
			s.Type = typ
			s.Values = slices.Compact(slices.Sorted(slices.Values(vals)))
			out = append(out, s)
		}
		add("A", v4)
		if withV6 {
			add("AAAA", v6)
		}
		if t.Hostname != "" {
			add("CNAME", []string{strings.ToLower(strings.TrimSuffix(t.Hostname, ".")) + "."})
		}
	}
	return out, nil
}

// checkSpec is a health check's configuration, as far as kubecdn sets it.
type checkSpec struct {
	Type      string // HTTP or TCP
	IP        string
	Port      int32
	Path      string
	FQDN      string
	Interval  int32
	Threshold int32
}

// The health checks' probing, fixed: Route 53's standard interval and
// three failures in a row.
const (
	checkInterval  = 30
	checkThreshold = 3
)

func (c checkSpec) String() string {
	host := c.IP
	if host == "" {
		host = c.FQDN
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	s := fmt.Sprintf("%s %s:%d", c.Type, host, c.Port)
	if c.Type == "HTTP" {
		s += " " + c.Path
		if c.IP != "" {
			s += " host=" + c.FQDN
		}
	}
	return s
}

func (c checkSpec) toSDK() *types.HealthCheckConfig {
	out := &types.HealthCheckConfig{
		Type:             types.HealthCheckType(c.Type),
		Port:             aws.Int32(c.Port),
		RequestInterval:  aws.Int32(c.Interval),
		FailureThreshold: aws.Int32(c.Threshold),
	}
	if c.IP != "" {
		out.IPAddress = aws.String(c.IP)
	}
	if c.FQDN != "" {
		out.FullyQualifiedDomainName = aws.String(c.FQDN)
	}
	if c.Path != "" {
		out.ResourcePath = aws.String(c.Path)
	}
	return out
}

func specFromSDK(c *types.HealthCheckConfig) checkSpec {
	if c == nil {
		return checkSpec{}
	}
	ip := aws.ToString(c.IPAddress)
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.Unmap().String() // however Route 53 spells IPv6
	}
	return checkSpec{
		Type:      string(c.Type),
		IP:        ip,
		Port:      aws.ToInt32(c.Port),
		Path:      aws.ToString(c.ResourcePath),
		FQDN:      strings.ToLower(strings.TrimSuffix(aws.ToString(c.FullyQualifiedDomainName), ".")),
		Interval:  aws.ToInt32(c.RequestInterval),
		Threshold: aws.ToInt32(c.FailureThreshold),
	}
}

// desiredCheck is the health check of target t of n; ok is false when
// the target has none.
func desiredCheck(n publish.Name, t publish.Target) (spec checkSpec, ok bool, err error) {
	h := t.Health
	if h.Protocol == "" {
		return checkSpec{}, false, nil
	}
	spec = checkSpec{Port: int32(h.Port), Interval: checkInterval, Threshold: checkThreshold}
	var ip netip.Addr
	for _, a := range t.Addresses {
		a = a.Unmap()
		if !ip.IsValid() || a.Is4() && !ip.Is4() {
			ip = a
		}
	}
	if ip.IsValid() {
		if !publicAddress(ip) {
			return checkSpec{}, false, fmt.Errorf("region %s: address %s is not public, and Route 53 health checkers cannot reach it", t.Region, ip)
		}
		spec.IP = ip.String()
	}
	switch h.Protocol {
	case "http":
		spec.Type = "HTTP"
		if spec.Port == 0 {
			spec.Port = 80
		}
		spec.Path = cmp.Or(h.Path, "/")
		switch {
		case !ip.IsValid():
			spec.FQDN = strings.ToLower(strings.TrimSuffix(t.Hostname, "."))
		default:
			spec.FQDN = strings.ToLower(strings.TrimSuffix(cmp.Or(h.Host, n.FQDN), "."))
		}
	case "tcp":
		spec.Type = "TCP"
		if spec.Port == 0 {
			return checkSpec{}, false, fmt.Errorf("region %s: a tcp health check needs a port", t.Region)
		}
		if !ip.IsValid() {
			spec.FQDN = strings.ToLower(strings.TrimSuffix(t.Hostname, "."))
		}
	default:
		return checkSpec{}, false, fmt.Errorf("region %s: unknown health protocol %q (want http or tcp)", t.Region, h.Protocol)
	}
	return spec, true, nil
}

// notPublic are the ranges Route 53 will not health-check besides the
// private, loopback, link-local, multicast and unspecified ones.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("192.88.99.0/24"), netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("::/8"),
}

func publicAddress(a netip.Addr) bool {
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// diff is the change list that turns a name's existing managed sets into
// the desired ones: deletes first, so a set can change its routing policy
// or type within one atomic batch.
func diff(existing, desired []rset) (changes []types.Change, report []publish.Change) {
	have := map[string]rset{}
	for _, e := range existing {
		have[e.key()] = e
	}
	var dels, puts []types.Change
	want := map[string]bool{}
	for _, d := range desired {
		want[d.key()] = true
		e, ok := have[d.key()]
		switch {
		case !ok:
			puts = append(puts, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: ptr(d.toSDK())})
			report = append(report, publish.Change{Action: publish.Create, Name: d.Name, Type: d.Type, SetID: d.SetID, Detail: d.detail()})
		case e.equal(d):
		case e.Policy == d.Policy && !e.Alias:
			puts = append(puts, types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: ptr(d.toSDK())})
			report = append(report, publish.Change{Action: publish.Update, Name: d.Name, Type: d.Type, SetID: d.SetID, Detail: d.detail()})
		default:
			dels = append(dels, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: e.raw})
			puts = append(puts, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: ptr(d.toSDK())})
			report = append(report, publish.Change{Action: publish.Update, Name: d.Name, Type: d.Type, SetID: d.SetID, Detail: d.detail()})
		}
	}
	for _, e := range existing {
		if !want[e.key()] {
			dels = append(dels, types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: e.raw})
			report = append(report, publish.Change{Action: publish.Delete, Name: e.Name, Type: e.Type, SetID: e.SetID, Detail: e.detail()})
		}
	}
	return append(dels, puts...), report
}

func ptr[T any](v T) *T { return &v }

// Route 53's limits on one ChangeResourceRecordSets request.
const (
	maxBatchChanges = 1000
	maxBatchValues  = 1000
	maxBatchChars   = 32000
)

// batchSize counts a change list against Route 53's limits: changes,
// ResourceRecord elements and characters of values, UPSERT counting twice.
func batchSize(cs []types.Change) (changes, values, chars int) {
	for _, c := range cs {
		mult := 1
		if c.Action == types.ChangeActionUpsert {
			mult = 2
		}
		if c.ResourceRecordSet != nil {
			values += mult * len(c.ResourceRecordSet.ResourceRecords)
			for _, rr := range c.ResourceRecordSet.ResourceRecords {
				chars += mult * len(aws.ToString(rr.Value))
			}
		}
	}
	return len(cs), values, chars
}

// pack groups change lists (one per name, never split, so that each
// name's changes are applied atomically) into batches within the limits.
func pack(groups [][]types.Change) [][]int {
	var out [][]int
	var cur []int
	n, v, c := 0, 0, 0
	for i, g := range groups {
		gn, gv, gc := batchSize(g)
		if len(cur) > 0 && (n+gn > maxBatchChanges || v+gv > maxBatchValues || c+gc > maxBatchChars) {
			out = append(out, cur)
			cur, n, v, c = nil, 0, 0, 0
		}
		cur = append(cur, i)
		n, v, c = n+gn, v+gv, c+gc
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
