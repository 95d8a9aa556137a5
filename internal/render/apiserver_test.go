package render_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/internal/render"
)

// TestAPIServerAcceptsEveryObject applies every rendered object of the test
// file, every region, to a real kube-apiserver by server-side apply (field
// manager "kubecdn", strict field validation) in dry-run, so each is
// validated, defaulted and admitted as a deploy's would be; with the apps
// of the file (spec.apps) as render writes them, and the monitoring of both
// kinds against the Prometheus Operator's own CRDs. The Namespaces are
// applied for real first: namespaced objects need them. A rejection or a
// warning fails the test with the object and the server's message.
func TestAPIServerAcceptsEveryObject(t *testing.T) {
	cfg, err := config.Load("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	c := kubetest.Start(t, "render")[0]
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()

	warnings := &warningRecorder{}
	rc := rest.CopyConfig(c.Config)
	rc.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	installCRDs(ctx, t, c)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))

	cases := []struct {
		name string
		opts render.Options
	}{
		{"defaults", render.Options{}},
		{"tls and service monitors", render.Options{
			Image: "ghcr.io/kubecdn/kubecdn:v0.0.0-test", TLSSecrets: []string{"www-tls", "video-tls"}, ServiceMonitor: true,
		}},
		{"other namespace, more edges, storage class", render.Options{
			Namespace: "cdn-prod", EdgeReplicas: 3, MaxEdgeReplicas: 6, DNSReplicas: 3, StorageClass: "fast-ssd",
			ParentURL: "https://{region}.shield.example.net", ServiceMonitor: true,
		}},
		{"a prometheus per region, and the apps", render.Options{Monitoring: render.MonitoringPrometheus, StorageClass: "fast-ssd"}},
		{"prometheus operator", render.Options{Namespace: "cdn-ops", Monitoring: render.MonitoringOperator}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := render.Render(cfg, tc.opts)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if err := render.WithApps(cfg, loadApps(t, cfg), out); err != nil {
				t.Fatalf("apps: %v", err)
			}
			if len(out) != len(cfg.AllRegions()) {
				t.Fatalf("rendered %d regions, want %d", len(out), len(cfg.AllRegions()))
			}
			accepted := applyRendered(ctx, t, dyn, mapper, warnings, out)
			autoscaler := 0
			for _, u := range accepted {
				if u.GetName() == render.AutoscalerName {
					autoscaler++
				}
			}
			// The autoscaler's ServiceAccount, Role, RoleBinding,
			// ConfigMap and Deployment, in each always-on region (the
			// file has autoscale regions).
			if want := 5 * len(cfg.Spec.Regions.AlwaysOn); autoscaler != want {
				t.Errorf("%d autoscaler objects accepted, want %d", autoscaler, want)
			}
		})
	}

	// The checks can fail: broken objects are turned away, and a dry run
	// stores nothing.
	t.Run("rejections", func(t *testing.T) {
		out, err := render.Render(cfg, render.Options{Regions: []string{"us-east-1"}})
		if err != nil {
			t.Fatal(err)
		}
		var dep *unstructured.Unstructured
		for _, o := range out["us-east-1"] {
			if o.GetObjectKind().GroupVersionKind().Kind == "Deployment" {
				if dep, err = render.Unstructured(o); err != nil {
					t.Fatal(err)
				}
			}
		}
		if dep == nil {
			t.Fatal("no Deployment rendered")
		}
		broken := []struct {
			name string
			edit func(u *unstructured.Unstructured)
			want string
		}{
			{"negative replicas", func(u *unstructured.Unstructured) {
				_ = unstructured.SetNestedField(u.Object, int64(-1), "spec", "replicas")
			}, "spec.replicas"},
			{"unknown field", func(u *unstructured.Unstructured) {
				_ = unstructured.SetNestedField(u.Object, int64(2), "spec", "replicaz")
			}, "replicaz"},
		}
		for _, b := range broken {
			u := dep.DeepCopy()
			b.edit(u)
			err := apply(ctx, dyn, mapper, u, true)
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Errorf("%s: got %v, want an error naming %s", b.name, err, b.want)
			}
		}
		// The operator's schema is the real one: a misspelt rule field
		// is turned away.
		mon, err := render.Render(cfg, render.Options{Regions: []string{"us-east-1"}, Monitoring: render.MonitoringOperator})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range mon["us-east-1"] {
			if o.GetObjectKind().GroupVersionKind().Kind != "PrometheusRule" {
				continue
			}
			u, err := render.Unstructured(o)
			if err != nil {
				t.Fatal(err)
			}
			groups, _, _ := unstructured.NestedSlice(u.Object, "spec", "groups")
			rules := groups[0].(map[string]any)["rules"].([]any)
			rules[0].(map[string]any)["fro"] = "5m"
			_ = unstructured.SetNestedSlice(u.Object, groups, "spec", "groups")
			if err := apply(ctx, dyn, mapper, u, true); err == nil || !strings.Contains(err.Error(), "fro") {
				t.Errorf("PrometheusRule with a misspelt field: got %v, want an error naming fro", err)
			}
		}
		deps, err := c.Client.AppsV1().Deployments(dep.GetNamespace()).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(deps.Items) != 0 {
			t.Errorf("dry run stored %d Deployments", len(deps.Items))
		}
	})
}

// loadApps loads the apps of the file (spec.apps) as kubecdn render does.
func loadApps(t *testing.T, cfg *config.CDN) []*apps.App {
	t.Helper()
	out, err := apps.LoadAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apply sends u as a server-side apply, as kubecdn deploy does.
var apply = kubetest.Apply

// installCRDs installs the Prometheus Operator's own ServiceMonitor and
// PrometheusRule CRDs (testdata/crds, upstream and unchanged), so the
// rendered objects are checked against the operator's schema, and waits
// until both kinds are served and discovered.
func installCRDs(ctx context.Context, t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	files, err := filepath.Glob("testdata/crds/*.yaml")
	if err != nil || len(files) != 2 {
		t.Fatalf("CRDs in testdata/crds: %v %v", files, err)
	}
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	if err := c.InstallCRDs(ctx, docs...); err != nil {
		t.Fatal(err)
	}
}

// applyRendered applies every object of every region of out by
// server-side apply, in dry run but for the Namespaces (namespaced objects
// need them), strict; a rejection or a warning fails t with the object and
// the server's message. It returns the objects accepted.
func applyRendered(ctx context.Context, t *testing.T, dyn dynamic.Interface, mapper meta.RESTMapper, warnings *warningRecorder, out map[string][]render.Object) []*unstructured.Unstructured {
	t.Helper()
	var accepted []*unstructured.Unstructured
	for _, region := range render.Regions(out) {
		for _, o := range out[region] {
			u, err := render.Unstructured(o)
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("region %s: %s %s/%s", region, u.GetKind(), u.GetNamespace(), u.GetName())
			warnings.reset()
			if err := apply(ctx, dyn, mapper, u, u.GetKind() != "Namespace"); err != nil {
				t.Errorf("%s: rejected: %v", what, err)
				continue
			}
			for _, w := range warnings.take() {
				t.Errorf("%s: warning: %s", what, w)
			}
			accepted = append(accepted, u)
		}
	}
	t.Logf("%d objects accepted", len(accepted))
	return accepted
}

// warningRecorder keeps the Warning headers of the API server's answers.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, strings.TrimSpace(text))
}

func (w *warningRecorder) reset() { w.take() }

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}
