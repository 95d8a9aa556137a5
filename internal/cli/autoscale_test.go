package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

// TestRenderedAutoscalerArgsParse: every flag render writes into the
// autoscaler's Deployment is one `kubecdn autoscale` accepts (it then stops
// at the file, which exists only in the pod), for render options that add
// flags of every kind.
func TestRenderedAutoscalerArgsParse(t *testing.T) {
	cfg, err := config.Load("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []render.Options{
		{},
		{Namespace: "cdn", TLSSecrets: []string{"a", "b"}, StorageClass: "ssd", Monitoring: render.MonitoringPrometheus, EdgeReplicas: 3},
		{ServiceMonitor: true, ParentURL: "https://{region}.shield.example.net"},
	} {
		out, err := render.Render(cfg, o)
		if err != nil {
			t.Fatal(err)
		}
		var dep *appsv1.Deployment
		for _, obj := range out["us-east-1"] {
			if d, ok := obj.(*appsv1.Deployment); ok && d.Name == render.AutoscalerName {
				dep = d
			}
		}
		if dep == nil {
			t.Fatal("no autoscaler Deployment in us-east-1")
		}
		args := dep.Spec.Template.Spec.Containers[0].Args
		if args[0] != "autoscale" {
			t.Fatalf("args %v", args)
		}
		args = append([]string(nil), args[1:]...)
		for i := range args {
			if args[i] == "-f" {
				args[i+1] = filepath.Join(t.TempDir(), "absent.yaml")
			}
		}
		var stdout, stderr bytes.Buffer
		code := runAutoscale(context.Background(), args, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "absent.yaml") {
			t.Errorf("%+v: exit %d, want 1 for the missing file (2 is a flag refused): %s", o, code, stderr.String())
		}
	}
}

// TestAutoscaleFlagsRefused: usage errors exit 2 before anything is read.
func TestAutoscaleFlagsRefused(t *testing.T) {
	for _, args := range [][]string{{"--every"}, {"extra"}, {"--edge-replicas", "0"}} {
		var stdout, stderr bytes.Buffer
		if code := runAutoscale(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr.String())
		}
	}
}
