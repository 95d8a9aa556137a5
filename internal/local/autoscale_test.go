package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

func TestPickWarm(t *testing.T) {
	a := []adminapi.HotKey{{URL: "/a", Bytes: 100, Hits: 5}, {URL: "/big", Bytes: 10_000, Hits: 50}, {URL: "/b", Bytes: 300, Hits: 4}}
	b := []adminapi.HotKey{{URL: "/b", Bytes: 300, Hits: 4}, {URL: "/c", Bytes: 50, Hits: 1}}
	for _, tc := range []struct {
		name  string
		lists [][]adminapi.HotKey
		n     int
		bytes int64
		want  []string
	}{
		{name: "hits summed over the edges, most first", lists: [][]adminapi.HotKey{a, b}, n: 10, bytes: 1 << 20, want: []string{"/big", "/b", "/a", "/c"}},
		{name: "bounded by count", lists: [][]adminapi.HotKey{a, b}, n: 2, bytes: 1 << 20, want: []string{"/big", "/b"}},
		{name: "a key too large is skipped for smaller ones", lists: [][]adminapi.HotKey{a, b}, n: 10, bytes: 420, want: []string{"/b", "/a"}},
		{name: "bounded by bytes", lists: [][]adminapi.HotKey{a, b}, n: 10, bytes: 450, want: []string{"/b", "/a", "/c"}},
		{name: "nothing", lists: nil, n: 10, bytes: 100, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickWarm(tc.lists, tc.n, tc.bytes); !slices.Equal(got, tc.want) {
				t.Errorf("pickWarm = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestUpAutoscalePinsAndRestart drives an autoscale region of a running up
// by hand: a pin opens it (its edges start outside the answers, then join
// them), a restart of up resumes it from the stored state, and a pin
// closed takes it out of the answers, then stops its edges and frees its
// ports. The dry run decides and changes nothing.
func TestUpAutoscalePinsAndRestart(t *testing.T) {
	ipA, ipB := "127.0.0.56", "127.0.0.57"
	pa, pb := freeEdgePort(t, ipA), freeEdgePort(t, ipB)
	euEdge := fmt.Sprintf("%s:%d", ipB, pb)
	c := localCDN([]config.Region{configtest.Region("us-east-1", "local", fmt.Sprintf("%s:%d", ipA, pa))},
		[]config.Region{configtest.Region("eu-west-1", "local", euEdge)})
	c.Spec.Routing = config.Routing{Policy: config.PolicyGeo, Health: fastHealth(t), TTL: configtest.Duration(t, "1s")}
	// Thresholds no demand in this test reaches: only pins move it.
	c.Spec.Autoscale = config.Autoscale{ScaleUpAbove: 1000, ScaleDownBelow: 0.001,
		Window: configtest.Duration(t, "3s"), Cooldown: configtest.Duration(t, "3s")}
	cfg := configtest.Parse(t, c)
	state := filepath.Join(t.TempDir(), "autoscale.json")
	start := func(dryRun bool) (*Up, func()) {
		t.Helper()
		u, err := New(cfg, Options{
			PlanOptions: PlanOptions{Demo: true, DNS: freeTCP(t, "127.0.0.1"), DNSAdmin: freeTCP(t, "127.0.0.1"),
				Control: freeTCP(t, "127.0.0.1"), OriginAddr: freeTCP(t, "127.0.0.1")},
			AdminToken: "tok", DemoLargeSize: 1 << 20, TokenFile: t.TempDir() + "/token",
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			Autoscale: AutoscaleOptions{StateFile: state, Every: 200 * time.Millisecond, DryRun: dryRun, DrainMax: 5 * time.Second},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- u.Run(ctx) }()
		return u, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	waitPhase := func(u *Up, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if v := u.as.views()["eu-west-1"]; v != nil && v.Phase == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("eu-west-1 not %s within 15s: %+v", want, u.as.views()["eu-west-1"])
	}
	ctx := context.Background()

	u, stop := start(false)
	if err := u.as.ctrl.Pin(ctx, "us-east-1", autoscale.Open); !errors.Is(err, autoscale.ErrUnknownRegion) {
		t.Errorf("pinning an always-on region: err = %v", err)
	}
	if _, err := u.SetRegion("eu-west-1", true); !errors.Is(err, ErrAutoscaled) {
		t.Errorf("region up of an autoscale region under the autoscaler: err = %v", err)
	}
	waitStatus(t, fmt.Sprintf("http://%s:%d/.well-known/kubecdn/health", ipA, pa), 200) // Run has started
	// Start returns once the dns has probed the edges healthy, so that
	// routing the region in answers with it at once; the region stays
	// out of the answers until then.
	if err := u.as.Start(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	for _, r := range u.dns.State().Regions {
		if r.Name == "eu-west-1" && (len(r.Edges) != 1 || !r.Edges[0].Probed || !r.Edges[0].Healthy || r.Routed) {
			t.Errorf("eu-west-1 started: routed %v, its edges in the dns %+v", r.Routed, r.Edges)
		}
	}
	if err := u.as.Stop(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if err := u.as.ctrl.Pin(ctx, "eu-west-1", autoscale.Open); err != nil {
		t.Fatal(err)
	}
	waitPhase(u, "open")
	if !u.dns.Routed("eu-west-1") {
		t.Error("eu-west-1 open but not routed")
	}

	waitStatus(t, "http://"+euEdge+"/.well-known/kubecdn/health", 200)
	v := u.as.views()["eu-west-1"]
	if v.Pin != "open" || !strings.Contains(v.Decision, "pinned open by an operator") || v.Result != "done" {
		t.Errorf("view after the pin: %+v", v)
	}
	stop()

	// A restart resumes the stored state: the edges run and are answered.
	u, stop = start(false)
	waitStatus(t, "http://"+euEdge+"/.well-known/kubecdn/health", 200)
	if !u.dns.Routed("eu-west-1") {
		t.Error("eu-west-1 resumed open but not routed")
	}
	if err := u.as.ctrl.Pin(ctx, "eu-west-1", autoscale.Closed); err != nil {
		t.Fatal(err)
	}
	waitPhase(u, "closed")
	if ln, err := net.Listen("tcp", euEdge); err != nil {
		t.Errorf("eu-west-1 closed, its address is still bound: %v", err)
	} else {
		ln.Close()
	}
	ts, _ := u.Regions(ctx)
	if ts[1].State != StateClosed || ts[1].Autoscale == nil || ts[1].Autoscale.Phase != "closed" {
		t.Errorf("target after closing: %+v", ts[1])
	}
	stop()

	// A dry run decides (the pin open) and changes nothing.
	u, stop = start(true)
	defer stop()
	if err := u.as.ctrl.Pin(ctx, "eu-west-1", autoscale.Open); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(u.as.views()["eu-west-1"].Result, "dry run") {
		time.Sleep(50 * time.Millisecond)
	}
	if v := u.as.views()["eu-west-1"]; v.Result != "dry run" || v.Phase != "closed" {
		t.Errorf("dry run: %+v", v)
	}
	if ln, err := net.Listen("tcp", euEdge); err != nil {
		t.Errorf("dry run started eu-west-1's edge: %v", err)
	} else {
		ln.Close()
	}
}
