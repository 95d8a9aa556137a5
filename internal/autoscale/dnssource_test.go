package autoscale_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/gslb"
)

const dnsToken = "dns-source-token"

// replica is one real dns server on loopback.
type replica struct {
	srv   *gslb.Server
	admin string // base URL
	stop  func()
}

const replicaFile = `apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: t}
spec:
  zone: cdn.test
  hostnames: [www.cdn.test]
  origin: {url: "http://127.0.0.1:1"}
  routing:
    policy: geo
    health: {interval: 200ms, timeout: 100ms}
    geo:
      networks:
        - {cidr: 198.51.100.0/24, location: {lat: 40.7, lon: -74.0}}  # New York
        - {cidr: 203.0.113.0/24, location: {lat: 53.3, lon: -6.3}}    # Dublin
  regions:
    alwaysOn:
      - {name: us-east-1, provider: aws, edges: ["%s"]}
    autoscale:
      - {name: eu-west-1, provider: aws}
`

// startReplicas runs n dns replicas of one file, with the clock now, on
// free loopback ports, and an edge for us-east-1 that passes its probes.
func startReplicas(t *testing.T, n int, now func() time.Time) []*replica {
	t.Helper()
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(edge.Close)
	cfg, err := config.Parse([]byte(fmt.Sprintf(replicaFile, edge.Listener.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	var out []*replica
	for range n {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		al, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := gslb.New(cfg, gslb.Options{PacketConn: pc, Listener: l, AdminListener: al, AdminToken: dnsToken,
			Now: now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Error("dns replica did not stop within 5s")
			}
		}
		t.Cleanup(stop)
		out = append(out, &replica{srv: srv, admin: "http://" + al.Addr().String(), stop: stop})
	}
	return out
}

// ask sends n A queries from a resolver in network (EDNS Client Subnet).
func ask(t *testing.T, r *replica, network string, n int) {
	t.Helper()
	p := netip.MustParsePrefix(network)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for range n {
		m := new(dns.Msg)
		m.SetQuestion("www.cdn.test.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
			SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		if _, _, err := c.Exchange(m, r.srv.UDPAddr().String()); err != nil {
			t.Fatal(err)
		}
	}
}

func openOnly(names ...string) func(string) bool {
	return func(r string) bool {
		for _, n := range names {
			if n == r {
				return true
			}
		}
		return false
	}
}

// TestDNSSourceSumsReplicas: the displaced demand is the sum over the
// replicas for the regions not open; a stopped replica, or one that
// answers something else, is named in Missing.
func TestDNSSourceSumsReplicas(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&t0)
	now := func() time.Time { return *clock.Load() }
	reps := startReplicas(t, 2, now)
	// The replicas take a snapshot of their totals at start and every
	// second: let them take one at t0, before any query.
	time.Sleep(1200 * time.Millisecond)
	ask(t, reps[0], "203.0.113.0/24", 20) // Dublin: eu-west-1, closed
	ask(t, reps[1], "203.0.113.0/24", 10)
	ask(t, reps[1], "198.51.100.0/24", 7) // New York: us-east-1, open
	t2 := t0.Add(2 * time.Second)
	clock.Store(&t2)

	src := &autoscale.DNSSource{Admins: []string{reps[0].admin, reps[1].admin + "/"}, Token: dnsToken, Now: now}
	s := src.Displaced(context.Background(), openOnly("us-east-1"))
	if !s.Complete() || !s.At.Equal(t2) {
		t.Fatalf("sample: missing %v at %v, want complete at %v", s.Missing, s.At, t2)
	}
	if want := map[string]float64{"eu-west-1": 15}; fmt.Sprint(s.Displaced) != fmt.Sprint(want) {
		t.Errorf("displaced %v, want %v ((20+10) queries over 2s, us-east-1 open)", s.Displaced, want)
	}
	// With us-east-1 not open, its demand is displaced too.
	if s := src.Displaced(context.Background(), openOnly()); s.Displaced["us-east-1"] != 3.5 {
		t.Errorf("nothing open: displaced %v, want us-east-1 3.5", s.Displaced)
	}

	// Something that is no dns (a wrong URL) is named too.
	notDNS := httptest.NewServer(http.NotFoundHandler())
	defer notDNS.Close()
	bad := &autoscale.DNSSource{Admins: []string{reps[0].admin, notDNS.URL}, Token: dnsToken, Now: now}
	if s := bad.Displaced(context.Background(), openOnly()); len(s.Missing) != 1 || !strings.Contains(s.Missing[0], notDNS.URL) || !strings.Contains(s.Missing[0], "404") {
		t.Errorf("a wrong URL: missing %v, want it named with 404", s.Missing)
	}

	reps[1].stop()
	s = src.Displaced(context.Background(), openOnly("us-east-1"))
	if len(s.Missing) != 1 || !strings.Contains(s.Missing[0], reps[1].admin) || strings.Contains(s.Missing[0], reps[0].admin) {
		t.Fatalf("one replica stopped: missing %v, want %s named", s.Missing, reps[1].admin)
	}
	if s.Displaced["eu-west-1"] != 10 {
		t.Errorf("one replica stopped: displaced %v, want the other's eu-west-1 10", s.Displaced)
	}
}

// TestDNSSourceRoute: Route switches every replica; a stopped replica or a
// region a replica does not know fails the call, naming the replica, while
// the others are switched.
func TestDNSSourceRoute(t *testing.T) {
	reps := startReplicas(t, 2, nil)
	src := &autoscale.DNSSource{Admins: []string{reps[0].admin, reps[1].admin}, Token: dnsToken, Timeout: time.Second}
	ctx := context.Background()
	if err := src.Route(ctx, "us-east-1", false); err != nil {
		t.Fatal(err)
	}
	for i, r := range reps {
		if r.srv.Routed("us-east-1") {
			t.Errorf("replica %d: us-east-1 still routed", i)
		}
	}
	if err := src.Route(ctx, "us-east-1", true); err != nil {
		t.Fatal(err)
	}
	for i, r := range reps {
		if !r.srv.Routed("us-east-1") {
			t.Errorf("replica %d: us-east-1 not routed back", i)
		}
	}

	err := src.Route(ctx, "mars-1", false)
	if err == nil || !strings.Contains(err.Error(), reps[0].admin) || !strings.Contains(err.Error(), reps[1].admin) || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown region: %v, want both replicas named with 404", err)
	}

	reps[1].stop()
	err = src.Route(ctx, "us-east-1", false)
	if err == nil || !strings.Contains(err.Error(), reps[1].admin) || strings.Contains(err.Error(), reps[0].admin) {
		t.Errorf("one replica stopped: %v, want an error naming %s only", err, reps[1].admin)
	}
	if reps[0].srv.Routed("us-east-1") {
		t.Error("the replica that answered was not switched")
	}
}
