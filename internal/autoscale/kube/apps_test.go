package kube

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

// podFiles lays out the in-cluster autoscaler's file volume as the kubelet
// mounts it for its pods: the rendered ConfigMap's keys at the paths of the
// rendered Deployment's volume, in a directory; it returns the file's path.
func podFiles(t *testing.T, cfg *config.CDN, ro render.Options, region string) string {
	t.Helper()
	out, err := render.Render(cfg, ro)
	if err != nil {
		t.Fatal(err)
	}
	var cm *corev1.ConfigMap
	var dep *appsv1.Deployment
	for _, o := range out[region] {
		if o.GetName() != render.AutoscalerName {
			continue
		}
		switch v := o.(type) {
		case *corev1.ConfigMap:
			cm = v
		case *appsv1.Deployment:
			dep = v
		}
	}
	if cm == nil || dep == nil {
		t.Fatalf("render wrote no autoscaler ConfigMap and Deployment into %s", region)
	}
	dir := t.TempDir()
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != render.AutoscalerName {
			continue
		}
		items := v.ConfigMap.Items
		if len(items) == 0 { // every key, flat
			for k := range cm.Data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			p := filepath.Join(dir, it.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(cm.Data[it.Key]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(dir, "kubecdn.yaml")
}

// TestInClusterAutoscalerOpensWithApps: a file with spec.apps, its app
// running in every region. The in-cluster autoscaler reads the file render
// gave its pods (no manifests of the user's beside it); opening eu-west-1
// from that file applies the app there, with the region's override, as
// `kubecdn deploy` does, and prunes nothing of it in us-east-1.
func TestInClusterAutoscalerOpensWithApps(t *testing.T) {
	e := newEnv(t, "", func(c *config.CDN, dir string) {
		if err := os.MkdirAll(filepath.Join(dir, "web"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "web", "settings.yaml"), []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: web-settings, namespace: kubecdn}
data: {greeting: hello}
`), 0o644); err != nil {
			t.Fatal(err)
		}
		c.Spec.Apps = []config.App{{Name: "web", Manifests: "web", Overrides: []config.Override{{Regions: []string{"eu-west-1"},
			Kind: "ConfigMap", Name: "web-settings", Patch: map[string]any{"data": map[string]any{"greeting": "dia duit"}}}}}}
	})
	file := podFiles(t, e.cfg, e.deployOptions().Render, "us-east-1")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("the autoscaler's file: %v", err)
	}
	a := &Actuator{CDN: cfg, Deploy: e.deployOptions(), Reach: e.reach, CallTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := a.Start(ctx, "eu-west-1"); err != nil {
		t.Fatalf("opening eu-west-1 from the in-cluster autoscaler's file: %v", err)
	}
	for region, want := range map[string]string{"eu-west-1": "dia duit", "us-east-1": "hello"} {
		got, err := e.clusters[region].Client.CoreV1().ConfigMaps("kubecdn").Get(ctx, "web-settings", metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: the app's ConfigMap: %v", region, err)
			continue
		}
		if got.Data["greeting"] != want || got.Labels["kubecdn.io/app"] != "web" {
			t.Errorf("%s: the app's ConfigMap has greeting %q, labels %v; want %q and kubecdn.io/app=web", region, got.Data["greeting"], got.Labels, want)
		}
	}
}
