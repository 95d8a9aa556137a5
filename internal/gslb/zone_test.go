package gslb

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

func TestZoneNameserversFromRegions(t *testing.T) {
	c := configtest.Minimal()
	c.Metadata.Name = "z"
	c.Spec.Zone = "CDN.example.com."
	c.Spec.Origin = config.Origin{Dir: "."}
	c.Spec.DNS.SOA.Email = "ops.team@example.com"
	east, eu := configtest.Region("us-east-1", "aws"), configtest.Region("eu-west-1", "aws")
	east.DNS, eu.DNS = "127.0.0.2:5353", "2001:db8::53"
	c.Spec.Regions.AlwaysOn = []config.Region{east, eu, configtest.Region("us-west-2", "aws")}
	cfg := configtest.Parse(t, c)
	z, err := buildZone(cfg, testNow)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, rr := range z.records["cdn.example.com."][dns.TypeNS] {
		ns = append(ns, rr.(*dns.NS).Ns)
	}
	if strings.Join(ns, ",") != "ns-us-east-1.cdn.example.com.,ns-eu-west-1.cdn.example.com." {
		t.Errorf("NS = %v", ns)
	}
	if a := z.records["ns-us-east-1.cdn.example.com."][dns.TypeA]; len(a) != 1 || a[0].(*dns.A).A.String() != "127.0.0.2" {
		t.Errorf("glue A = %v", a)
	}
	if a := z.records["ns-eu-west-1.cdn.example.com."][dns.TypeAAAA]; len(a) != 1 {
		t.Errorf("glue AAAA = %v", a)
	}
	if z.soa.Mbox != `ops\.team.example.com.` || z.soa.Ns != "ns-us-east-1.cdn.example.com." || z.soa.Serial != uint32(testNow.Unix()) {
		t.Errorf("SOA = %v", z.soa)
	}
	if !z.exists["www.cdn.example.com."] || z.exists["nope.cdn.example.com."] {
		t.Error("exists map wrong")
	}
}

func TestZoneRoutedNames(t *testing.T) {
	c := configtest.Minimal()
	c.Metadata.Name = "z"
	c.Spec.Origin = config.Origin{Dir: "."}
	c.Spec.Apps = []config.App{{Name: "video", Manifests: ".", Services: []config.AppService{
		{Service: "rtmp", Hostname: "Live.CDN.example.com", Health: config.AppHealth{Protocol: "tcp"}},
		{Service: "web", Hostname: "app.cdn.example.com"},
	}}}
	c.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.Region("us-east-1", "aws", "127.0.0.2"), configtest.Region("eu-west-1", "aws")},
		Autoscale: []config.Region{configtest.Region("ap-southeast-1", "aws", "127.0.0.4")},
	}
	cfg := configtest.Parse(t, c)
	z, err := buildZone(cfg, testNow)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]routed{
		"www.cdn.example.com.":                  {kind: routedHost},
		"live.cdn.example.com.":                 {kind: routedService, idx: 0},
		"app.cdn.example.com.":                  {kind: routedService, idx: 1},
		"us-east-1.edges.cdn.example.com.":      {kind: routedRegion, idx: 0},
		"ap-southeast-1.edges.cdn.example.com.": {kind: routedRegion, idx: 2},
	}
	if len(z.routed) != len(want) {
		t.Errorf("routed = %v, want %v", z.routed, want)
	}
	for n, r := range want {
		if got, ok := z.routed[n]; !ok || got != r || !z.exists[n] {
			t.Errorf("routed[%s] = %v %v, want %v", n, got, ok, r)
		}
	}
	if !z.exists["edges.cdn.example.com."] || z.exists["eu-west-1.edges.cdn.example.com."] {
		t.Error("edges.<zone> must be an empty non-terminal, a region without edges must not exist")
	}
}
