package local_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/controlplane"
	"github.com/kubecdn/kubecdn/internal/infra"
)

// TestApplyOutputsOnly: a module whose outputs change while its resources
// do not is applied all the same (real tofu), so the outputs kubecdn reads
// back and the managed kubeconfig it writes from them are the new ones,
// not what the state held.
func TestApplyOutputsOnly(t *testing.T) {
	tofu := filepath.Join(tofuDir(t), "tofu")
	t.Setenv("CHECKPOINT_DISABLE", "1")
	t.Setenv("TF_CLI_CONFIG_FILE", "/dev/null")
	dir := t.TempDir()
	file := filepath.Join(dir, "kubecdn.yaml")
	writeCDN(t, file, `{name: lkout, provider: local}`)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := controlplane.NewCA(caFile, filepath.Join(dir, "ca.key"), time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	// One resource that never changes; the endpoint output is what the
	// test moves.
	module := func(endpoint string) map[string]any {
		return map[string]any{
			"resource": map[string]any{"terraform_data": map[string]any{"cluster": map[string]any{"input": "fixed"}}},
			"output": map[string]any{
				"endpoint":       map[string]any{"value": endpoint},
				"ca_certificate": map[string]any{"value": base64.StdEncoding.EncodeToString(ca)},
				"cluster_name":   map[string]any{"value": "lkout"},
			},
		}
	}
	apply := func(endpoint string) infra.RegionResult {
		t.Helper()
		var out bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		res, err := infra.Run(ctx, cfg, infra.Options{Action: infra.Apply, Tofu: tofu, Out: &out,
			Generate: func(*config.CDN, config.RegionRef, string) (infra.Root, error) {
				return infra.Root{JSON: module(endpoint)}, nil
			}})
		if err == nil {
			err = res.Err()
		}
		if err != nil {
			t.Fatalf("apply with endpoint %s: %v\n%s", endpoint, err, out.String())
		}
		t.Logf("apply with endpoint %s:\n%s", endpoint, out.String())
		return res.Regions[0]
	}
	server := func() string {
		t.Helper()
		kc, err := clientcmd.LoadFromFile(filepath.Join(cfg.InfraDir(), "kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		c := kc.Clusters[kc.Contexts[config.InfraContext("lkout")].Cluster]
		return c.Server
	}

	if rr := apply("https://127.0.0.1:1"); rr.Plan.Add != 1 || rr.Outputs["endpoint"] != "https://127.0.0.1:1" || server() != "https://127.0.0.1:1" {
		t.Fatalf("first apply: plan %s, endpoint %q, kubeconfig server %q", rr.Plan, rr.Outputs["endpoint"], server())
	}
	rr := apply("https://127.0.0.1:2")
	if rr.Plan != (infra.Summary{Outputs: 1}) || !strings.Contains(rr.Plan.String(), "1 outputs to change") {
		t.Errorf("outputs-only plan summarized as %q", rr.Plan)
	}
	if rr.Outputs["endpoint"] != "https://127.0.0.1:2" || server() != "https://127.0.0.1:2" {
		t.Errorf("after the outputs changed: endpoint %q, kubeconfig server %q; want https://127.0.0.1:2", rr.Outputs["endpoint"], server())
	}
	if rr := apply("https://127.0.0.1:2"); rr.Plan != (infra.Summary{}) {
		t.Errorf("a third apply: plan %s, want no changes", rr.Plan)
	}
}
