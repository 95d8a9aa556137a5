package config

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	c, err := Load("testdata/kubecdn.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	s := c.Spec
	if s.Zone != "cdn.example.com" || s.Routing.Policy != PolicyGeo || s.Routing.TTL.D() != 30*time.Second {
		t.Errorf("zone/policy/ttl = %q %q %v", s.Zone, s.Routing.Policy, s.Routing.TTL.D())
	}
	if s.Cache.Memory != 512<<20 || s.Cache.Disk.Size != 50<<30 {
		t.Errorf("sizes = %d %d", s.Cache.Memory, s.Cache.Disk.Size)
	}
	if s.Autoscale.ScaleUpAbove != 50 || s.Autoscale.Window.D() != 5*time.Minute {
		t.Errorf("autoscale = %+v", s.Autoscale)
	}
	if s.DNS.RRL.Rate != 20 || *s.DNS.RRL.Slip != 2 {
		t.Errorf("rrl = %+v", s.DNS.RRL)
	}
	regs := c.AllRegions()
	if len(regs) != 4 || !regs[2].Autoscale || regs[3].Path != "spec.regions.autoscale[1]" {
		t.Errorf("regions = %+v", regs)
	}
	if l, ok := LocationOf(regs[3].Region); !ok || l.Lat != 48.9 {
		t.Errorf("location of onprem-paris = %v %v", l, ok)
	}
	if _, ok := LocationOf(regs[2].Region); !ok {
		t.Errorf("eu-west-1 has no built-in location")
	}
	rr, err := c.ParseRecord(s.DNS.Records[4])
	if err != nil || rr.Header().Name != "_dmarc.cdn.example.com." || rr.Header().Ttl != 300 {
		t.Errorf("ParseRecord = %v, %v", rr, err)
	}
}

const minimal = `apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: demo}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {dir: ./public}
  regions:
    alwaysOn:
      - {name: us-east-1, provider: aws}
`

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r := c.Spec.Routing
	if r.Policy != PolicyLatency || r.TTL.D() != 30*time.Second || r.Health.Interval.D() != time.Second ||
		r.Health.Timeout.D() != 500*time.Millisecond || r.Health.FailAfter != 3 || r.Health.PassAfter != 2 {
		t.Errorf("routing defaults = %+v", r)
	}
	if c.Spec.DNS.TTL.D() != time.Hour || c.Spec.DNS.SOA.Minimum.D() != 30*time.Second || c.Spec.DNS.RRL.Rate != 0 {
		t.Errorf("dns defaults = %+v", c.Spec.DNS)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want []string // every one must appear
	}{
		{"unknown field", func(s string) string {
			return strings.Replace(s, "  zone:", "  zonee: x\n  zone:", 1)
		}, []string{"spec.zonee: unknown field"}},
		{"unknown nested and bad duration at once", func(s string) string {
			return s + "  routing: {ttl: soon, health: {intervall: 1s}}\n"
		}, []string{`spec.routing.ttl: invalid duration "soon"`, "spec.routing.health.intervall: unknown field"}},
		{"duplicate region", func(s string) string {
			return s + "      - {name: us-west-2, provider: aws}\n      - {name: us-east-1, provider: aws}\n"
		}, []string{`spec.regions.alwaysOn[2].name: duplicate region "us-east-1"`}},
		{"type mismatch", func(s string) string {
			return strings.Replace(s, "hostnames: [www.cdn.example.com]", "hostnames: www.cdn.example.com", 1)
		}, []string{"spec.hostnames: must be a list"}},
		{"hostname outside zone, bad policy, bad size", func(s string) string {
			return strings.Replace(s, "hostnames: [www.cdn.example.com]", "hostnames: [www.example.org]\n  cache: {memory: lots}\n  routing: {policy: fastest}", 1)
		}, []string{`spec.hostnames[0]: "www.example.org" is not inside spec.zone`, "spec.routing.policy: unknown policy", `spec.cache.memory: invalid size "lots"`}},
		{"unknown region needs location", func(s string) string {
			return s + "      - {name: basement, provider: local, edges: [\"localhost:80\", \"10.0.0.1:0\"], parent: nowhere}\n"
		}, []string{"spec.regions.alwaysOn[1].location: required", `spec.regions.alwaysOn[1].edges[0]: "localhost:80": host must be an IP address`,
			`spec.regions.alwaysOn[1].edges[1]: "10.0.0.1:0": port must not be 0`, `spec.regions.alwaysOn[1].parent: unknown region "nowhere"`}},
		{"routing references", func(s string) string {
			return s + "  routing:\n    policy: weighted\n    weights: {us-east-1: 0, mars-1: 2}\n    failover: [us-east-1, us-east-1]\n    explore: 0.9\n    health: {interval: 1s, timeout: 2s, failAfter: -1}\n    geo: {database: nope.mmdb, networks: [{cidr: 300.1.2.0/24, location: {lat: 91, lon: 0}}, {cidr: 10.0.0.0/8}]}\n"
		}, []string{`spec.routing.weights.mars-1: unknown region "mars-1"`, `spec.routing.failover[1]: duplicate region "us-east-1"`,
			"spec.routing.explore: 0.9 must be between 0 and 0.5", "spec.routing.health.timeout: 2s must not exceed interval 1s",
			"spec.routing.health.failAfter: must be at least 1", `spec.routing.geo.database: "nope.mmdb"`,
			`spec.routing.geo.networks[0].cidr: "300.1.2.0/24" is not a CIDR`, "spec.routing.geo.networks[0].location.lat: 91 is out of range",
			"spec.routing.geo.networks[1].location: required"}},
		{"static records", func(s string) string {
			return s + "  dns:\n    nameservers: [{name: ns1.cdn.example.com}]\n    records:\n      - {name: www, type: CNAME, value: elsewhere.example.net.}\n      - {name: x, type: NS, value: a.example.}\n      - {name: mx, type: MX, value: \"mail\"}\n      - {name: a, type: TXT, value: hi}\n      - {name: a, type: CNAME, value: b}\n"
		}, []string{"spec.dns.nameservers[0].addresses: required", "spec.dns.records[0].name: a CNAME cannot be at the apex or at a CDN hostname",
			`spec.dns.records[1]: type "NS" not supported`, "spec.dns.records[2]: bad MX value", "spec.dns.records[4].name: a CNAME cannot sit beside other records"}},
		{"publish", func(s string) string {
			return s + "  publish:\n    provider: route53\n    owner: 'two words'\n    rfc2136: {server: 'ns1:53', tsig: {algorithm: md5}}\n"
		}, []string{"spec.publish.route53: required when provider is route53", "spec.publish.owner:", "spec.publish.rfc2136.server:",
			"spec.publish.rfc2136.tsig.name: required", `spec.publish.rfc2136.tsig.algorithm: unknown algorithm "md5"`,
			"spec.publish.rfc2136.tsig: exactly one of secretFile and secretEnv is required"}},
		{"publish provider and route53 fields", func(s string) string {
			return s + "  publish: {provider: route54, route53: {hostedZoneID: /hostedzone/Z1, endpoint: ftp://x}}\n"
		}, []string{`spec.publish.provider: unknown provider "route54"`, "spec.publish.route53.hostedZoneID: \"/hostedzone/Z1\": give the bare ID",
			"spec.publish.route53.endpoint:"}},
		{"apps", func(s string) string {
			return s + "  apps:\n    - name: Video\n      regions: [mars-1]\n      overrides: [{regions: [], kind: '', name: ''}]\n      services:\n        - {hostname: www.cdn.example.com, port: 70000, health: {protocol: udp, path: x}}\n        - {service: b, hostname: live.example.org}\n        - {service: c, hostname: x.edges.cdn.example.com}\n    - {name: v2, manifests: d, regions: [us-east-1], overrides: [{regions: [eu-west-1], kind: Deployment, name: d, patch: {spec: {}}}]}\n"
		}, []string{`spec.apps[0].name: "Video" must be lowercase`, "spec.apps[0].manifests: required", `spec.apps[0].regions[0]: unknown region "mars-1"`,
			"spec.apps[0].overrides[0].regions: required", "spec.apps[0].overrides[0].kind: required", "spec.apps[0].overrides[0].patch: required",
			"spec.apps[0].services[0].service: required", `spec.apps[0].services[0].hostname: "www.cdn.example.com" is already used by spec.hostnames`,
			"spec.apps[0].services[0].port: 70000 is not a port", `spec.apps[0].services[0].health.protocol: unknown protocol "udp"`,
			`spec.apps[0].services[0].health.path: "x" must start with /`, `spec.apps[0].services[1].hostname: "live.example.org" is not inside the zone`,
			`spec.apps[1].overrides[0].regions[0]: unknown region "eu-west-1"`, `spec.apps[0].services[2].hostname: "x.edges.cdn.example.com" is under edges.cdn.example.com`}},
		{"endpoints name app hostnames", func(s string) string {
			return strings.Replace(s, "provider: aws", "provider: aws, endpoints: {www.cdn.example.com: [\"1.2.3.4:80\"], live.cdn.example.com: [nope]}", 1)
		}, []string{"endpoints.live.cdn.example.com: \"live.cdn.example.com\" is not the hostname of an app service", "endpoints.www.cdn.example.com:"}},
		{"header", func(s string) string {
			return strings.Replace(strings.Replace(s, "kind: CDN", "kind: Cdn", 1), "metadata: {name: demo}", "metadata: {}", 1)
		}, []string{`kind: must be "CDN"`, "metadata.name: required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.edit(minimal)))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse error = %v (%T), want Errors", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			for _, e := range es {
				if e.Field == "" && !strings.HasPrefix(e.Msg, "invalid yaml") {
					t.Errorf("error without a field path: %v", e)
				}
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	c, err := Load("testdata/kubecdn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(b)
	if err != nil {
		t.Fatalf("re-parse of %s: %v", b, err)
	}
	b2, _ := json.Marshal(c2)
	if string(b) != string(b2) {
		t.Errorf("round trip differs:\n%s\n%s", b, b2)
	}
}

func TestParseRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
		err  bool
	}{{"50rps", 50, false}, {"50/s", 50, false}, {"3000rpm", 50, false}, {"1.5", 1.5, false}, {"-1rps", 0, true}, {"fast", 0, true}, {"", 0, true}} {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile("testdata/kubecdn.yaml")
	f.Add(b)
	f.Add([]byte(minimal))
	f.Add([]byte("spec: {regions: {alwaysOn: [{}, {name: 1}]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a non-empty Errors: %v", err)
			}
			return
		}
		// property: a valid file re-encodes to a valid, identical file
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse failed: %v\n%s", err, b)
		}
		b2, _ := json.Marshal(c2)
		if string(b) != string(b2) {
			t.Fatalf("not idempotent:\n%s\n%s", b, b2)
		}
	})
}
