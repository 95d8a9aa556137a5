package autoscale_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/gslb"
)

// rerouteFile is replicaFile with an edge for eu-west-1 too.
var rerouteFile = strings.Replace(replicaFile, "{name: eu-west-1, provider: aws}", `{name: eu-west-1, provider: aws, edges: ["%s"]}`, 1)

// okEdge serves 200 on ip (a free port) for the dns's health probes.
func okEdge(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("loopback %s: %v", ip, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// restartable is one dns replica that can be stopped and started again on
// the same addresses, as a restarted pod behind its Service.
type restartable struct {
	cfg             *config.CDN
	udp, tcp, admin string
	stop            func()
}

func (r *restartable) start(t *testing.T) {
	t.Helper()
	var pc net.PacketConn
	var l, al net.Listener
	var err error
	// The ports were ours a moment ago; a restart takes them back.
	for try := 0; try < 50; try++ {
		if pc, err = net.ListenPacket("udp", r.udp); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if l, err = net.Listen("tcp", r.tcp); err != nil {
		t.Fatal(err)
	}
	if al, err = net.Listen("tcp", r.admin); err != nil {
		t.Fatal(err)
	}
	r.udp, r.tcp, r.admin = pc.LocalAddr().String(), l.Addr().String(), al.Addr().String()
	srv, err := gslb.New(r.cfg, gslb.Options{PacketConn: pc, Listener: l, AdminListener: al, AdminToken: dnsToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	r.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("dns replica did not stop within 5s")
		}
	}
}

// answer is the A record the replica gives a resolver in network, "" for
// none.
func (r *restartable) answer(t *testing.T, network string) string {
	t.Helper()
	p := netip.MustParsePrefix(network)
	m := new(dns.Msg)
	m.SetQuestion("www.cdn.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
	in, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, r.udp)
	if err != nil {
		t.Fatalf("dns %s: %v", r.udp, err)
	}
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// dnsOnly is the autoscaler's Source with the dns replicas alone: their
// displaced demand and routing, no edges (served load reads zero).
type dnsOnly struct{ d *autoscale.DNSSource }

func (s dnsOnly) Sample(ctx context.Context) (autoscale.Sample, error) {
	return s.d.Displaced(ctx, func(r string) bool { return r == "us-east-1" }), nil
}

// refuseSteps is an Actuator that must not be asked anything: the test
// moves no region.
type refuseSteps struct{ t *testing.T }

func (a refuseSteps) fail(step, region string) error {
	a.t.Errorf("actuator asked to %s %s", step, region)
	return errors.New("refused")
}
func (a refuseSteps) Start(_ context.Context, r string) error { return a.fail("start", r) }
func (a refuseSteps) Warm(_ context.Context, r string) error  { return a.fail("warm", r) }
func (a refuseSteps) Stop(_ context.Context, r string) error  { return a.fail("stop", r) }
func (a refuseSteps) Route(_ context.Context, r string, in bool) error {
	return a.fail(fmt.Sprintf("route (in=%v)", in), r)
}

// TestControllerReassertsRoutingAfterADNSRestart: eu-west-1 is closed and
// out of both replicas' answers, though its edge passes the probes (a warm
// region, or its edges brought back by a deploy by hand). One replica
// restarts and has forgotten: it answers Dublin with eu-west-1. The
// controller sees the replica disagree in its next sample, takes the region
// out of that replica again, and Dublin is answered by us-east-1.
func TestControllerReassertsRoutingAfterADNSRestart(t *testing.T) {
	east, eu := okEdge(t, "127.0.0.41"), okEdge(t, "127.0.0.42")
	cfg, err := config.Parse([]byte(fmt.Sprintf(rerouteFile, east, eu)))
	if err != nil {
		t.Fatal(err)
	}
	reps := []*restartable{{cfg: cfg, udp: "127.0.0.1:0", tcp: "127.0.0.1:0", admin: "127.0.0.1:0"},
		{cfg: cfg, udp: "127.0.0.1:0", tcp: "127.0.0.1:0", admin: "127.0.0.1:0"}}
	var admins []string
	for _, r := range reps {
		r.start(t)
		defer func() { r.stop() }()
		admins = append(admins, "http://"+r.admin)
	}
	src := &autoscale.DNSSource{Admins: admins, Token: dnsToken}
	// The state an autoscaler left: eu-west-1 closed and out.
	if err := src.Route(t.Context(), "eu-west-1", false); err != nil {
		t.Fatal(err)
	}
	waitAnswer := func(r *restartable, want, why string) {
		t.Helper()
		got := ""
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if got = r.answer(t, "203.0.113.0/24"); got == want {
				return
			}
		}
		t.Fatalf("%s: replica %s answers Dublin %q, want %q", why, r.admin, got, want)
	}
	eastIP, euIP := "127.0.0.41", "127.0.0.42"
	waitAnswer(reps[0], eastIP, "closed region routed out")
	waitAnswer(reps[1], eastIP, "closed region routed out")

	// The restart, with no controller running: the replica forgot.
	reps[1].stop()
	reps[1].start(t)
	waitAnswer(reps[1], euIP, "restarted replica, before any controller (the fault this guards against)")

	c := &autoscale.Controller{
		Settings: autoscale.Settings{ScaleUpAbove: 1000, ScaleDownBelow: 1, Window: time.Minute, Cooldown: time.Minute,
			MaxGap: 10 * time.Second, Backoff: time.Second, MaxBackoff: time.Second},
		Every: 100 * time.Millisecond, StepTimeout: 5 * time.Second,
		Source: dnsOnly{src}, Actuator: refuseSteps{t}, Store: autoscale.FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
		Reroute: src.RouteReplica, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now,
	}
	if err := c.Load(t.Context(), []autoscale.Region{{Name: "us-east-1", AlwaysOn: true, Phase: autoscale.Open, InDNS: true},
		{Name: "eu-west-1", Phase: autoscale.Closed}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { c.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	waitAnswer(reps[1], eastIP, "controller running after the restart")
	waitAnswer(reps[0], eastIP, "the replica that did not restart")

	// Again, with the controller running the whole time.
	reps[1].stop()
	reps[1].start(t)
	time.Sleep(time.Second) // the probes pass eu-west-1's edge within 200 ms
	waitAnswer(reps[1], eastIP, "second restart, controller running")
	for range 10 {
		if got := reps[1].answer(t, "203.0.113.0/24"); got != eastIP {
			t.Fatalf("after the second restart Dublin is answered %q, want %q to stay", got, eastIP)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
