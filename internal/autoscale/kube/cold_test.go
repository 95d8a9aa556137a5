package kube

import (
	"context"
	"encoding/base64"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/infra"
	"github.com/kubecdn/kubecdn/internal/kubetest"
)

// fakeCloud is a FAKE of a cloud's cluster module: instead of creating a
// cluster, its root is one built-in terraform_data resource whose outputs
// hand over a real API server this test already runs (the way provider
// local hands over its kubeconfig). Everything around it is real: tofu (or
// terraform) init, plan, apply and destroy, the managed kubeconfig, and
// kubecdn deploy onto the API server.
func fakeCloud(c *kubetest.Cluster) infra.Generator {
	return func(cfg *config.CDN, r config.RegionRef, dir string) (infra.Root, error) {
		return infra.Root{JSON: map[string]any{
			"terraform": map[string]any{"backend": map[string]any{"local": map[string]any{"path": "terraform.tfstate"}}},
			"resource":  map[string]any{"terraform_data": map[string]any{"cluster": map[string]any{"input": r.Name}}},
			"output": map[string]any{
				"endpoint":        map[string]any{"value": c.Server},
				"ca_certificate":  map[string]any{"value": base64.StdEncoding.EncodeToString(c.CAData)},
				"cluster_name":    map[string]any{"value": "${terraform_data.cluster.output}"},
				"kubeconfig_path": map[string]any{"value": c.Kubeconfig},
			},
		}}, nil
	}
}

// TestColdModeCreatesAndDestroysTheCluster: in cold mode opening a region
// whose cluster kubecdn infra has not made applies its module first (the
// region's context appears in the managed kubeconfig) and then deploys
// onto it; closing prunes and keeps the cluster; Reap destroys it only
// once the region has been closed longer than spec.autoscale.retain, and
// never while it is open.
func TestColdModeCreatesAndDestroysTheCluster(t *testing.T) {
	bin, err := infra.FindTofu("")
	if err != nil {
		t.Skipf("cold mode needs a real tofu or terraform binary: %v", err)
	}
	t.Setenv("CHECKPOINT_DISABLE", "1")
	e := newEnv(t, config.ModeCold, func(c *config.CDN, dir string) {
		c.Spec.Infra = &config.Infra{}
		c.Spec.Autoscale.Retain = config.Duration(time.Hour)
		eu := &c.Spec.Regions.Autoscale[0]
		eu.Provider, eu.Cluster = "local", config.Cluster{}
	})
	kc := filepath.Join(filepath.Dir(e.cfg.InfraDir()), "infra", "kubeconfig")
	if got := e.cfg.Spec.Regions.Autoscale[0].Cluster; got.Kubeconfig != kc || got.Context != "kubecdn-eu-west-1" {
		t.Fatalf("eu-west-1's cluster resolves to %+v, want the context kubecdn infra writes", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A cloud that refuses: the open fails, naming why, and nothing is
	// deployed (the controller backs off and tries again).
	a := e.actuator()
	a.Infra = func(context.Context, infra.Action, string) error { return errors.New("quota exceeded") }
	if err := a.Start(ctx, "eu-west-1"); err == nil || !strings.Contains(err.Error(), "creating the cluster of eu-west-1: quota exceeded") {
		t.Fatalf("Start with a failing apply = %v", err)
	}
	if n := e.edgeReplicas(); n != -1 {
		t.Fatalf("a failed apply still deployed: edges = %d", n)
	}

	var mu sync.Mutex
	var calls []string
	a.Infra = func(ctx context.Context, action infra.Action, region string) error {
		mu.Lock()
		calls = append(calls, string(action)+" "+region)
		mu.Unlock()
		res, err := infra.Run(ctx, e.cfg, infra.Options{Action: action, Regions: []string{region}, Tofu: bin, Yes: true,
			Generate: fakeCloud(e.clusters["eu-west-1"]), Out: tlog{t}})
		if err != nil {
			return err
		}
		return res.Err()
	}
	if clusterExists(e.cfg.Spec.Regions.Autoscale[0].Cluster) {
		t.Fatal("eu-west-1 has a cluster before it was ever opened")
	}
	if err := a.Start(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(calls, []string{"apply eu-west-1"}) {
		t.Fatalf("infra steps %v, want one apply", calls)
	}
	if n := e.edgeReplicas(); n != 2 {
		t.Fatalf("opened cold region: edges = %d, want 2 (deployed onto the cluster apply made)", n)
	}
	loaded, err := clientcmd.LoadFromFile(kc)
	if err != nil || loaded.Contexts["kubecdn-eu-west-1"] == nil {
		t.Fatalf("managed kubeconfig %s lacks kubecdn-eu-west-1: %v", kc, err)
	}

	now := time.Now()
	state := []autoscale.Region{{Name: "eu-west-1", Phase: autoscale.Open, Since: now.Add(-3 * time.Hour)}}
	regions := func() []autoscale.Region { return state }
	if got, err := a.Reap(ctx, now, regions); err != nil || len(got) > 0 {
		t.Fatalf("open region reaped: %v %v", got, err)
	}
	if err := a.Stop(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if n := e.edgeReplicas(); n != -1 {
		t.Errorf("closed cold region: edges = %d, want pruned", n)
	}
	if !clusterExists(e.cfg.Spec.Regions.Autoscale[0].Cluster) {
		t.Fatal("Stop destroyed the cluster at once; it is kept for spec.autoscale.retain")
	}
	state = []autoscale.Region{{Name: "eu-west-1", Phase: autoscale.Closed, Since: now.Add(-59 * time.Minute)}}
	if got, err := a.Reap(ctx, now, regions); err != nil || len(got) > 0 {
		t.Fatalf("region closed for less than retain reaped: %v %v", got, err)
	}
	state[0].Since = now.Add(-61 * time.Minute)
	got, err := a.Reap(ctx, now, regions)
	if err != nil || !slices.Equal(got, []string{"eu-west-1"}) {
		t.Fatalf("Reap = %v %v, want eu-west-1 destroyed", got, err)
	}
	if clusterExists(e.cfg.Spec.Regions.Autoscale[0].Cluster) {
		t.Error("after destroy the managed kubeconfig still has kubecdn-eu-west-1")
	}
	if got, err := a.Reap(ctx, now, regions); err != nil || len(got) > 0 {
		t.Errorf("a destroyed cluster was reaped again: %v %v", got, err)
	}
	if !slices.Equal(calls, []string{"apply eu-west-1", "destroy eu-west-1"}) {
		t.Errorf("infra steps %v, want apply then destroy", calls)
	}
	// Reopening creates it again.
	if err := a.Start(ctx, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if n := e.edgeReplicas(); n != 2 || !clusterExists(e.cfg.Spec.Regions.Autoscale[0].Cluster) {
		t.Errorf("reopened cold region: edges = %d, cluster %v", n, clusterExists(e.cfg.Spec.Regions.Autoscale[0].Cluster))
	}
}

// tlog writes tofu's progress lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }
