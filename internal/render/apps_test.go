package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/apps"
)

// TestWithApps: the file's app (video: us-east-1 and us-west-2, 3 rtmp
// replicas in us-east-1) lands in its regions only, labelled as deploy
// labels it, with a Namespace for its undeclared namespace, in files of
// its own; the Namespaces share 00-namespaces.yaml.
func TestWithApps(t *testing.T) {
	cfg := loadCDN(t)
	loaded, err := apps.LoadAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := mustRender(t, cfg, Options{Image: testImage})
	before := map[string]int{}
	for r, objs := range out {
		before[r] = len(objs)
	}
	if err := WithApps(cfg, loaded, out); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		region   string
		added    int
		replicas int64
	}{
		{"us-east-1", 3, 3}, {"us-west-2", 3, 1}, {"eu-west-1", 0, 0}, {"onprem-paris", 0, 0},
	} {
		objs := out[tc.region]
		if got := len(objs) - before[tc.region]; got != tc.added {
			t.Errorf("%s: %d objects added, want %d", tc.region, got, tc.added)
		}
		if tc.added == 0 {
			continue
		}
		for _, o := range objs[:2] { // kubecdn and video
			if !isNamespace(o) {
				t.Errorf("%s: %s %s comes before a Namespace", tc.region, o.GetObjectKind().GroupVersionKind().Kind, o.GetName())
			}
		}
		var dep *unstructured.Unstructured
		for _, o := range objs {
			if o.GetName() == "rtmp" && o.GetObjectKind().GroupVersionKind().Kind == "Deployment" {
				dep = o.(*unstructured.Unstructured)
			}
		}
		if dep == nil {
			t.Fatalf("%s: no rtmp Deployment", tc.region)
		}
		if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != tc.replicas {
			t.Errorf("%s: rtmp replicas %d, want %d", tc.region, r, tc.replicas)
		}
		l := dep.GetLabels()
		for k, v := range map[string]string{"kubecdn.io/app": "video", "kubecdn.io/region": tc.region, "kubecdn.io/cdn": "demo",
			"app.kubernetes.io/managed-by": "kubecdn", "app.kubernetes.io/part-of": "kubecdn"} {
			if l[k] != v {
				t.Errorf("%s: rtmp label %s=%q, want %q", tc.region, k, l[k], v)
			}
		}
		if got := FileName(dep); got != "30-app-video-deployment-video-rtmp.yaml" {
			t.Errorf("%s: file %s", tc.region, got)
		}
	}

	dir := t.TempDir()
	if err := WriteDir(dir, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "us-east-1", NamespacesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), Header) || strings.Count(string(b), "kind: Namespace") != 2 || !strings.Contains(string(b), "name: video") {
		t.Errorf("%s:\n%s", NamespacesFile, b)
	}

	// Two objects of one file are refused rather than one lost.
	twice := map[string][]Object{"us-east-1": append(out["us-east-1"], out["us-east-1"][len(out["us-east-1"])-1])}
	if err := WriteDir(t.TempDir(), twice); err == nil || !strings.Contains(err.Error(), "two objects for") {
		t.Errorf("duplicate object: %v", err)
	}
}
