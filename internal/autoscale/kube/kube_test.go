package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/bearer"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/gslb"
	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/kubeops"
)

const testToken = "kube-actuator-test-token"

// env is a CDN of two regions on real kube-apiservers: us-east-1 always
// on, eu-west-1 autoscaled, and two real dns servers on loopback standing
// for us-east-1's dns pods (no kubelet runs them; staticReach names them).
type env struct {
	t        *testing.T
	cfg      *config.CDN
	clusters map[string]*kubetest.Cluster
	dns      []*gslb.Server
	reach    *staticReach
}

// Each mod, if any, changes the file (in dir) before it is loaded.
func newEnv(t *testing.T, mode config.AutoscaleMode, mods ...func(c *config.CDN, dir string)) *env {
	t.Helper()
	cs := kubetest.Start(t, "us-east-1", "eu-west-1")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubetest.WriteKubeconfig(t, kubeconfig, cs...)
	e := &env{t: t, clusters: map[string]*kubetest.Cluster{}}
	for i, c := range cs {
		e.clusters[c.Name] = c
		c.StartControllers(t, kubetest.Controllers{Interval: 50 * time.Millisecond, LoadBalancer: func(ns, name string) string {
			return fmt.Sprintf("192.0.2.%d", 10*i+len(name)%10)
		}})
	}
	c := configtest.Minimal()
	c.Spec.Routing.TTL = configtest.Duration(t, "1s")
	c.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.ClusterRegion("us-east-1", "aws", kubeconfig, "us-east-1")},
		Autoscale: []config.Region{configtest.ClusterRegion("eu-west-1", "gcp", kubeconfig, "eu-west-1")},
	}
	c.Spec.Autoscale = config.Autoscale{ScaleUpAbove: 50, ScaleDownBelow: 2, Window: configtest.Duration(t, "3s"),
		Cooldown: configtest.Duration(t, "3s"), Mode: mode}
	for _, m := range mods {
		m(c, dir)
	}
	e.cfg = configtest.Load(t, dir, c)
	e.reach = &staticReach{dns: map[string][]string{}}
	for range 2 {
		srv, admin := startDNS(t, e.cfg)
		e.dns = append(e.dns, srv)
		e.reach.dns["us-east-1"] = append(e.reach.dns["us-east-1"], admin)
	}
	res, err := deploy.Run(t.Context(), e.cfg, e.deployOptions())
	if err != nil || res.Err() != nil {
		t.Fatalf("first deploy: %v %v", err, res.Err())
	}
	return e
}

func (e *env) deployOptions() deploy.Options {
	o := deploy.Options{Poll: 50 * time.Millisecond, Timeout: 30 * time.Second}
	o.Render.Image = "example.com/kubecdn:test"
	return o
}

func (e *env) actuator() *Actuator {
	return &Actuator{CDN: e.cfg, Deploy: e.deployOptions(), Reach: e.reach, CallTimeout: 5 * time.Second}
}

// startDNS runs a real dns server of the file on loopback and returns its
// admin URL.
func startDNS(t *testing.T, cfg *config.CDN) (*gslb.Server, string) {
	t.Helper()
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
	srv, err := gslb.New(cfg, gslb.Options{PacketConn: pc, Listener: l, AdminListener: al, AdminToken: testToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("dns did not stop within 5s")
		}
	})
	return srv, "http://" + al.Addr().String()
}

// staticReach names fixed admin URLs per region and sends the admin token,
// as kubeops does through the API servers (whose pod proxy needs pods a
// kubelet runs; test/ops covers that path).
type staticReach struct {
	edges, dns map[string][]string
	down       map[string]bool
}

func (s *staticReach) Admins(_ context.Context, region string) ([]string, []string, error) {
	if s.down[region] {
		return nil, nil, errors.New("api server down")
	}
	return s.edges[region], s.dns[region], nil
}

func (s *staticReach) Client() *http.Client {
	return &http.Client{Transport: tokenTransport{}, Timeout: 10 * time.Second}
}

type tokenTransport struct{}

func (tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	bearer.Set(req, testToken)
	return http.DefaultTransport.RoundTrip(req)
}

// edgesInDNSFile are the edges us-east-1's dns is given for region by
// deploy (its kubecdn.yaml in the kubecdn-config ConfigMap).
func (e *env) edgesInDNSFile(region string) []string {
	e.t.Helper()
	cm, err := e.clusters["us-east-1"].Client.CoreV1().ConfigMaps("kubecdn").Get(context.Background(), "kubecdn-config", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(cm.Data["kubecdn.yaml"]))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range cfg.AllRegions() {
		if r.Name == region {
			return r.Edges
		}
	}
	return nil
}

func (e *env) routed(region string) []bool {
	var out []bool
	for _, s := range e.dns {
		out = append(out, s.Routed(region))
	}
	return out
}

// edgeReplicas is eu-west-1's edge StatefulSet's spec.replicas; -1 when it
// does not exist.
func (e *env) edgeReplicas() int32 {
	e.t.Helper()
	s, err := e.clusters["eu-west-1"].Client.AppsV1().StatefulSets("kubecdn").Get(context.Background(), "kubecdn-edge", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return -1
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return *s.Spec.Replicas
}

// TestOpenAndClose walks eu-west-1 through the steps the controller takes:
// Start applies its objects and gives the dns its edges while keeping it
// out of the answers; Route puts it in; closing takes it out of every dns
// replica first, with its objects still serving, and Stop then prunes
// them and takes its edges out of the dns's file.
func TestOpenAndClose(t *testing.T) {
	e := newEnv(t, "")
	a := e.actuator()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if n := e.edgeReplicas(); n != -1 {
		t.Fatalf("eu-west-1 deployed before opening: %d edges", n)
	}
	if err := a.Start(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if n := e.edgeReplicas(); n != 2 {
		t.Errorf("after Start, eu-west-1's edges = %d, want 2", n)
	}
	if got := e.edgesInDNSFile("eu-west-1"); len(got) == 0 {
		t.Error("after Start, the dns's file has no edges for eu-west-1")
	}
	if got := e.routed("eu-west-1"); slices.Contains(got, true) {
		t.Errorf("after Start (warming), eu-west-1 is in the answers of dns replicas: %v", got)
	}
	if err := a.Route(ctx, "eu-west-1", true); err != nil {
		t.Fatal(err)
	}
	if got := e.routed("eu-west-1"); slices.Contains(got, false) {
		t.Errorf("after Route in, routed = %v", got)
	}

	// Close: out of DNS first, the region still deployed.
	if err := a.Route(ctx, "eu-west-1", false); err != nil {
		t.Fatal(err)
	}
	if got := e.routed("eu-west-1"); slices.Contains(got, true) {
		t.Errorf("after Route out, routed = %v", got)
	}
	if n := e.edgeReplicas(); n != 2 {
		t.Errorf("draining region's edges = %d, want still 2", n)
	}
	if err := a.Stop(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for e.edgeReplicas() != -1 {
		if time.Now().After(deadline) {
			t.Fatal("closed region's edges not pruned")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := e.edgesInDNSFile("eu-west-1"); len(got) != 0 {
		t.Errorf("after Stop, the dns's file still has eu-west-1's edges %v", got)
	}
}

// TestWarmMode: Stop scales the edges to zero and keeps every object;
// Start brings them back to the rendered count.
func TestWarmMode(t *testing.T) {
	e := newEnv(t, config.ModeWarm)
	a := e.actuator()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := a.Start(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if n := e.edgeReplicas(); n != 0 {
		t.Fatalf("warm stop: edges = %d, want 0 (and the StatefulSet kept)", n)
	}
	if _, err := e.clusters["eu-west-1"].Client.AppsV1().Deployments("kubecdn").Get(ctx, "kubecdn-dns", metav1.GetOptions{}); err != nil {
		t.Errorf("warm stop removed the dns: %v", err)
	}
	if err := a.Start(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if n := e.edgeReplicas(); n != 2 {
		t.Errorf("reopened warm region: edges = %d, want 2", n)
	}
}

// TestColdModeWithoutInfraRefused: cold mode with nothing to run kubecdn
// infra with refuses to open (and Run to start), naming the missing tofu;
// nothing is deployed.
func TestColdModeWithoutInfraRefused(t *testing.T) {
	cfg := configtest.Minimal()
	cfg.Spec.Regions.Autoscale = []config.Region{configtest.Region("eu-west-1", "gcp")}
	cfg.Spec.Autoscale.Mode = config.ModeCold
	a := &Actuator{CDN: cfg}
	for name, step := range map[string]func() error{
		"start": func() error { return a.Start(t.Context(), "eu-west-1") },
		"run":   func() error { return Run(t.Context(), cfg, Options{}) },
	} {
		if err := step(); !errors.Is(err, ErrNoInfra) {
			t.Errorf("%s: %v, want ErrNoInfra", name, err)
		}
	}
}

// TestRouteNeedsRunningRegions: a dns that may answer (always-on) and
// cannot be reached fails the step; a closed region's cannot fail it.
func TestRouteNeedsRunningRegions(t *testing.T) {
	cfg := configtest.Minimal()
	cfg.Spec.Regions.Autoscale = []config.Region{configtest.Region("eu-west-1", "gcp"), configtest.Region("ap-south-1", "aws")}
	cfg = configtest.Parse(t, cfg)
	srv, admin := startDNS(t, cfg)
	reach := &staticReach{dns: map[string][]string{"us-east-1": {admin}}, down: map[string]bool{"ap-south-1": true}}
	a := &Actuator{CDN: cfg, Reach: reach}
	if err := a.Route(t.Context(), "eu-west-1", false); err != nil {
		t.Fatalf("closed ap-south-1 unreachable failed the step: %v", err)
	}
	if srv.Routed("eu-west-1") {
		t.Error("eu-west-1 still routed")
	}
	reach.down["us-east-1"] = true
	if err := a.Route(t.Context(), "eu-west-1", true); err == nil {
		t.Error("always-on us-east-1 unreachable: the step succeeded")
	}
	a.Phase = func(r string) autoscale.Phase { return map[string]autoscale.Phase{"ap-south-1": autoscale.Open}[r] }
	reach.down["us-east-1"] = false
	if err := a.Route(t.Context(), "eu-west-1", true); err == nil {
		t.Error("running ap-south-1 unreachable: the step succeeded")
	}
}

// TestStatusReadsTheDeployedAutoscaler: `kubecdn status -f` (kubeops)
// shows each autoscale region as the deployed autoscaler stored it in the
// first always-on region: phase, since when and the latest decision with
// its inputs; a file whose autoscaler never ran shows none.
func TestStatusReadsTheDeployedAutoscaler(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	src, err := kubeops.New(e.cfg, kubeops.Options{Render: e.deployOptions().Render})
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := src.Regions(ctx)
	for _, tg := range ts {
		if tg.Autoscale != nil {
			t.Errorf("%s: autoscale view %+v before any autoscaler ran", tg.Region, tg.Autoscale)
		}
	}
	since := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	open := autoscale.Action{Kind: autoscale.ActOpen, Region: "eu-west-1", Reason: "displaced demand above 50 req/s for 3s",
		Signal: "displaced", Min: 60, Max: 70, Samples: 4, From: since.Add(-3 * time.Second), To: since, RTTGainMs: 104}
	st := autoscale.State{Regions: []autoscale.Region{{Name: "us-east-1", AlwaysOn: true, Phase: autoscale.Open},
		{Name: "eu-west-1", Phase: autoscale.Open, Since: since, InDNS: true}},
		Decisions: []autoscale.Record{{At: since, Action: open, Result: "done"}}}
	store := autoscale.KubeStore{Client: e.clusters["us-east-1"].Client, Namespace: "kubecdn", Name: StateName}
	if err := store.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	ts, _ = src.Regions(ctx)
	var eu *ops.Autoscale
	for _, tg := range ts {
		switch tg.Region {
		case "us-east-1":
			if tg.Autoscale != nil {
				t.Errorf("always-on us-east-1 has an autoscale view: %+v", tg.Autoscale)
			}
		case "eu-west-1":
			eu = tg.Autoscale
		}
	}
	if eu == nil || eu.Phase != "open" || !eu.Since.Equal(since) || eu.Result != "done" ||
		!strings.Contains(eu.Decision, "open eu-west-1: displaced demand above 50 req/s") || !strings.Contains(eu.Decision, "its users 104 ms closer") {
		t.Fatalf("eu-west-1's autoscale view %+v, want open since %s with its decision", eu, since)
	}
}
