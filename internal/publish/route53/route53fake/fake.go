// Package route53fake is a FAKE of the Amazon Route 53 REST/XML API, for
// tests: AWS cannot be reached from the test machines, so this in-process
// server (httptest, on 127.0.0.1) stands in for it. It is not Route 53 and
// serves only the operations kubecdn's publisher uses: ChangeResourceRecordSets,
// ListResourceRecordSets, GetChange, GetHostedZone, CreateHealthCheck,
// GetHealthCheck, UpdateHealthCheck, DeleteHealthCheck, ListHealthChecks,
// ChangeTagsForResource, ListTagsForResource(s).
//
// Every request is checked and anything Route 53 would refuse, or that a
// careful client should never send, is recorded as a violation (a test
// started with Start fails on any): a SigV4 signature that does not verify
// with the fake's key or does not name the route53 service, an unknown
// path or method, a body that is not the operation's XML in the API's
// namespace, a batch of more than 1000 changes (or 1000 values, or 32000
// characters of values, UPSERT counting twice), and the rules for record
// sets: CREATE of an existing set, DELETE that does not match the set
// exactly, sets sharing a name and type that are not all routed by one
// policy with distinct identifiers (or one simple set), a HealthCheckId
// that does not exist, CNAME beside other types, TTL missing on a non-alias
// set. A batch is applied atomically or not at all. Like Route 53 it allows
// five requests per second per account and answers more with HTTP 400
// Throttling "Rate exceeded".
package route53fake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fake's default identity.
const (
	DefaultZoneID          = "Z0FAKE00000000000001"
	DefaultAccessKeyID     = "AKIAFAKEROUTE53TEST1"
	DefaultSecretAccessKey = "fake/route53/secret/not/a/real/key"
)

// Options configure a fake. Zero values take the defaults in brackets.
type Options struct {
	// Zone is the hosted zone's apex, e.g. "cdn.example.com" (required).
	Zone string
	// ZoneID of the hosted zone [DefaultZoneID].
	ZoneID string
	// AccessKeyID and SecretAccessKey the fake verifies signatures with
	// [DefaultAccessKeyID, DefaultSecretAccessKey].
	AccessKeyID, SecretAccessKey string
	// Rate is the requests per second allowed per account [5]; Burst the
	// bucket's size [5].
	Rate  float64
	Burst int
	// PendingFor is how long a change stays PENDING before INSYNC [0].
	PendingFor time.Duration
	// Now is the fake's clock [time.Now].
	Now func() time.Time
}

// Server is a running fake.
type Server struct {
	URL string // base endpoint, e.g. http://127.0.0.1:41234

	opts Options
	srv  *httptest.Server

	mu         sync.Mutex
	zoneName   string // with trailing dot
	sets       map[string]RecordSet
	checks     map[string]*HealthCheck
	changes    map[string]changeState
	nextID     int
	calls      map[string]int
	throttled  int
	violations []string
	tokens     map[string]*bucket
	failNext   []injected
}

type changeState struct {
	submitted time.Time
	comment   string
}

type injected struct {
	status  int
	code    string
	message string
}

// The mutating actions, for Mutations.
var mutating = []string{"ChangeResourceRecordSets", "CreateHealthCheck", "UpdateHealthCheck", "DeleteHealthCheck", "ChangeTagsForResource"}

// New starts a fake; Close stops it.
func New(o Options) *Server {
	if o.ZoneID == "" {
		o.ZoneID = DefaultZoneID
	}
	if o.AccessKeyID == "" {
		o.AccessKeyID, o.SecretAccessKey = DefaultAccessKeyID, DefaultSecretAccessKey
	}
	if o.Rate <= 0 {
		o.Rate = 5
	}
	if o.Burst <= 0 {
		o.Burst = 5
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{
		opts:     o,
		zoneName: canonicalName(o.Zone),
		sets:     map[string]RecordSet{},
		checks:   map[string]*HealthCheck{},
		changes:  map[string]changeState{},
		calls:    map[string]int{},
		tokens:   map[string]*bucket{},
	}
	// The SOA and NS sets every hosted zone is created with.
	ttl, nsTTL := int64(900), int64(172800)
	s.sets[key(s.zoneName, "SOA", "")] = RecordSet{Name: s.zoneName, Type: "SOA", TTL: &ttl,
		ResourceRecords: []ResourceRecord{{Value: "ns-1.fake-route53.invalid. hostmaster.fake-route53.invalid. 1 7200 900 1209600 86400"}}}
	s.sets[key(s.zoneName, "NS", "")] = RecordSet{Name: s.zoneName, Type: "NS", TTL: &nsTTL,
		ResourceRecords: []ResourceRecord{{Value: "ns-1.fake-route53.invalid."}, {Value: "ns-2.fake-route53.invalid."}}}
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	return s
}

// Start starts a fake for a test, stops it when the test ends and fails
// the test for every violation recorded.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := New(o)
	t.Cleanup(func() {
		s.Close()
		for _, v := range s.Violations() {
			t.Errorf("route53fake violation: %s", v)
		}
	})
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// ZoneID is the hosted zone's ID.
func (s *Server) ZoneID() string { return s.opts.ZoneID }

// Violations returns what the fake found wrong in the requests so far.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Calls returns the number of requests received per action (throttled
// ones included).
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// Total is the number of requests received.
func (s *Server) Total() int {
	n := 0
	for _, v := range s.Calls() {
		n += v
	}
	return n
}

// Mutations is the number of mutating requests received.
func (s *Server) Mutations() int {
	c := s.Calls()
	n := 0
	for _, a := range mutating {
		n += c[a]
	}
	return n
}

// Throttled is the number of requests answered with Throttling.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// ResetCounts zeroes Calls and Throttled.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.throttled = 0
}

// ThrottleNext makes the next n requests fail with Throttling.
func (s *Server) ThrottleNext(n int) {
	for range n {
		s.FailNext(http.StatusBadRequest, "Throttling", "Rate exceeded")
	}
}

// FailNext makes the next request (after any already queued) fail with
// the given status and error code, e.g. 400 PriorRequestNotComplete.
func (s *Server) FailNext(status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, injected{status, code, message})
}

// Seed puts record sets into the zone directly, as if made by hand in the
// console; they are not checked.
func (s *Server) Seed(sets ...RecordSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range sets {
		rs.Name = canonicalName(rs.Name)
		s.sets[key(rs.Name, rs.Type, rs.SetIdentifier)] = rs
	}
}

// RecordSets returns the zone's record sets in Route 53's listing order,
// names with a trailing dot and unescaped.
func (s *Server) RecordSets() []RecordSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedSets()
}

// HealthChecks returns the stored health checks, by ID.
func (s *Server) HealthChecks() []HealthCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]HealthCheck, 0, len(s.checks))
	for _, id := range sortedKeys(s.checks) {
		hc := *s.checks[id]
		hc.Tags = cloneMap(hc.Tags)
		out = append(out, hc)
	}
	return out
}

func (s *Server) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

// handler is one operation: it runs with s.mu held and the body read.
type handler func(w http.ResponseWriter, r *http.Request, body []byte)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	op := func(pattern, action string, h handler) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, action, h) })
	}
	op("POST /2013-04-01/hostedzone/{id}/rrset", "ChangeResourceRecordSets", s.changeRecordSets)
	op("GET /2013-04-01/hostedzone/{id}/rrset", "ListResourceRecordSets", s.listRecordSets)
	op("GET /2013-04-01/hostedzone/{id}", "GetHostedZone", s.getHostedZone)
	op("GET /2013-04-01/change/{id}", "GetChange", s.getChange)
	op("POST /2013-04-01/healthcheck", "CreateHealthCheck", s.createHealthCheck)
	op("GET /2013-04-01/healthcheck", "ListHealthChecks", s.listHealthChecks)
	op("GET /2013-04-01/healthcheck/{id}", "GetHealthCheck", s.getHealthCheck)
	op("POST /2013-04-01/healthcheck/{id}", "UpdateHealthCheck", s.updateHealthCheck)
	op("DELETE /2013-04-01/healthcheck/{id}", "DeleteHealthCheck", s.deleteHealthCheck)
	op("POST /2013-04-01/tags/{type}/{id}", "ChangeTagsForResource", s.changeTags)
	op("GET /2013-04-01/tags/{type}/{id}", "ListTagsForResource", s.listTag)
	op("POST /2013-04-01/tags/{type}", "ListTagsForResources", s.listTags)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls["unknown"]++
		s.violate("%s %s: no such operation in the fake", r.Method, r.URL.Path)
		s.writeError(w, http.StatusNotFound, "Sender", "UnknownOperationException", "no such operation: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// serve does what every operation shares: read, authenticate, throttle.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, action string, h handler) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[action]++
	if err != nil {
		s.violate("%s: reading body: %v", action, err)
		s.writeError(w, http.StatusBadRequest, "Sender", "InvalidInput", "unreadable body")
		return
	}
	account, problem := s.authenticate(r, body)
	if problem != "" {
		s.violate("%s: %s", action, problem)
		s.writeError(w, http.StatusForbidden, "Sender", "SignatureDoesNotMatch", problem)
		return
	}
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		if f.code == "Throttling" {
			s.throttled++
		}
		s.writeError(w, f.status, "Sender", f.code, f.message)
		return
	}
	if !s.take(account) {
		s.throttled++
		s.writeError(w, http.StatusBadRequest, "Sender", "Throttling", "Rate exceeded")
		return
	}
	if r.Method == http.MethodPost && (len(body) == 0 || !bytes.HasPrefix(bytes.TrimSpace(body), []byte("<"))) {
		s.violate("%s: body is not XML: %.80q", action, body)
		s.writeError(w, http.StatusBadRequest, "Sender", "InvalidInput", "malformed XML")
		return
	}
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") != "" && !strings.Contains(r.Header.Get("Content-Type"), "xml") {
		s.violate("%s: content type %q is not XML", action, r.Header.Get("Content-Type"))
	}
	h(w, r, body)
}

// decode parses an operation's XML body, recording a violation (and
// answering InvalidInput) when it is not well formed, not the expected
// root element in the API's namespace, or carries elements the fake does
// not know.
func (s *Server) decode(w http.ResponseWriter, action string, body []byte, v any, unknown func() []string) bool {
	if err := xml.Unmarshal(body, v); err != nil {
		s.violate("%s: malformed XML body: %v", action, err)
		s.writeError(w, http.StatusBadRequest, "Sender", "InvalidInput", "malformed XML: "+err.Error())
		return false
	}
	if u := unknown(); len(u) > 0 {
		s.violate("%s: elements the fake does not model: %s", action, strings.Join(u, ", "))
		s.writeError(w, http.StatusBadRequest, "Sender", "InvalidInput", "unsupported elements: "+strings.Join(u, ", "))
		return false
	}
	return true
}

func names(u []unknownElem) []string {
	var out []string
	for _, e := range u {
		out = append(out, e.XMLName.Local)
	}
	return out
}

// authenticate verifies the request's SigV4 signature and returns the
// account (access key) it is made with, or what is wrong.
func (s *Server) authenticate(r *http.Request, body []byte) (account, problem string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "", "no Authorization header (SigV4 signature missing)"
	}
	alg, rest, _ := strings.Cut(auth, " ")
	if alg != "AWS4-HMAC-SHA256" {
		return "", fmt.Sprintf("Authorization algorithm %q, want AWS4-HMAC-SHA256", alg)
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return "", fmt.Sprintf("malformed credential scope %q", fields["Credential"])
	}
	if scope[3] != "route53" {
		return "", fmt.Sprintf("signed for service %q, want route53", scope[3])
	}
	if scope[0] != s.opts.AccessKeyID {
		return "", fmt.Sprintf("unknown access key %q", scope[0])
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if _, err := time.Parse("20060102T150405Z", amzDate); err != nil || !strings.HasPrefix(amzDate, scope[1]) {
		return "", fmt.Sprintf("X-Amz-Date %q missing or not of the scope's day %s", amzDate, scope[1])
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		return "", fmt.Sprintf("SignedHeaders %q must include host and x-amz-date", fields["SignedHeaders"])
	}
	var ch strings.Builder
	for _, h := range signed {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			vals := r.Header.Values(h)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		ch.WriteString(h + ":" + v + "\n")
	}
	payload := sha256.Sum256(body)
	canonical := strings.Join([]string{
		r.Method,
		uriEncode(r.URL.EscapedPath(), false),
		canonicalQuery(r.URL.Query()),
		ch.String(),
		fields["SignedHeaders"],
		hex.EncodeToString(payload[:]),
	}, "\n")
	crHash := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{"AWS4-HMAC-SHA256", amzDate, strings.Join(scope[1:], "/"), hex.EncodeToString(crHash[:])}, "\n")
	k := hmacSHA256([]byte("AWS4"+s.opts.SecretAccessKey), scope[1])
	for _, part := range scope[2:] {
		k = hmacSHA256(k, part)
	}
	if want := hex.EncodeToString(hmacSHA256(k, toSign)); !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return "", "SigV4 signature does not match"
	}
	return scope[0], ""
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// uriEncode escapes every byte but the unreserved ones (and '/' unless
// encodeSlash), as SigV4 requires.
func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' && !encodeSlash {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func canonicalQuery(q url.Values) string {
	var params []string
	for k, vs := range q {
		for _, v := range vs {
			params = append(params, uriEncode(k, true)+"="+uriEncode(v, true))
		}
	}
	sort.Strings(params)
	return strings.Join(params, "&")
}

// bucket is a token bucket of one account.
type bucket struct {
	tokens float64
	last   time.Time
}

func (s *Server) take(account string) bool {
	now := s.opts.Now()
	b := s.tokens[account]
	if b == nil {
		b = &bucket{tokens: float64(s.opts.Burst), last: now}
		s.tokens[account] = b
	}
	b.tokens = min(float64(s.opts.Burst), b.tokens+now.Sub(b.last).Seconds()*s.opts.Rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (s *Server) requestID() string {
	s.nextID++
	return fmt.Sprintf("fake-%08d", s.nextID)
}

func (s *Server) writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		s.violate("fake: marshalling response: %v", err)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", s.requestID())
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

func (s *Server) writeError(w http.ResponseWriter, status int, typ, code, message string) {
	var e errorResponse
	e.Xmlns = ns
	e.Error.Type, e.Error.Code, e.Error.Message = typ, code, message
	e.RequestID = s.requestID()
	s.writeXML(w, status, e)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
