package route53

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/publish/route53/route53fake"
)

const zone = "cdn.example.com"

// fast is a fake that allows far more than Route 53's 5 requests/s, so the
// tests that are not about the rate run quickly.
func fast(t *testing.T) *route53fake.Server {
	t.Helper()
	return route53fake.Start(t, route53fake.Options{Zone: zone, Rate: 1000, Burst: 1000})
}

func newPublisher(t *testing.T, srv *route53fake.Server, o Options, healthChecks bool) *Publisher {
	t.Helper()
	o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: route53fake.DefaultAccessKeyID, SecretAccessKey: route53fake.DefaultSecretAccessKey, Source: "test"}, nil
	})
	if o.RequestsPerSecond == 0 {
		o.RequestsPerSecond = 1000
	}
	if o.RetryBase == 0 {
		o.RetryBase = time.Millisecond
	}
	p, err := New(t.Context(), config.Route53{HostedZoneID: srv.ZoneID(), Region: "us-east-1", Endpoint: srv.URL, HealthChecks: &healthChecks}, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var regionAddr = map[string][]string{
	"us-east-1":      {"3.80.0.1"},
	"us-west-2":      {"34.208.0.1", "2600:1f14::1"},
	"eu-west-1":      {"54.72.0.1", "54.72.0.2"},
	"ap-southeast-2": {"13.54.0.1"},
	"europe-west4":   {"35.204.0.1"},
}

func target(region string) publish.Target {
	t := publish.Target{Region: region, Provider: "aws", Weight: 10,
		Health: publish.Health{Protocol: "http", Port: 80, Path: "/.well-known/kubecdn/health"}}
	if strings.HasPrefix(region, "europe-") {
		t.Provider = "gcp"
	}
	for _, a := range regionAddr[region] {
		t.Addresses = append(t.Addresses, netip.MustParseAddr(a))
	}
	return t
}

func name(fqdn string, policy config.Policy, regions ...string) publish.Name {
	n := publish.Name{FQDN: fqdn, TTL: 30 * time.Second, Policy: policy}
	for i, r := range regions {
		t := target(r)
		t.Order = i
		n.Targets = append(n.Targets, t)
	}
	return n
}

func desired(owner string, names ...publish.Name) publish.Desired {
	return publish.Desired{Zone: zone, Owner: owner, Names: names}
}

// dump lists the zone's sets (but SOA and NS) in a compact, comparable form.
func dump(srv *route53fake.Server) []string {
	var out []string
	for _, rs := range srv.RecordSets() {
		if rs.Type == "SOA" || rs.Type == "NS" {
			continue
		}
		s := strings.TrimSuffix(rs.Name, "."+zone+".") + " " + rs.Type
		if rs.SetIdentifier != "" {
			s += " [" + rs.SetIdentifier + "]"
		}
		switch {
		case rs.Weight != nil:
			s += fmt.Sprintf(" weight=%d", *rs.Weight)
		case rs.Region != "":
			s += " latency=" + rs.Region
		case rs.Failover != "":
			s += " " + rs.Failover
		case rs.GeoLocation != nil:
			s += " geo=" + rs.GeoLocation.ContinentCode + rs.GeoLocation.CountryCode
		case rs.MultiValueAnswer != nil:
			s += " multivalue"
		}
		var vals []string
		for _, rr := range rs.ResourceRecords {
			vals = append(vals, rr.Value)
		}
		s += " " + strings.Join(vals, ",")
		if rs.HealthCheckID != "" {
			s += " hc"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func checkDump(srv *route53fake.Server) []string {
	var out []string
	for _, hc := range srv.HealthChecks() {
		c := hc.Config
		out = append(out, fmt.Sprintf("%s/%s %s %s:%d %s %s owner=%s", hc.Tags["kubecdn-name"], hc.Tags["kubecdn-region"],
			c.Type, c.IPAddress, *c.Port, c.ResourcePath, c.FullyQualifiedDomainName, hc.Tags["kubecdn-owner"]))
	}
	slices.Sort(out)
	return out
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func TestPolicies(t *testing.T) {
	www := "www." + zone
	own := `_kubecdn-owner.www TXT "heritage=kubecdn,owner=cdn1"`
	tests := []struct {
		name   string
		n      publish.Name
		want   []string
		checks int
	}{
		{"latency", name(www, config.PolicyLatency, "us-east-1", "eu-west-1", "europe-west4"), []string{
			own,
			"www A [eu-west-1] latency=eu-west-1 54.72.0.1,54.72.0.2 hc",
			"www A [europe-west4] latency=eu-central-1 35.204.0.1 hc",
			"www A [us-east-1] latency=us-east-1 3.80.0.1 hc",
		}, 3},
		{"weighted", name(www, config.PolicyWeighted, "us-east-1", "us-west-2"), []string{
			own,
			"www A [us-east-1] weight=10 3.80.0.1 hc",
			"www A [us-west-2] weight=10 34.208.0.1 hc",
		}, 2},
		{"weighted, every region with IPv6", func() publish.Name {
			n := name(www, config.PolicyWeighted, "us-east-1", "us-west-2")
			n.Targets[0].Addresses = append(n.Targets[0].Addresses, netip.MustParseAddr("2600:1f18::1"))
			return n
		}(), []string{
			own,
			"www A [us-east-1] weight=10 3.80.0.1 hc",
			"www A [us-west-2] weight=10 34.208.0.1 hc",
			"www AAAA [us-east-1] weight=10 2600:1f18::1 hc",
			"www AAAA [us-west-2] weight=10 2600:1f14::1 hc",
		}, 2},
		{"failover", name(www, config.PolicyFailover, "eu-west-1", "us-east-1"), []string{
			own,
			"www A [eu-west-1] PRIMARY 54.72.0.1,54.72.0.2 hc",
			"www A [us-east-1] SECONDARY 3.80.0.1 hc",
		}, 2},
		{"geo", name(www, config.PolicyGeo, "us-east-1", "eu-west-1", "us-west-2"), []string{
			own,
			"www A [eu-west-1/AF] geo=AF 54.72.0.1,54.72.0.2 hc",
			"www A [eu-west-1/AS] geo=AS 54.72.0.1,54.72.0.2 hc",
			"www A [eu-west-1] geo=EU 54.72.0.1,54.72.0.2 hc",
			"www A [us-east-1/SA] geo=SA 3.80.0.1 hc",
			"www A [us-east-1/default] geo=* 3.80.0.1 hc",
			"www A [us-east-1] geo=NA 3.80.0.1 hc",
			"www A [us-west-2/OC] geo=OC 34.208.0.1 hc",
		}, 3},
		{"all", name(www, config.PolicyAll, "us-east-1", "eu-west-1"), []string{
			own,
			"www A [eu-west-1] multivalue 54.72.0.1,54.72.0.2 hc",
			"www A [us-east-1] multivalue 3.80.0.1 hc",
		}, 2},
		{"all with one region is simple", name(www, config.PolicyAll, "us-west-2"), []string{
			own,
			"www A 34.208.0.1 hc",
			"www AAAA 2600:1f14::1 hc",
		}, 1},
		{"hostnames", func() publish.Name {
			n := name(www, config.PolicyLatency, "us-east-1", "eu-west-1")
			for i := range n.Targets {
				n.Targets[i].Addresses = nil
				n.Targets[i].Hostname = "lb-" + n.Targets[i].Region + ".elb.amazonaws.com"
			}
			return n
		}(), []string{
			own,
			"www CNAME [eu-west-1] latency=eu-west-1 lb-eu-west-1.elb.amazonaws.com. hc",
			"www CNAME [us-east-1] latency=us-east-1 lb-us-east-1.elb.amazonaws.com. hc",
		}, 2},
		{"all with hostnames is weighted", func() publish.Name {
			n := name(www, config.PolicyAll, "us-east-1", "eu-west-1")
			for i := range n.Targets {
				n.Targets[i].Addresses = nil
				n.Targets[i].Hostname = "lb-" + n.Targets[i].Region + ".example.net"
				n.Targets[i].Health = publish.Health{Protocol: "tcp", Port: 1935}
			}
			return n
		}(), []string{
			own,
			"www CNAME [eu-west-1] weight=1 lb-eu-west-1.example.net. hc",
			"www CNAME [us-east-1] weight=1 lb-us-east-1.example.net. hc",
		}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fast(t)
			p := newPublisher(t, srv, Options{}, true)
			d := desired("cdn1", tc.n)
			changes, err := p.Publish(t.Context(), d, false)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "record sets", dump(srv), tc.want)
			if got := len(srv.HealthChecks()); got != tc.checks {
				t.Errorf("health checks: %d, want %d: %q", got, tc.checks, checkDump(srv))
			}
			if len(changes) != len(tc.want)+tc.checks {
				t.Errorf("changes: %d, want %d: %v", len(changes), len(tc.want)+tc.checks, changes)
			}
			srv.ResetCounts()
			changes, err = p.Publish(t.Context(), d, false)
			if err != nil || len(changes) != 0 || srv.Mutations() != 0 {
				t.Errorf("re-run: changes %v, err %v, mutating requests %d (%v)", changes, err, srv.Mutations(), srv.Calls())
			}
		})
	}
}

func TestHealthCheckConfig(t *testing.T) {
	srv := fast(t)
	p := newPublisher(t, srv, Options{}, true)
	n := name("www."+zone, config.PolicyLatency, "us-west-2", "eu-west-1")
	n.Targets[1].Health.Host = "health.example.org"
	app := name("video."+zone, config.PolicyLatency, "us-east-1")
	app.Targets[0].Health = publish.Health{Protocol: "tcp", Port: 1935}
	if _, err := p.Publish(t.Context(), desired("cdn1", n, app), false); err != nil {
		t.Fatal(err)
	}
	eq(t, "health checks", checkDump(srv), []string{
		"video.cdn.example.com/us-east-1 TCP 3.80.0.1:1935   owner=cdn1",
		"www.cdn.example.com/eu-west-1 HTTP 54.72.0.1:80 /.well-known/kubecdn/health health.example.org owner=cdn1",
		"www.cdn.example.com/us-west-2 HTTP 34.208.0.1:80 /.well-known/kubecdn/health www.cdn.example.com owner=cdn1",
	})
	for _, hc := range srv.HealthChecks() {
		if !strings.HasPrefix(hc.Tags["Name"], hc.Tags["kubecdn-name"]) || !strings.HasPrefix(hc.CallerReference, "kubecdn-") {
			t.Errorf("check %s: Name tag %q, CallerReference %q", hc.ID, hc.Tags["Name"], hc.CallerReference)
		}
	}

	// A changed path replaces the check: the new one is made, the sets
	// move to it, then the old one goes.
	before := srv.HealthChecks()
	n.Targets[0].Health.Path = "/healthz"
	changes, err := p.Publish(t.Context(), desired("cdn1", n, app), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"update HEALTHCHECK www.cdn.example.com [us-west-2] HTTP 34.208.0.1:80 /healthz host=www.cdn.example.com",
		"update A www.cdn.example.com [us-west-2] 34.208.0.1 ttl=30 latency region=us-west-2 health-checked",
	}
	eq(t, "changes", strs(changes), want)
	after := srv.HealthChecks()
	if len(after) != 3 || slices.ContainsFunc(after, func(h route53fake.HealthCheck) bool {
		return h.ID == before[2].ID && h.Config.ResourcePath == "/.well-known/kubecdn/health" && h.Tags["kubecdn-region"] == "us-west-2"
	}) {
		t.Errorf("old check not replaced: %q", checkDump(srv))
	}

	// Health checks turned off: the sets lose them, then they are deleted.
	p2 := newPublisher(t, srv, Options{}, false)
	if _, err := p2.Publish(t.Context(), desired("cdn1", n, app), false); err != nil {
		t.Fatal(err)
	}
	if hc := srv.HealthChecks(); len(hc) != 0 || slices.ContainsFunc(dump(srv), func(s string) bool { return strings.HasSuffix(s, " hc") }) {
		t.Errorf("checks left: %q, sets %q", checkDump(srv), dump(srv))
	}
}

func strs(cs []publish.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func TestRegionRemoved(t *testing.T) {
	srv := fast(t)
	p := newPublisher(t, srv, Options{}, true)
	www := "www." + zone
	if _, err := p.Publish(t.Context(), desired("cdn1", name(www, config.PolicyLatency, "us-east-1", "us-west-2", "eu-west-1")), false); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.HealthChecks()); n != 3 {
		t.Fatalf("%d health checks, want 3", n)
	}
	changes, err := p.Publish(t.Context(), desired("cdn1", name(www, config.PolicyLatency, "us-east-1", "eu-west-1")), false)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "record sets", dump(srv), []string{
		`_kubecdn-owner.www TXT "heritage=kubecdn,owner=cdn1"`,
		"www A [eu-west-1] latency=eu-west-1 54.72.0.1,54.72.0.2 hc",
		"www A [us-east-1] latency=us-east-1 3.80.0.1 hc",
	})
	eq(t, "health checks", checkDump(srv), []string{
		"www.cdn.example.com/eu-west-1 HTTP 54.72.0.1:80 /.well-known/kubecdn/health www.cdn.example.com owner=cdn1",
		"www.cdn.example.com/us-east-1 HTTP 3.80.0.1:80 /.well-known/kubecdn/health www.cdn.example.com owner=cdn1",
	})
	var kinds []string
	for _, c := range changes {
		kinds = append(kinds, fmt.Sprintf("%s %s %s", c.Action, c.Type, c.SetID))
	}
	eq(t, "changes", kinds, []string{"delete A us-west-2", "delete HEALTHCHECK us-west-2"})

	// A name the file no longer lists goes entirely: sets, TXT, checks.
	changes, err = p.Publish(t.Context(), desired("cdn1"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := dump(srv); len(got) != 0 || len(srv.HealthChecks()) != 0 {
		t.Errorf("left behind: %q, %q", got, checkDump(srv))
	}
	if len(changes) != 5 {
		t.Errorf("changes %v, want 5", changes)
	}
}

func TestTwoOwners(t *testing.T) {
	srv := fast(t)
	a := newPublisher(t, srv, Options{}, true)
	b := newPublisher(t, srv, Options{}, true)
	wwwA := name("a."+zone, config.PolicyLatency, "us-east-1", "eu-west-1")
	wwwB := name("b."+zone, config.PolicyWeighted, "us-west-2")
	if _, err := a.Publish(t.Context(), desired("a", wwwA), false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), desired("b", wwwB), false); err != nil {
		t.Fatal(err)
	}
	srv.Seed(route53fake.RecordSet{Name: "manual." + zone, Type: "A", TTL: aws.Int64(300),
		ResourceRecords: []route53fake.ResourceRecord{{Value: "8.8.8.8"}}})
	srv.Seed(route53fake.RecordSet{Name: "mx." + zone, Type: "MX", TTL: aws.Int64(300),
		ResourceRecords: []route53fake.ResourceRecord{{Value: "10 mail.example.org."}}})
	sets, checks := dump(srv), checkDump(srv)

	tests := []struct {
		name  string
		names []publish.Name
		owner string // of the refused name
	}{
		{"another owner's name", []publish.Name{wwwA, name("b."+zone, config.PolicyLatency, "us-east-1")}, "b"},
		{"hand-made A", []publish.Name{wwwA, name("manual."+zone, config.PolicyLatency, "us-east-1")}, ""},
		{"hand-made MX", []publish.Name{wwwA, name("mx."+zone, config.PolicyLatency, "us-east-1")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCounts()
			changes, err := a.Publish(t.Context(), desired("a", tc.names...), false)
			var owned *publish.OwnedError
			if !errors.As(err, &owned) || owned.Owner != tc.owner || owned.Name != tc.names[1].FQDN {
				t.Fatalf("err = %v, want OwnedError for %s owned by %q", err, tc.names[1].FQDN, tc.owner)
			}
			if tc.owner != "" && !strings.Contains(err.Error(), `"`+tc.owner+`"`) {
				t.Errorf("error %q does not name the owner", err)
			}
			if len(changes) != 0 || srv.Mutations() != 0 {
				t.Errorf("changes %v, mutating requests %d", changes, srv.Mutations())
			}
			eq(t, "record sets", dump(srv), sets)
			eq(t, "health checks", checkDump(srv), checks)
		})
	}

	// Each removes its own names and only those.
	if _, err := a.Publish(t.Context(), desired("a"), false); err != nil {
		t.Fatal(err)
	}
	eq(t, "after a leaves", dump(srv), []string{
		`_kubecdn-owner.b TXT "heritage=kubecdn,owner=b"`,
		"b A [us-west-2] weight=10 34.208.0.1 hc",
		"b AAAA [us-west-2] weight=10 2600:1f14::1 hc",
		"manual A 8.8.8.8",
		"mx MX 10 mail.example.org.",
	})
	eq(t, "checks after a leaves", checkDump(srv), []string{
		"b.cdn.example.com/us-west-2 HTTP 34.208.0.1:80 /.well-known/kubecdn/health b.cdn.example.com owner=b",
	})
}

func TestBatchesSplit(t *testing.T) {
	srv := fast(t)
	p := newPublisher(t, srv, Options{}, false)
	var names []publish.Name
	for i := range 700 {
		n := name(fmt.Sprintf("h%03d.%s", i, zone), config.PolicyAll, "us-east-1")
		names = append(names, n)
	}
	changes, err := p.Publish(t.Context(), desired("cdn1", names...), false)
	if err != nil {
		t.Fatal(err)
	}
	// 700 names × (A + TXT) = 1400 changes: 500 names (1000 changes) in
	// the first batch, 200 in the second.
	calls := srv.Calls()
	if len(changes) != 1400 || calls["ChangeResourceRecordSets"] != 2 {
		t.Errorf("%d changes in %d batches, want 1400 in 2", len(changes), calls["ChangeResourceRecordSets"])
	}
	if got := len(dump(srv)); got != 1400 {
		t.Errorf("%d sets in the zone, want 1400", got)
	}
	srv.ResetCounts()
	changes, err = p.Publish(t.Context(), desired("cdn1", names...), false)
	calls = srv.Calls()
	if err != nil || len(changes) != 0 || srv.Mutations() != 0 {
		t.Errorf("re-run: %d changes, err %v, %d mutating", len(changes), err, srv.Mutations())
	}
	// 1402 sets listed 300 at a time.
	if calls["ListResourceRecordSets"] != 5 {
		t.Errorf("ListResourceRecordSets pages: %d, want 5", calls["ListResourceRecordSets"])
	}
	t.Logf("re-run of 700 names: %v", calls)
}

func TestPack(t *testing.T) {
	group := func(n, values, size int, action types.ChangeAction) []types.Change {
		var out []types.Change
		for i := range n {
			rs := &types.ResourceRecordSet{Name: aws.String(fmt.Sprintf("n%d.", i)), Type: types.RRTypeTxt}
			for range values {
				rs.ResourceRecords = append(rs.ResourceRecords, types.ResourceRecord{Value: aws.String(`"` + strings.Repeat("x", size-2) + `"`)})
			}
			out = append(out, types.Change{Action: action, ResourceRecordSet: rs})
		}
		return out
	}
	create, upsert := types.ChangeActionCreate, types.ChangeActionUpsert
	tests := []struct {
		name   string
		groups [][]types.Change
		want   []int // groups per batch
	}{
		{"one small", [][]types.Change{group(2, 1, 10, create)}, []int{1}},
		{"exactly 1000 changes", [][]types.Change{group(500, 1, 10, create), group(500, 1, 10, create)}, []int{2}},
		{"1001 changes", [][]types.Change{group(500, 1, 10, create), group(501, 1, 10, create), group(1, 1, 10, create)}, []int{1, 2}},
		{"UPSERT values count twice", [][]types.Change{group(300, 1, 10, upsert), group(300, 1, 10, upsert)}, []int{1, 1}},
		{"32000 characters", [][]types.Change{group(100, 1, 170, create), group(100, 1, 170, create), group(10, 1, 170, create)}, []int{1, 2}},
		{"32000 characters, UPSERT twice", [][]types.Change{group(100, 1, 150, upsert), group(10, 1, 150, upsert)}, []int{1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for _, b := range pack(tc.groups) {
				got = append(got, len(b))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("batches of %v groups, want %v", got, tc.want)
			}
		})
	}
}

func TestThrottlingRetried(t *testing.T) {
	srv := fast(t)
	var mu sync.Mutex
	var slept []time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return publish.Sleep(ctx, d)
	}
	p := newPublisher(t, srv, Options{Sleep: sleep, RetryBase: 2 * time.Millisecond, MaxAttempts: 5}, true)
	srv.ThrottleNext(3)
	srv.FailNext(http.StatusBadRequest, "PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request.")
	d := desired("cdn1", name("www."+zone, config.PolicyLatency, "us-east-1", "eu-west-1"))
	if _, err := p.Publish(t.Context(), d, false); err != nil {
		t.Fatal(err)
	}
	if srv.Throttled() != 3 || len(dump(srv)) != 3 {
		t.Errorf("throttled %d, sets %q", srv.Throttled(), dump(srv))
	}
	mu.Lock()
	var backoffs []time.Duration
	for _, s := range slept {
		if s >= 2*time.Millisecond {
			backoffs = append(backoffs, s)
		}
	}
	mu.Unlock()
	// Throttled 3 times, then PriorRequestNotComplete: 2, 4, 8, 16 ms.
	if want := []time.Duration{2, 4, 8, 16}; !slices.Equal(backoffs, []time.Duration{want[0] * time.Millisecond, want[1] * time.Millisecond, want[2] * time.Millisecond, want[3] * time.Millisecond}) {
		t.Errorf("backoffs %v", backoffs)
	}

	// Bounded: throttled more often than MaxAttempts gives up.
	srv.ResetCounts()
	srv.ThrottleNext(10)
	_, err := p.Publish(t.Context(), d, false)
	if err == nil || !strings.Contains(err.Error(), "Throttling") || !strings.Contains(err.Error(), "after 5 attempts") {
		t.Errorf("err = %v, want throttling after 5 attempts", err)
	}
	if n := srv.Total(); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
}

// TestRateLimit runs against the fake's real 5 requests/s: the publisher
// keeps under it and is never throttled.
func TestRateLimit(t *testing.T) {
	srv := route53fake.Start(t, route53fake.Options{Zone: zone})
	p := newPublisher(t, srv, Options{RequestsPerSecond: 5}, true)
	start := time.Now()
	d := desired("cdn1", name("www."+zone, config.PolicyLatency, "us-east-1", "eu-west-1"), name("us-east-1.edges."+zone, config.PolicyAll, "us-east-1"))
	if _, err := p.Publish(t.Context(), d, false); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	total := srv.Total()
	// GetHostedZone, ListResourceRecordSets, ListHealthChecks, 3 ×
	// (CreateHealthCheck + ChangeTagsForResource), ChangeResourceRecordSets.
	if total != 10 || srv.Throttled() != 0 {
		t.Errorf("%d requests (%v), %d throttled; want 10, 0", total, srv.Calls(), srv.Throttled())
	}
	if min := time.Duration(total-1) * 200 * time.Millisecond; elapsed < min-20*time.Millisecond {
		t.Errorf("%d requests in %v: faster than 5/s", total, elapsed)
	}
	t.Logf("first publish: %d requests in %v: %v", total, elapsed, srv.Calls())
	srv.ResetCounts()
	if _, err := p.Publish(t.Context(), d, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("re-run: %d requests: %v", srv.Total(), srv.Calls())
}

func TestDryRun(t *testing.T) {
	srv := fast(t)
	p := newPublisher(t, srv, Options{}, true)
	www := "www." + zone
	steps := []publish.Desired{
		desired("cdn1", name(www, config.PolicyLatency, "us-east-1", "us-west-2"), name("eu-west-1.edges."+zone, config.PolicyAll, "eu-west-1")),
		desired("cdn1", name(www, config.PolicyWeighted, "us-east-1", "eu-west-1")),
		desired("cdn1"),
	}
	for i, d := range steps {
		srv.ResetCounts()
		before := dump(srv)
		dry, err := p.Publish(t.Context(), d, true)
		if err != nil {
			t.Fatal(err)
		}
		if srv.Mutations() != 0 {
			t.Errorf("step %d: dry run sent %d mutating requests: %v", i, srv.Mutations(), srv.Calls())
		}
		eq(t, fmt.Sprintf("step %d: zone after the dry run", i), dump(srv), before)
		real, err := p.Publish(t.Context(), d, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(real) == 0 {
			t.Errorf("step %d: nothing changed", i)
		}
		eq(t, fmt.Sprintf("step %d: dry run vs real", i), strs(dry), strs(real))
	}
}

func TestWaitInSync(t *testing.T) {
	srv := route53fake.Start(t, route53fake.Options{Zone: zone, Rate: 1000, Burst: 1000, PendingFor: 150 * time.Millisecond})
	p := newPublisher(t, srv, Options{SyncPoll: 20 * time.Millisecond}, false)
	d := desired("cdn1", name("www."+zone, config.PolicyLatency, "us-east-1"))
	start := time.Now()
	if _, err := p.Publish(t.Context(), d, false); err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls()["GetChange"]; n < 2 || time.Since(start) < 150*time.Millisecond {
		t.Errorf("GetChange %d times in %v", n, time.Since(start))
	}

	slow := route53fake.Start(t, route53fake.Options{Zone: zone, Rate: 1000, Burst: 1000, PendingFor: time.Hour})
	p = newPublisher(t, slow, Options{SyncPoll: 10 * time.Millisecond, SyncTimeout: 50 * time.Millisecond}, false)
	_, err := p.Publish(t.Context(), d, false)
	if err == nil || !strings.Contains(err.Error(), "still PENDING") {
		t.Errorf("err = %v, want a timeout", err)
	}
}

func TestPlanErrors(t *testing.T) {
	srv := fast(t)
	p := newPublisher(t, srv, Options{}, true)
	mixed := name("mixed."+zone, config.PolicyLatency, "us-east-1", "eu-west-1")
	mixed.Targets[1].Addresses, mixed.Targets[1].Hostname = nil, "lb.example.net"
	private := name("private."+zone, config.PolicyLatency, "us-east-1")
	private.Targets[0].Addresses = []netip.Addr{netip.MustParseAddr("10.1.2.3")}
	tests := []struct {
		n    publish.Name
		want string
	}{
		{name("fo."+zone, config.PolicyFailover, "us-east-1", "eu-west-1", "us-west-2"), "fo.cdn.example.com: failover in Route 53 has one primary and one secondary, and 3 regions"},
		{mixed, "mixed.cdn.example.com: some regions have a hostname"},
		{private, "private.cdn.example.com: region us-east-1: address 10.1.2.3 is not public"},
	}
	ok := name("ok."+zone, config.PolicyLatency, "us-east-1")
	for _, tc := range tests {
		_, err := p.Publish(t.Context(), desired("cdn1", tc.n, ok), false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	// The other name is published all the same.
	eq(t, "record sets", dump(srv), []string{
		`_kubecdn-owner.ok TXT "heritage=kubecdn,owner=cdn1"`,
		"ok A [us-east-1] latency=us-east-1 3.80.0.1 hc",
	})
}

func TestWrongZone(t *testing.T) {
	srv := fast(t)
	p := newPublisher(t, srv, Options{}, true)
	_, err := p.Publish(t.Context(), publish.Desired{Zone: "other.example", Owner: "x"}, false)
	if err == nil || !strings.Contains(err.Error(), "is cdn.example.com, not other.example") {
		t.Errorf("err = %v", err)
	}
}

func TestWildcardName(t *testing.T) {
	srv := fast(t)
	p := newPublisher(t, srv, Options{}, false)
	d := desired("cdn1", name("*.img."+zone, config.PolicyWeighted, "us-east-1", "eu-west-1"))
	if _, err := p.Publish(t.Context(), d, false); err != nil {
		t.Fatal(err)
	}
	srv.ResetCounts()
	if ch, err := p.Publish(t.Context(), d, false); err != nil || len(ch) != 0 || srv.Mutations() != 0 {
		t.Errorf("re-run of a wildcard: %v %v", ch, err)
	}
}

func TestContinent(t *testing.T) {
	want := map[string]string{
		"us-east-1": "NA", "us-west-2": "NA", "ca-central-1": "NA", "mx-central-1": "NA", "sa-east-1": "SA",
		"eu-west-1": "EU", "eu-central-1": "EU", "eu-north-1": "EU", "eu-south-2": "EU",
		"ap-northeast-1": "AS", "ap-southeast-1": "AS", "ap-southeast-3": "AS", "ap-south-1": "AS", "ap-east-1": "AS",
		"me-south-1": "AS", "me-central-1": "AS", "il-central-1": "AS",
		"ap-southeast-2": "OC", "ap-southeast-4": "OC", "af-south-1": "AF",
		"southamerica-west1": "SA", "africa-south1": "AF", "europe-west4": "EU", "asia-south2": "AS",
	}
	for r, c := range want {
		l, ok := config.BuiltinLocation(r)
		if !ok {
			t.Fatalf("no location for %s", r)
		}
		if got := continent(l); got != c {
			t.Errorf("%s %v: %s, want %s", r, l, got, c)
		}
	}
	for _, r := range awsRegions {
		if _, ok := config.BuiltinLocation(r); !ok {
			t.Errorf("AWS region %s has no built-in location", r)
		}
	}
}

func TestLatencyRegion(t *testing.T) {
	tests := []struct {
		t    publish.Target
		want string
	}{
		{publish.Target{Region: "eu-west-3", Provider: "aws"}, "eu-west-3"},
		{publish.Target{Region: "europe-west4", Provider: "gcp"}, "eu-central-1"},
		{publish.Target{Region: "japaneast", Provider: "azure"}, "ap-northeast-1"},
		{publish.Target{Region: "home", Provider: "local", Location: &config.Location{Lat: 48.1, Lon: 11.6}}, "eu-central-2"},
		{publish.Target{Region: "us-east-9", Provider: "aws"}, "us-east-9"},
	}
	for _, tc := range tests {
		if got, err := latencyRegion(tc.t); err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.t.Region, got, err, tc.want)
		}
	}
	if _, err := latencyRegion(publish.Target{Region: "home", Provider: "local"}); err == nil {
		t.Error("no location: want an error")
	}
}
