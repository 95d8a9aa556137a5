// Package deploy_test runs `kubecdn deploy` as a user would: the binary
// against two real kube-apiservers (with etcd) on loopback, one per region,
// publishing to Route 53 — here an in-process FAKE of the Route 53 API
// (route53fake), since AWS cannot be reached from this machine — and checks
// the clusters with kubectl.
package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/internal/publish/route53/route53fake"
	"github.com/kubecdn/kubecdn/test/e2e"
)

var bin string

func TestMain(m *testing.M) { e2e.Main(m, &bin) }

func run(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubecdn %v: %v", args, err)
	}
	return string(out), code
}

func TestDeployWithRoute53(t *testing.T) {
	clusters := kubetest.Start(t, "us-east-1", "eu-west-1")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubetest.WriteKubeconfig(t, kubeconfig, clusters...)
	for i, c := range clusters {
		c.StartControllers(t, kubetest.Controllers{LoadBalancer: func(ns, name string) string {
			if name == "kubecdn-edge-public" {
				return fmt.Sprintf("34.120.0.%d", i+10)
			}
			return fmt.Sprintf("34.120.0.%d", i+50)
		}})
	}
	fake := route53fake.Start(t, route53fake.Options{Zone: "cdn.example.com"})
	env := []string{
		"AWS_ACCESS_KEY_ID=" + route53fake.DefaultAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + route53fake.DefaultSecretAccessKey,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
	}
	cdn := configtest.Minimal()
	cdn.Spec.Routing = config.Routing{Policy: config.PolicyLatency, TTL: configtest.Duration(t, "30s")}
	cdn.Spec.Publish = config.Publish{Provider: config.PublishRoute53, Route53: &config.Route53{HostedZoneID: fake.ZoneID(), Endpoint: fake.URL}}
	cdn.Spec.Regions.AlwaysOn = []config.Region{
		configtest.ClusterRegion("us-east-1", "aws", kubeconfig, "us-east-1"),
		configtest.ClusterRegion("eu-west-1", "gcp", kubeconfig, "eu-west-1"),
	}
	file := configtest.Write(t, dir, cdn)
	ctx := context.Background()

	// A bad file is refused with the field named, before anything changes.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: kubecdn.io/v1alpha1\nkind: CDN\nmetadata: {name: demo}\nspec: {zone: cdn.example.com, publish: {provider: route54}}\n"), 0o644)
	out, code := run(t, env, "deploy", "-f", bad)
	if code == 0 || !strings.Contains(out, "spec.publish.provider") {
		t.Errorf("bad file: exit %d\n%s", code, out)
	}

	// Dry run: says what it would do, changes nothing.
	out, code = run(t, env, "deploy", "-f", file, "--dry-run", "--image", "example.com/kubecdn:test")
	if code != 0 || !strings.Contains(out, "would create statefulset/kubecdn/kubecdn-edge") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	// In words that do not claim it was done.
	if !strings.Contains(out, "dns            kubecdn: 2 regions' dns would be given new addresses") || strings.Contains(out, "dns given new addresses") {
		t.Errorf("dry run: the kubecdn dns line claims what was not done:\n%s", out)
	}
	if _, err := clusters[0].Kubectl(ctx, "get", "namespace", "kubecdn"); err == nil {
		t.Error("dry run created the namespace")
	}
	if n := fake.Mutations(); n != 0 {
		t.Errorf("dry run sent %d mutating Route 53 requests", n)
	}

	// The deploy.
	out, code = run(t, env, "deploy", "-f", file, "--image", "example.com/kubecdn:test", "--timeout", "60s")
	if code != 0 || !strings.Contains(out, "deploy: 2 regions in sync") {
		t.Fatalf("deploy: exit %d\n%s", code, out)
	}
	t.Logf("deploy:\n%s", out)
	for _, c := range clusters {
		got, err := c.Kubectl(ctx, "-n", "kubecdn", "get", "statefulset,deployment,service,configmap", "-l", "kubecdn.io/region="+c.Name, "-o", "name")
		if err != nil {
			t.Fatalf("%s: kubectl: %v", c.Name, err)
		}
		for _, want := range []string{"statefulset.apps/kubecdn-edge", "deployment.apps/kubecdn-dns", "service/kubecdn-edge-public", "configmap/kubecdn-state"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: %s missing from\n%s", c.Name, want, got)
			}
		}
	}
	sets := map[string]route53fake.RecordSet{}
	for _, s := range fake.RecordSets() {
		sets[s.Name+" "+s.Type+" "+s.SetIdentifier] = s
	}
	east, ok := sets["www.cdn.example.com. A us-east-1"]
	if !ok || east.Region != "us-east-1" || east.HealthCheckID == "" || len(east.ResourceRecords) != 1 || east.ResourceRecords[0].Value != "34.120.0.10" {
		t.Errorf("us-east-1 record set = %+v (all: %v)", east, keys(sets))
	}
	if eu, ok := sets["www.cdn.example.com. A eu-west-1"]; !ok || eu.Region == "" || eu.ResourceRecords[0].Value != "34.120.0.11" {
		t.Errorf("eu-west-1 record set (a gcp region gets the nearest AWS region) = %+v", eu)
	}
	if _, ok := sets["_kubecdn-owner.www.cdn.example.com. TXT "]; !ok {
		t.Errorf("no ownership TXT among %v", keys(sets))
	}
	if _, ok := sets["us-east-1.edges.cdn.example.com. A "]; !ok {
		t.Errorf("no region name among %v", keys(sets))
	}
	if n := len(fake.HealthChecks()); n != 2 {
		t.Errorf("%d health checks, want 2", n)
	}
	if v := fake.Violations(); len(v) > 0 {
		t.Errorf("the fake saw bad requests: %v", v)
	}

	// Again: nothing changes anywhere.
	fake.ResetCounts()
	out, code = run(t, env, "deploy", "-f", file, "--image", "example.com/kubecdn:test", "--timeout", "60s")
	if code != 0 || fake.Mutations() != 0 || !strings.Contains(out, "0 created, 0 configured") {
		t.Errorf("re-run: exit %d, %d Route 53 mutations\n%s", code, fake.Mutations(), out)
	}

	// --watch puts drift back and says so.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	watch := exec.CommandContext(wctx, bin, "deploy", "-f", file, "--image", "example.com/kubecdn:test", "--watch", "--interval", "1s")
	watch.Env = append(os.Environ(), env...)
	var wout e2e.SyncBuffer
	watch.Stdout, watch.Stderr = &wout, &wout
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		watch.Process.Signal(syscall.SIGINT)
		watch.Wait()
	}()
	waitFor(t, &wout, "regions in sync", 60*time.Second)
	if _, err := clusters[1].Kubectl(ctx, "-n", "kubecdn", "delete", "deployment", "kubecdn-dns"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &wout, "drift: deployment/kubecdn/kubecdn-dns was missing, created again", 30*time.Second)
	if _, err := clusters[1].Kubectl(ctx, "-n", "kubecdn", "get", "deployment", "kubecdn-dns"); err != nil {
		t.Errorf("drift not put back: %v", err)
	}
	// Edges scaled to 0 by hand, where their autoscaler no longer acts,
	// are scaled back to its minimum.
	if _, err := clusters[0].Kubectl(ctx, "-n", "kubecdn", "scale", "statefulset", "kubecdn-edge", "--replicas=0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &wout, "us-east-1      drift: statefulset/kubecdn/kubecdn-edge was changed, put back", 30*time.Second)
	if got, err := clusters[0].Kubectl(ctx, "-n", "kubecdn", "get", "statefulset", "kubecdn-edge", "-o", "jsonpath={.spec.replicas}"); err != nil || got != "2" {
		t.Errorf("edges scaled to 0: %s replicas after the watch put them back (%v), want 2", got, err)
	}
}

func keys(m map[string]route53fake.RecordSet) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func waitFor(t *testing.T, b *e2e.SyncBuffer, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q after %s:\n%s", s, d, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
