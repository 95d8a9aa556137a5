package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/infra"
	"github.com/kubecdn/kubecdn/internal/kubetest"
)

// tofuForTest is a real tofu or terraform binary, or a skip.
func tofuForTest(t *testing.T) string {
	t.Helper()
	bin, err := infra.FindTofu("")
	if err != nil {
		t.Skipf("kubecdn infra end to end needs a real tofu or terraform binary: %v", err)
	}
	return bin
}

// fakeInfraRoots is a FAKE generator: instead of a cloud module it makes a
// root of built-in terraform_data resources only (no provider plugin to
// download) whose outputs describe a real API server this test runs. Region
// "bad" fails at apply on purpose (a local-exec that exits 3). Region
// "from-file" hands over a kubeconfig file as provider local does; the
// others hand over endpoint and CA.
func fakeInfraRoots(c *kubetest.Cluster) infra.Generator {
	return func(cfg *config.CDN, r config.RegionRef, dir string) (infra.Root, error) {
		data := map[string]any{"input": map[string]any{"region": r.Name, "pools": len(r.Infra.NodePools)}}
		if r.Name == "bad" {
			data["provisioner"] = []any{map[string]any{"local-exec": map[string]any{"command": "echo the cloud said no >&2; exit 3"}}}
		}
		out := map[string]any{
			"endpoint":       map[string]any{"value": c.Server},
			"ca_certificate": map[string]any{"value": base64.StdEncoding.EncodeToString(c.CAData), "sensitive": true},
			"cluster_name":   map[string]any{"value": "${terraform_data.cluster.output.region}"},
		}
		if r.Name == "from-file" {
			out["kubeconfig_path"] = map[string]any{"value": c.Kubeconfig}
		}
		return infra.Root{JSON: map[string]any{
			"terraform": map[string]any{"backend": map[string]any{"local": map[string]any{"path": "terraform.tfstate"}}},
			"resource":  map[string]any{"terraform_data": map[string]any{"cluster": data}},
			"output":    out,
		}}, nil
	}
}

const infraTestFile = `apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: demo}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {url: "http://127.0.0.1:1"}
  routing: {policy: failover}
  infra: {dir: infra}
  regions:
    alwaysOn:
      - {name: from-file, provider: local, infra: {nodePools: [{name: edge}]}}
      - {name: from-outputs, provider: local, infra: {nodePools: [{name: edge}]}}
      - {name: bad, provider: local, infra: {nodePools: [{name: edge}]}}
      - {name: own, provider: local, cluster: {kubeconfig: KUBECONFIG, context: CONTEXT}}
`

func TestInfraEndToEnd(t *testing.T) {
	bin := tofuForTest(t)
	t.Setenv(infra.EnvTofu, bin)
	t.Setenv("CHECKPOINT_DISABLE", "1")
	// Whatever the user's environment names (infra.Run refuses a CLI
	// configuration file that is not there).
	c := kubetest.Start(t, "infra-e2e")[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "kubecdn.yaml")
	body := strings.NewReplacer("KUBECONFIG", c.Kubeconfig, "CONTEXT", c.Context).Replace(infraTestFile)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	hooks := infraHooks{Generate: fakeInfraRoots(c)}
	var mu sync.Mutex // Register runs in each region's goroutine
	var registered []string
	hooks.Register = func(_ context.Context, region, server string, ca []byte, _ *clientcmdapi.ExecConfig) error {
		if server != c.Server || !bytes.Equal(ca, c.CAData) {
			return fmt.Errorf("registration of %s got server %q and a CA of %d bytes", region, server, len(ca))
		}
		mu.Lock()
		registered = append(registered, region)
		mu.Unlock()
		return nil
	}
	run := func(args ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		code := runInfraWith(ctx, append(args, "-f", file), &out, &errb, hooks)
		t.Logf("kubecdn infra %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		return code, out.String() + errb.String()
	}

	// plan first: nothing applied, one line per region
	code, out := run("plan")
	if code != 0 || strings.Count(out, "plan: 1 to add, 0 to change, 0 to destroy") != 3 {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	// apply: the failing region on its own line, exit 1, the others ready
	code, out = run("apply")
	if code != 1 {
		t.Fatalf("apply with a failing region exited %d", code)
	}
	for _, want := range []string{"bad            failed: tofu apply", "from-file      ready: context kubecdn-from-file",
		"from-outputs   ready: context kubecdn-from-outputs", "infra apply: 1 of 3 regions failed", "the cloud said no"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %q", want)
		}
	}
	if strings.Contains(out, "own ") {
		t.Errorf("a region with its own cluster: was touched:\n%s", out)
	}
	kc := filepath.Join(dir, "infra", "kubeconfig")
	loaded, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := loaded.Contexts["kubecdn-bad"]; ok || len(loaded.Contexts) != 2 {
		t.Errorf("contexts = %v, want kubecdn-from-file and kubecdn-from-outputs", loaded.Contexts)
	}
	if st, _ := os.Stat(kc); st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", st.Mode().Perm())
	}

	// the regions with no cluster: now reach the server through the
	// managed kubeconfig, as deploy dials them
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.AllRegions()[:2] {
		cl, err := deploy.Connect(r.Cluster)
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if err := cl.Check(context.Background()); err != nil && r.Name == "from-file" {
			t.Errorf("%s via %+v: %v", r.Name, r.Cluster, err)
		}
	}
	if len(registered) != 2 {
		t.Errorf("registered %v, want the two applied regions", registered)
	}

	// re-run converges: nothing more to add for the applied regions
	code, out = run("plan", "from-file", "from-outputs")
	if code != 0 || strings.Count(out, "plan: no changes") != 2 || strings.Contains(out, "bad ") {
		t.Errorf("second plan: exit %d\n%s", code, out)
	}
	code, out = run("apply", "from-file", "from-outputs")
	if code != 0 || !strings.Contains(out, "2 regions ready, no changes") {
		t.Errorf("second apply: exit %d\n%s", code, out)
	}

	// destroy asks for --yes, then removes the state and the contexts
	if code, out = run("destroy"); code != 1 || !strings.Contains(out, "--yes") {
		t.Errorf("destroy without --yes: exit %d\n%s", code, out)
	}
	code, out = run("destroy", "from-file", "from-outputs", "--yes")
	if code != 0 || strings.Count(out, "plan: 0 to add, 0 to change, 1 to destroy") != 2 {
		t.Errorf("destroy: exit %d\n%s", code, out)
	}
	loaded, err = clientcmd.LoadFromFile(kc)
	if err != nil || len(loaded.Contexts) != 0 {
		t.Errorf("contexts after destroy = %v (%v)", loaded.Contexts, err)
	}
	if code, out = run("apply", "own"); code != 1 || !strings.Contains(out, `region "own" has its own cluster:`) {
		t.Errorf("apply of a region with its own cluster: exit %d\n%s", code, out)
	}
}

func TestInfraMissingTofu(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(infra.EnvTofu, "")
	dir := t.TempDir()
	file := filepath.Join(dir, "kubecdn.yaml")
	os.WriteFile(file, []byte(strings.NewReplacer("KUBECONFIG", "x", "CONTEXT", "ctx").Replace(infraTestFile)), 0o644)
	var out, errb bytes.Buffer
	if code := runInfraWith(context.Background(), []string{"plan", "-f", file}, &out, &errb, infraHooks{}); code != 1 ||
		!strings.Contains(errb.String(), `neither "tofu" nor "terraform" is on PATH`) {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := runInfraWith(context.Background(), []string{"plan", "-f", file, "--tofu", "/nonexistent/tofu"}, &out, &errb, infraHooks{}); code != 1 ||
		!strings.Contains(errb.String(), `tofu binary "/nonexistent/tofu"`) {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
