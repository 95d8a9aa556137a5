package route53fake

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Route 53's limits on one ChangeResourceRecordSets request.
const (
	maxChanges     = 1000
	maxValues      = 1000
	maxValueChars  = 32000
	maxListRecords = 300
)

// latencyRegions are the Region values a latency record set may carry.
var latencyRegions = []string{
	"us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "sa-east-1", "mx-central-1",
	"eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
	"ap-southeast-4", "ap-southeast-5", "ap-southeast-7", "ap-south-1", "ap-south-2", "ap-east-1",
	"me-south-1", "me-central-1", "il-central-1", "af-south-1", "cn-north-1", "cn-northwest-1",
}

var continents = []string{"AF", "AN", "AS", "EU", "OC", "NA", "SA"}

var recordTypes = []string{"A", "AAAA", "CAA", "CNAME", "DS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV", "TXT"}

func key(name, typ, setID string) string { return name + "|" + typ + "|" + setID }

func setKey(rs RecordSet) string { return key(rs.Name, rs.Type, rs.SetIdentifier) }

// canonicalName lower-cases a name, decodes Route 53's \ddd escapes and
// adds the trailing dot.
func canonicalName(n string) string {
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
	out := strings.ToLower(b.String())
	if !strings.HasSuffix(out, ".") {
		out += "."
	}
	return out
}

// escapeName writes a name as Route 53 lists it: characters other than
// a-z, 0-9, '-', '_' and '.' as \ddd octal escapes (so "*" is "\052").
func escapeName(n string) string {
	var b strings.Builder
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	return b.String()
}

// listOrder is Route 53's listing order: name with its labels reversed,
// then type, then set identifier.
func listOrder(a, b RecordSet) int {
	if c := strings.Compare(reversedLabels(a.Name), reversedLabels(b.Name)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return strings.Compare(a.SetIdentifier, b.SetIdentifier)
}

func reversedLabels(n string) string {
	l := strings.Split(strings.TrimSuffix(n, "."), ".")
	slices.Reverse(l)
	return strings.Join(l, ".") + "."
}

func (s *Server) sortedSets() []RecordSet {
	out := make([]RecordSet, 0, len(s.sets))
	for _, rs := range s.sets {
		out = append(out, rs)
	}
	slices.SortFunc(out, listOrder)
	return out
}

func (s *Server) zoneOK(w http.ResponseWriter, r *http.Request) bool {
	if r.PathValue("id") != s.opts.ZoneID {
		s.writeError(w, http.StatusNotFound, "Sender", "NoSuchHostedZone", "No hosted zone found with ID: "+r.PathValue("id"))
		return false
	}
	return true
}

func (s *Server) getHostedZone(w http.ResponseWriter, r *http.Request, _ []byte) {
	if !s.zoneOK(w, r) {
		return
	}
	resp := getHostedZoneResponse{Xmlns: ns, HostedZone: hostedZoneXML{
		ID: "/hostedzone/" + s.opts.ZoneID, Name: s.zoneName, CallerReference: "fake", ResourceRecordSetCount: len(s.sets),
	}}
	resp.DelegationSet.NameServers = []string{"ns-1.fake-route53.invalid", "ns-2.fake-route53.invalid"}
	s.writeXML(w, http.StatusOK, resp)
}

func (s *Server) getChange(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	c, ok := s.changes[id]
	if !ok {
		s.violate("GetChange: no change %q", id)
		s.writeError(w, http.StatusNotFound, "Sender", "NoSuchChange", "A change with the specified change ID does not exist.")
		return
	}
	s.writeXML(w, http.StatusOK, getChangeResponse{Xmlns: ns, ChangeInfo: s.changeInfo(id, c)})
}

func (s *Server) changeInfo(id string, c changeState) changeInfo {
	status := "INSYNC"
	if s.opts.Now().Sub(c.submitted) < s.opts.PendingFor {
		status = "PENDING"
	}
	return changeInfo{ID: "/change/" + id, Status: status, SubmittedAt: c.submitted.UTC().Format(time.RFC3339), Comment: c.comment}
}

func (s *Server) listRecordSets(w http.ResponseWriter, r *http.Request, _ []byte) {
	if !s.zoneOK(w, r) {
		return
	}
	q := r.URL.Query()
	for k := range q {
		if !slices.Contains([]string{"name", "type", "identifier", "maxitems"}, k) {
			s.violate("ListResourceRecordSets: unknown parameter %q", k)
		}
	}
	maxItems := maxListRecords
	if v := q.Get("maxitems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.violate("ListResourceRecordSets: maxitems %q", v)
			s.writeError(w, http.StatusBadRequest, "Sender", "InvalidInput", "bad maxitems")
			return
		}
		maxItems = min(n, maxListRecords)
	}
	name, typ, id := q.Get("name"), q.Get("type"), q.Get("identifier")
	if typ != "" && name == "" || id != "" && typ == "" {
		s.violate("ListResourceRecordSets: type needs name and identifier needs type (name=%q type=%q identifier=%q)", name, typ, id)
		s.writeError(w, http.StatusBadRequest, "Sender", "InvalidInput", "type requires name; identifier requires type")
		return
	}
	if typ != "" && !slices.Contains(recordTypes, typ) {
		s.violate("ListResourceRecordSets: unknown type %q", typ)
	}
	all := s.sortedSets()
	start := 0
	if name != "" {
		from := RecordSet{Name: canonicalName(name), Type: typ, SetIdentifier: id}
		start = len(all)
		for i, rs := range all {
			if listOrder(rs, from) >= 0 {
				start = i
				break
			}
		}
	}
	resp := listRecordSetsResponse{Xmlns: ns, MaxItems: maxItems, ResourceRecordSets: []RecordSet{}}
	end := min(len(all), start+maxItems)
	for _, rs := range all[start:end] {
		rs.Name = escapeName(rs.Name)
		resp.ResourceRecordSets = append(resp.ResourceRecordSets, rs)
	}
	if end < len(all) {
		next := all[end]
		resp.IsTruncated = true
		resp.NextRecordName, resp.NextRecordType, resp.NextRecordIdentifier = escapeName(next.Name), next.Type, next.SetIdentifier
	}
	s.writeXML(w, http.StatusOK, resp)
}

func (s *Server) changeRecordSets(w http.ResponseWriter, r *http.Request, body []byte) {
	if !s.zoneOK(w, r) {
		return
	}
	var req changeBatchRequest
	unknown := func() []string {
		u := append(names(req.Unknown), names(req.ChangeBatch.Unknown)...)
		for _, c := range req.ChangeBatch.Changes {
			u = append(u, names(c.Unknown)...)
			u = append(u, names(c.RecordSet.Unknown)...)
		}
		return u
	}
	if !s.decode(w, "ChangeResourceRecordSets", body, &req, unknown) {
		return
	}
	msgs := s.applyBatch(req.ChangeBatch.Changes)
	if len(msgs) > 0 {
		for _, m := range msgs {
			s.violate("ChangeResourceRecordSets: InvalidChangeBatch: %s", m)
		}
		s.writeXML(w, http.StatusBadRequest, invalidChangeBatch{Xmlns: ns, Messages: msgs, RequestID: s.requestID()})
		return
	}
	s.nextID++
	id := fmt.Sprintf("C%012d", s.nextID)
	c := changeState{submitted: s.opts.Now(), comment: req.ChangeBatch.Comment}
	s.changes[id] = c
	s.writeXML(w, http.StatusOK, changeResponse{Xmlns: ns, ChangeInfo: s.changeInfo(id, c)})
}

// applyBatch checks a batch and applies it atomically, returning Route
// 53's messages for what is wrong (and then changing nothing).
func (s *Server) applyBatch(changes []change) []string {
	if len(changes) == 0 {
		return []string{"a change batch needs at least one change"}
	}
	if len(changes) > maxChanges {
		return []string{fmt.Sprintf("Number of records limit of %d exceeded: %d changes", maxChanges, len(changes))}
	}
	values, chars := 0, 0
	for _, c := range changes {
		mult := 1
		if c.Action == "UPSERT" {
			mult = 2
		}
		values += mult * len(c.RecordSet.ResourceRecords)
		for _, rr := range c.RecordSet.ResourceRecords {
			chars += mult * len(rr.Value)
		}
	}
	if values > maxValues {
		return []string{fmt.Sprintf("Number of records limit of %d exceeded: %d ResourceRecord elements (UPSERT counts twice)", maxValues, values)}
	}
	if chars > maxValueChars {
		return []string{fmt.Sprintf("Number of characters limit of %d exceeded: %d characters of values (UPSERT counts twice)", maxValueChars, chars)}
	}
	var msgs []string
	next := make(map[string]RecordSet, len(s.sets))
	for k, v := range s.sets {
		next[k] = v
	}
	touched := map[string]bool{}
	for _, c := range changes {
		rs := c.RecordSet
		rs.Name = canonicalName(rs.Name)
		rs.Unknown = nil
		slices.SortFunc(rs.ResourceRecords, func(a, b ResourceRecord) int { return strings.Compare(a.Value, b.Value) })
		k := setKey(rs)
		desc := describe(rs)
		if m := s.checkSet(rs); len(m) > 0 {
			msgs = append(msgs, m...)
			continue
		}
		if rs.Name == s.zoneName && (rs.Type == "SOA" || rs.Type == "NS") && c.Action != "UPSERT" {
			msgs = append(msgs, fmt.Sprintf("%s: the zone's %s set can only be UPSERTed", desc, rs.Type))
			continue
		}
		touched[rs.Name] = true
		old, exists := next[k]
		switch c.Action {
		case "CREATE":
			if exists {
				msgs = append(msgs, fmt.Sprintf("Tried to create resource record set %s but it already exists", desc))
				continue
			}
			next[k] = rs
		case "UPSERT":
			next[k] = rs
		case "DELETE":
			if !exists {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but it was not found", desc))
				continue
			}
			if !sameSet(old, rs) {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but the values provided do not match the current values", desc))
				continue
			}
			delete(next, k)
		default:
			msgs = append(msgs, fmt.Sprintf("%s: unknown action %q (want CREATE, DELETE or UPSERT)", desc, c.Action))
		}
	}
	if len(msgs) > 0 {
		return msgs
	}
	for _, name := range sortedKeys(touched) {
		msgs = append(msgs, s.checkName(next, name)...)
	}
	if len(msgs) == 0 {
		s.sets = next
	}
	return msgs
}

func describe(rs RecordSet) string {
	return fmt.Sprintf("[name='%s', type='%s', set-identifier='%s']", rs.Name, rs.Type, rs.SetIdentifier)
}

// policy names the routing policy of a set ("" for simple) and how many
// policy fields it carries.
func policy(rs RecordSet) (string, int) {
	var p []string
	if rs.Weight != nil {
		p = append(p, "weighted")
	}
	if rs.Region != "" {
		p = append(p, "latency")
	}
	if rs.GeoLocation != nil {
		p = append(p, "geolocation")
	}
	if rs.Failover != "" {
		p = append(p, "failover")
	}
	if rs.MultiValueAnswer != nil && *rs.MultiValueAnswer {
		p = append(p, "multivalue")
	}
	if len(p) == 0 {
		return "", 0
	}
	return p[0], len(p)
}

// checkSet checks one set on its own.
func (s *Server) checkSet(rs RecordSet) []string {
	desc := describe(rs)
	var msgs []string
	bad := func(format string, args ...any) { msgs = append(msgs, desc+": "+fmt.Sprintf(format, args...)) }
	if rs.Name != s.zoneName && !strings.HasSuffix(rs.Name, "."+s.zoneName) {
		bad("RRSet with DNS name %s is not permitted in zone %s", rs.Name, s.zoneName)
	}
	if !slices.Contains(recordTypes, rs.Type) {
		bad("unknown type %q", rs.Type)
	}
	pol, n := policy(rs)
	switch {
	case n > 1:
		bad("more than one routing policy")
	case n == 1 && rs.SetIdentifier == "":
		bad("a %s record set needs a SetIdentifier", pol)
	case n == 0 && rs.SetIdentifier != "":
		bad("SetIdentifier given without a routing policy")
	case len(rs.SetIdentifier) > 128:
		bad("SetIdentifier longer than 128 characters")
	}
	if rs.Weight != nil && (*rs.Weight < 0 || *rs.Weight > 255) {
		bad("Weight %d not in 0..255", *rs.Weight)
	}
	if rs.Region != "" && !slices.Contains(latencyRegions, rs.Region) {
		bad("Region %q is not a latency region", rs.Region)
	}
	if rs.Failover != "" && rs.Failover != "PRIMARY" && rs.Failover != "SECONDARY" {
		bad("Failover %q, want PRIMARY or SECONDARY", rs.Failover)
	}
	if g := rs.GeoLocation; g != nil {
		switch {
		case g.ContinentCode != "" && (g.CountryCode != "" || g.SubdivisionCode != ""):
			bad("GeoLocation with a continent and a country")
		case g.ContinentCode != "" && !slices.Contains(continents, g.ContinentCode):
			bad("unknown continent %q", g.ContinentCode)
		case g.ContinentCode == "" && g.CountryCode != "*" && len(g.CountryCode) != 2:
			bad("bad country code %q", g.CountryCode)
		}
	}
	if rs.MultiValueAnswer != nil && *rs.MultiValueAnswer && rs.Type == "CNAME" {
		bad("multivalue answer routing does not support CNAME")
	}
	if rs.HealthCheckID != "" {
		if _, ok := s.checks[rs.HealthCheckID]; !ok {
			bad("health check %s does not exist", rs.HealthCheckID)
		}
	}
	if rs.AliasTarget != nil {
		if rs.TTL != nil || len(rs.ResourceRecords) > 0 {
			bad("an alias set has no TTL and no ResourceRecords")
		}
		return msgs
	}
	if rs.TTL == nil {
		bad("TTL is required")
	} else if *rs.TTL < 0 || *rs.TTL > 2147483647 {
		bad("TTL %d out of range", *rs.TTL)
	}
	if len(rs.ResourceRecords) == 0 {
		bad("ResourceRecords are required")
	}
	seen := map[string]bool{}
	for _, rr := range rs.ResourceRecords {
		if seen[rr.Value] {
			bad("duplicate value %q", rr.Value)
		}
		seen[rr.Value] = true
		if m := checkValue(rs.Type, rr.Value); m != "" {
			bad("%s", m)
		}
	}
	if rs.Type == "CNAME" && len(rs.ResourceRecords) > 1 {
		bad("a CNAME set has exactly one value")
	}
	return msgs
}

func checkValue(typ, v string) string {
	switch typ {
	case "A":
		if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
			return fmt.Sprintf("A value %q is not an IPv4 address", v)
		}
	case "AAAA":
		if a, err := netip.ParseAddr(v); err != nil || !a.Is6() || a.Is4In6() {
			return fmt.Sprintf("AAAA value %q is not an IPv6 address", v)
		}
	case "TXT", "SPF":
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return fmt.Sprintf("TXT value %s must be a quoted string", v)
		}
		if len(v) > 4000 {
			return "TXT value longer than 4000 characters"
		}
	case "CNAME":
		if v == "" || strings.ContainsAny(v, " \"") {
			return fmt.Sprintf("CNAME value %q is not a domain name", v)
		}
	}
	return ""
}

// checkName checks what Route 53 checks across the sets of one name once a
// batch is applied.
func (s *Server) checkName(sets map[string]RecordSet, name string) []string {
	byType := map[string][]RecordSet{}
	for _, rs := range sets {
		if rs.Name == name {
			byType[rs.Type] = append(byType[rs.Type], rs)
		}
	}
	var msgs []string
	if _, ok := byType["CNAME"]; ok {
		if name == s.zoneName {
			msgs = append(msgs, fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted at apex in zone %s", name, s.zoneName))
		}
		for _, t := range sortedKeys(byType) {
			if t != "CNAME" {
				msgs = append(msgs, fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted because a conflicting RRSet of type %s with the same DNS name already exists", name, t))
			}
		}
	}
	for _, t := range sortedKeys(byType) {
		group := byType[t]
		slices.SortFunc(group, listOrder)
		var simple bool
		pols := map[string]bool{}
		roles := map[string]int{}
		geo := map[GeoLocation]int{}
		for _, rs := range group {
			p, _ := policy(rs)
			if p == "" {
				simple = true
			}
			pols[p] = true
			if rs.Failover != "" {
				roles[rs.Failover]++
			}
			if rs.GeoLocation != nil {
				geo[*rs.GeoLocation]++
			}
		}
		switch {
		case simple && len(group) > 1:
			msgs = append(msgs, fmt.Sprintf("RRSet %s %s: a simple set cannot share its name and type with other sets (%d sets)", name, t, len(group)))
		case len(pols) > 1:
			msgs = append(msgs, fmt.Sprintf("RRSet %s %s: sets sharing a name and type must use one routing policy, found %s", name, t, strings.Join(sortedKeys(pols), ", ")))
		}
		for role, n := range roles {
			if n > 1 {
				msgs = append(msgs, fmt.Sprintf("RRSet %s %s: %d %s failover sets", name, t, n, role))
			}
		}
		for loc, n := range geo {
			if n > 1 {
				msgs = append(msgs, fmt.Sprintf("RRSet %s %s: %d sets for the location %+v", name, t, n, loc))
			}
		}
	}
	return msgs
}

// sameSet reports whether a DELETE's set matches the stored one exactly.
func sameSet(a, b RecordSet) bool {
	eqI := func(x, y *int64) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	eqB := func(x, y *bool) bool { return (x != nil && *x) == (y != nil && *y) }
	eqG := func(x, y *GeoLocation) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	eqA := func(x, y *AliasTarget) bool {
		return x == nil && y == nil || x != nil && y != nil && strings.EqualFold(x.DNSName, y.DNSName) && x.HostedZoneID == y.HostedZoneID && x.EvaluateTargetHealth == y.EvaluateTargetHealth
	}
	vals := func(rs RecordSet) []string {
		var v []string
		for _, rr := range rs.ResourceRecords {
			v = append(v, rr.Value)
		}
		slices.Sort(v)
		return v
	}
	return a.Name == b.Name && a.Type == b.Type && a.SetIdentifier == b.SetIdentifier &&
		eqI(a.Weight, b.Weight) && a.Region == b.Region && eqG(a.GeoLocation, b.GeoLocation) &&
		a.Failover == b.Failover && eqB(a.MultiValueAnswer, b.MultiValueAnswer) && eqI(a.TTL, b.TTL) &&
		slices.Equal(vals(a), vals(b)) && eqA(a.AliasTarget, b.AliasTarget) && a.HealthCheckID == b.HealthCheckID
}
