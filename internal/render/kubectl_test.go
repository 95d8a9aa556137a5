package render_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/internal/render"
)

// TestKubectlOnAFreshCluster applies what render writes for a region (with
// its Prometheus and the apps of the file) with the real kubectl to a
// cluster that has never seen kubecdn, the way the README says: a server
// dry run needs the Namespaces created first (one file), after which the
// dry run of the whole directory passes and stores nothing; a real apply
// takes one command.
func TestKubectlOnAFreshCluster(t *testing.T) {
	cfg, err := config.Load("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := render.Render(cfg, render.Options{Regions: []string{"us-east-1"}, Monitoring: render.MonitoringPrometheus})
	if err != nil {
		t.Fatal(err)
	}
	if err := render.WithApps(cfg, loadApps(t, cfg), out); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := render.WriteDir(dir, out); err != nil {
		t.Fatal(err)
	}
	rdir := filepath.Join(dir, "us-east-1")
	c := kubetest.Start(t, "fresh")[0]
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// Why it takes two commands: the API server refuses a dry run of an
	// object whose namespace does not exist yet, even when the Namespace
	// is in the same apply.
	if _, err := c.Kubectl(ctx, "apply", "--dry-run=server", "-f", rdir); err == nil || !strings.Contains(err.Error(), `namespaces "kubecdn" not found`) {
		t.Fatalf("dry run before the namespaces: %v, want namespaces \"kubecdn\" not found", err)
	}

	if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(rdir, render.NamespacesFile)); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"kubecdn", "video"} { // the CDN's, and the app's
		if _, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
	dry, err := c.Kubectl(ctx, "apply", "--dry-run=server", "-f", rdir)
	if err != nil {
		t.Fatalf("dry run after the namespaces: %v", err)
	}
	want := len(out["us-east-1"])
	if n := strings.Count(dry, "(server dry run)"); n != want {
		t.Errorf("dry run reported %d objects, want %d:\n%s", n, want, dry)
	}
	for _, name := range []string{"statefulset.apps/kubecdn-prometheus", "deployment.apps/rtmp", "statefulset.apps/kubecdn-edge"} {
		if !strings.Contains(dry, name) {
			t.Errorf("dry run does not name %s:\n%s", name, dry)
		}
	}
	if sts, err := c.Client.AppsV1().StatefulSets("kubecdn").List(ctx, metav1.ListOptions{}); err != nil || len(sts.Items) != 0 {
		t.Errorf("the dry run stored StatefulSets: %v %v", sts, err)
	}

	// The real apply, server-side as GitOps tools apply, in one command.
	if _, err := c.Kubectl(ctx, "apply", "--server-side", "--field-manager=gitops", "-f", rdir); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AppsV1().StatefulSets("kubecdn").Get(ctx, "kubecdn-prometheus", metav1.GetOptions{}); err != nil {
		t.Errorf("prometheus: %v", err)
	}
	if d, err := c.Client.AppsV1().Deployments("video").Get(ctx, "rtmp", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 3 {
		t.Errorf("the app's Deployment with the us-east-1 override (3 replicas): %v %v", d, err)
	}
}
