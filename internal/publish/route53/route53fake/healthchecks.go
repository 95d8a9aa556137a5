package route53fake

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// nonPublic are the ranges Route 53 refuses to health-check (RFC 5735,
// RFC 6598, RFC 5156: private, loopback, documentation, multicast, ...).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("224.0.0.0/3"),
	netip.MustParsePrefix("::/8"), netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"), netip.MustParsePrefix("2001:db8::/32"),
}

// PublicAddress reports whether Route 53 would health-check a.
func PublicAddress(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return a.IsValid()
}

var checkTypes = []string{"HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP"}

func (s *Server) createHealthCheck(w http.ResponseWriter, r *http.Request, body []byte) {
	var req createHealthCheckRequest
	unknown := func() []string { return append(names(req.Unknown), names(req.HealthCheckConfig.Unknown)...) }
	if !s.decode(w, "CreateHealthCheck", body, &req, unknown) {
		return
	}
	if n := len(req.CallerReference); n == 0 || n > 64 {
		s.invalid(w, "CreateHealthCheck", "CallerReference must be 1 to 64 characters, got %d", n)
		return
	}
	cfg := req.HealthCheckConfig
	cfg.Unknown = nil
	if m := checkConfig(cfg); m != "" {
		s.invalid(w, "CreateHealthCheck", "%s", m)
		return
	}
	withDefaults(&cfg)
	for _, hc := range s.checks {
		if hc.CallerReference != req.CallerReference {
			continue
		}
		if !sameConfig(hc.Config, cfg) {
			s.violate("CreateHealthCheck: CallerReference %q reused with another configuration", req.CallerReference)
			s.writeError(w, http.StatusConflict, "Sender", "HealthCheckAlreadyExists", "A health check with CallerReference "+req.CallerReference+" already exists with a different configuration")
			return
		}
		s.writeCheck(w, http.StatusCreated, "CreateHealthCheckResponse", hc)
		return
	}
	s.nextID++
	hc := &HealthCheck{
		ID:              fmt.Sprintf("%08x-fa4e-4000-8000-%012x", s.nextID, s.nextID),
		CallerReference: req.CallerReference,
		Config:          cfg,
		Version:         1,
		Tags:            map[string]string{},
	}
	s.checks[hc.ID] = hc
	w.Header().Set("Location", s.URL+"/2013-04-01/healthcheck/"+hc.ID)
	s.writeCheck(w, http.StatusCreated, "CreateHealthCheckResponse", hc)
}

func (s *Server) invalid(w http.ResponseWriter, action, format string, args ...any) {
	m := fmt.Sprintf(format, args...)
	s.violate("%s: InvalidInput: %s", action, m)
	s.writeError(w, http.StatusBadRequest, "Sender", "InvalidInput", m)
}

func checkConfig(c HealthCheckConfig) string {
	if !slices.Contains(checkTypes, c.Type) {
		return fmt.Sprintf("health check type %q is not one the fake models (%s)", c.Type, strings.Join(checkTypes, ", "))
	}
	if c.Port == nil || *c.Port < 1 || *c.Port > 65535 {
		return "Port 1..65535 is required"
	}
	if c.IPAddress != "" {
		a, err := netip.ParseAddr(c.IPAddress)
		if err != nil {
			return fmt.Sprintf("IPAddress %q is not an address", c.IPAddress)
		}
		if !PublicAddress(a) {
			return fmt.Sprintf("IPAddress %s is in a local, private, non-routable or multicast range; Route 53 cannot check it", c.IPAddress)
		}
	} else if c.FullyQualifiedDomainName == "" {
		return "either IPAddress or FullyQualifiedDomainName is required"
	}
	if len(c.FullyQualifiedDomainName) > 255 {
		return "FullyQualifiedDomainName longer than 255 characters"
	}
	if c.ResourcePath != "" {
		if c.Type == "TCP" {
			return "ResourcePath is not allowed for TCP checks"
		}
		if !strings.HasPrefix(c.ResourcePath, "/") || len(c.ResourcePath) > 255 {
			return fmt.Sprintf("ResourcePath %q must start with / and be at most 255 characters", c.ResourcePath)
		}
	}
	if c.RequestInterval != nil && *c.RequestInterval != 10 && *c.RequestInterval != 30 {
		return "RequestInterval must be 10 or 30"
	}
	if c.FailureThreshold != nil && (*c.FailureThreshold < 1 || *c.FailureThreshold > 10) {
		return "FailureThreshold must be 1..10"
	}
	return ""
}

// withDefaults fills what Route 53 fills in a created check.
func withDefaults(c *HealthCheckConfig) {
	i32 := func(p **int32, v int32) {
		if *p == nil {
			*p = &v
		}
	}
	b := func(p **bool, v bool) {
		if *p == nil {
			*p = &v
		}
	}
	i32(&c.RequestInterval, 30)
	i32(&c.FailureThreshold, 3)
	b(&c.MeasureLatency, false)
	b(&c.Inverted, false)
	b(&c.Disabled, false)
	if strings.HasPrefix(c.Type, "HTTPS") {
		b(&c.EnableSNI, true)
	}
}

func sameConfig(a, b HealthCheckConfig) bool {
	i32 := func(x, y *int32) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	bo := func(x, y *bool) bool { return (x != nil && *x) == (y != nil && *y) }
	return a.IPAddress == b.IPAddress && i32(a.Port, b.Port) && a.Type == b.Type && a.ResourcePath == b.ResourcePath &&
		a.FullyQualifiedDomainName == b.FullyQualifiedDomainName && a.SearchString == b.SearchString &&
		i32(a.RequestInterval, b.RequestInterval) && i32(a.FailureThreshold, b.FailureThreshold) &&
		bo(a.MeasureLatency, b.MeasureLatency) && bo(a.Inverted, b.Inverted) && bo(a.Disabled, b.Disabled) &&
		bo(a.EnableSNI, b.EnableSNI) && slices.Equal(a.Regions, b.Regions)
}

func (s *Server) writeCheck(w http.ResponseWriter, status int, root string, hc *HealthCheck) {
	resp := healthCheckResponse{Xmlns: ns, HealthCheck: checkXML(hc)}
	resp.XMLName.Local = root
	s.writeXML(w, status, resp)
}

func checkXML(hc *HealthCheck) healthCheckXML {
	return healthCheckXML{ID: hc.ID, CallerReference: hc.CallerReference, HealthCheckConfig: hc.Config, HealthCheckVersion: hc.Version}
}

func (s *Server) check(w http.ResponseWriter, action, id string) *HealthCheck {
	hc, ok := s.checks[id]
	if !ok {
		s.violate("%s: no health check %q", action, id)
		s.writeError(w, http.StatusNotFound, "Sender", "NoSuchHealthCheck", "No health check exists with the specified ID "+id)
	}
	return hc
}

func (s *Server) getHealthCheck(w http.ResponseWriter, r *http.Request, _ []byte) {
	if hc := s.check(w, "GetHealthCheck", r.PathValue("id")); hc != nil {
		s.writeCheck(w, http.StatusOK, "GetHealthCheckResponse", hc)
	}
}

func (s *Server) updateHealthCheck(w http.ResponseWriter, r *http.Request, body []byte) {
	hc := s.check(w, "UpdateHealthCheck", r.PathValue("id"))
	if hc == nil {
		return
	}
	var req updateHealthCheckRequest
	if !s.decode(w, "UpdateHealthCheck", body, &req, func() []string { return names(req.Unknown) }) {
		return
	}
	if req.HealthCheckVersion != nil && *req.HealthCheckVersion != hc.Version {
		s.writeError(w, http.StatusConflict, "Sender", "HealthCheckVersionMismatch", "The value of HealthCheckVersion in the request doesn't match the value of HealthCheckVersion in the health check.")
		return
	}
	c := hc.Config
	if req.IPAddress != "" {
		c.IPAddress = req.IPAddress
	}
	if req.Port != nil {
		c.Port = req.Port
	}
	if req.ResourcePath != "" {
		c.ResourcePath = req.ResourcePath
	}
	if req.FullyQualifiedDomainName != "" {
		c.FullyQualifiedDomainName = req.FullyQualifiedDomainName
	}
	if req.FailureThreshold != nil {
		c.FailureThreshold = req.FailureThreshold
	}
	for _, e := range req.ResetElements {
		switch e {
		case "FullyQualifiedDomainName":
			c.FullyQualifiedDomainName = ""
		case "ResourcePath":
			c.ResourcePath = ""
		case "Regions":
			c.Regions = nil
		default:
			s.invalid(w, "UpdateHealthCheck", "ResetElements: %q cannot be reset", e)
			return
		}
	}
	if m := checkConfig(c); m != "" {
		s.invalid(w, "UpdateHealthCheck", "%s", m)
		return
	}
	hc.Config = c
	hc.Version++
	s.writeCheck(w, http.StatusOK, "UpdateHealthCheckResponse", hc)
}

func (s *Server) deleteHealthCheck(w http.ResponseWriter, r *http.Request, _ []byte) {
	hc := s.check(w, "DeleteHealthCheck", r.PathValue("id"))
	if hc == nil {
		return
	}
	// Route 53 lets a check in use be deleted (the sets then count as
	// healthy); a publisher that does so has its order wrong.
	for _, rs := range s.sortedSets() {
		if rs.HealthCheckID == hc.ID {
			s.violate("DeleteHealthCheck: %s is still used by %s", hc.ID, describe(rs))
		}
	}
	delete(s.checks, hc.ID)
	resp := emptyResponse{Xmlns: ns}
	resp.XMLName.Local = "DeleteHealthCheckResponse"
	s.writeXML(w, http.StatusOK, resp)
}

func (s *Server) listHealthChecks(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	for k := range q {
		if k != "marker" && k != "maxitems" {
			s.violate("ListHealthChecks: unknown parameter %q", k)
		}
	}
	maxItems := 100
	if v := q.Get("maxitems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.invalid(w, "ListHealthChecks", "maxitems %q must be 1..1000", v)
			return
		}
		maxItems = n
	}
	ids := sortedKeys(s.checks)
	start := 0
	if m := q.Get("marker"); m != "" {
		start = len(ids)
		for i, id := range ids {
			if id >= m {
				start = i
				break
			}
		}
	}
	end := min(len(ids), start+maxItems)
	resp := listHealthChecksResponse{Xmlns: ns, Marker: q.Get("marker"), MaxItems: maxItems, HealthChecks: []healthCheckXML{}}
	for _, id := range ids[start:end] {
		resp.HealthChecks = append(resp.HealthChecks, checkXML(s.checks[id]))
	}
	if end < len(ids) {
		resp.IsTruncated, resp.NextMarker = true, ids[end]
	}
	s.writeXML(w, http.StatusOK, resp)
}

// tagged returns the tags of a resource, or nil (having answered) when it
// does not exist.
func (s *Server) tagged(w http.ResponseWriter, action, typ, id string) map[string]string {
	switch typ {
	case "healthcheck":
		if hc := s.check(w, action, id); hc != nil {
			return hc.Tags
		}
		return nil
	default:
		s.invalid(w, action, "resource type %q is not one the fake models (healthcheck)", typ)
		return nil
	}
}

func (s *Server) changeTags(w http.ResponseWriter, r *http.Request, body []byte) {
	tags := s.tagged(w, "ChangeTagsForResource", r.PathValue("type"), r.PathValue("id"))
	if tags == nil {
		return
	}
	var req changeTagsRequest
	if !s.decode(w, "ChangeTagsForResource", body, &req, func() []string { return names(req.Unknown) }) {
		return
	}
	switch {
	case len(req.AddTags) == 0 && len(req.RemoveTagKeys) == 0:
		s.invalid(w, "ChangeTagsForResource", "nothing to change")
		return
	case len(req.AddTags) > 10 || len(req.RemoveTagKeys) > 10:
		s.invalid(w, "ChangeTagsForResource", "at most 10 tags added and 10 removed per request")
		return
	}
	next := cloneMap(tags)
	for _, k := range req.RemoveTagKeys {
		delete(next, k)
	}
	for _, t := range req.AddTags {
		if len(t.Key) < 1 || len(t.Key) > 128 || len(t.Value) > 256 {
			s.invalid(w, "ChangeTagsForResource", "tag %q=%q: key 1..128 and value 0..256 characters", t.Key, t.Value)
			return
		}
		next[t.Key] = t.Value
	}
	if len(next) > 50 {
		s.invalid(w, "ChangeTagsForResource", "more than 50 tags")
		return
	}
	s.checks[r.PathValue("id")].Tags = next
	resp := emptyResponse{Xmlns: ns}
	resp.XMLName.Local = "ChangeTagsForResourceResponse"
	s.writeXML(w, http.StatusOK, resp)
}

func tagList(m map[string]string) []tagXML {
	out := []tagXML{}
	for _, k := range sortedKeys(m) {
		out = append(out, tagXML{Key: k, Value: m[k]})
	}
	return out
}

func (s *Server) listTags(w http.ResponseWriter, r *http.Request, body []byte) {
	var req listTagsRequest
	if !s.decode(w, "ListTagsForResources", body, &req, func() []string { return names(req.Unknown) }) {
		return
	}
	if len(req.ResourceIDs) < 1 || len(req.ResourceIDs) > 10 {
		s.invalid(w, "ListTagsForResources", "1 to 10 ResourceIds, got %d", len(req.ResourceIDs))
		return
	}
	resp := listTagsResponse{Xmlns: ns}
	for _, id := range req.ResourceIDs {
		tags := s.tagged(w, "ListTagsForResources", r.PathValue("type"), id)
		if tags == nil {
			return
		}
		resp.ResourceTagSets = append(resp.ResourceTagSets, resourceTagSet{ResourceType: r.PathValue("type"), ResourceID: id, Tags: tagList(tags)})
	}
	s.writeXML(w, http.StatusOK, resp)
}

func (s *Server) listTag(w http.ResponseWriter, r *http.Request, _ []byte) {
	tags := s.tagged(w, "ListTagsForResource", r.PathValue("type"), r.PathValue("id"))
	if tags == nil {
		return
	}
	s.writeXML(w, http.StatusOK, listTagResponse{Xmlns: ns, ResourceTagSet: resourceTagSet{
		ResourceType: r.PathValue("type"), ResourceID: r.PathValue("id"), Tags: tagList(tags),
	}})
}
