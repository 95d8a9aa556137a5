package gslb

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
)

func TestZoneNameserversFromRegions(t *testing.T) {
	cfg, err := config.Parse([]byte(`apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: z}
spec:
  zone: CDN.example.com.
  hostnames: [www.cdn.example.com]
  origin: {dir: .}
  dns: {soa: {email: ops.team@example.com}}
  regions:
    alwaysOn:
      - {name: us-east-1, provider: aws, dns: "127.0.0.2:5353"}
      - {name: eu-west-1, provider: aws, dns: "2001:db8::53"}
      - {name: us-west-2, provider: aws}
`))
	if err != nil {
		t.Fatal(err)
	}
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
	cfg, err := config.Parse([]byte(`apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: z}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {dir: .}
  apps:
    - name: video
      manifests: .
      services:
        - {service: rtmp, hostname: Live.CDN.example.com, health: {protocol: tcp}}
        - {service: web, hostname: app.cdn.example.com}
  regions:
    alwaysOn:
      - {name: us-east-1, provider: aws, edges: ["127.0.0.2"]}
      - {name: eu-west-1, provider: aws}
    autoscale:
      - {name: ap-southeast-1, provider: aws, edges: ["127.0.0.4"]}
`))
	if err != nil {
		t.Fatal(err)
	}
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
