package apps

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/config"
)

// testCDN is a CDN file with regions eu and us (always on) and ap
// (autoscale) whose paths resolve against testdata, and the given apps.
func testCDN(apps ...config.App) *config.CDN {
	return &config.CDN{
		Metadata: config.Metadata{Name: "cdn1"},
		BaseDir:  "testdata",
		Spec: config.Spec{
			Regions: config.Regions{
				AlwaysOn:  []config.Region{{Name: "eu"}, {Name: "us"}},
				Autoscale: []config.Region{{Name: "ap"}},
			},
			Apps: apps,
		},
	}
}

func load(t *testing.T, app config.App) *App {
	t.Helper()
	a, err := Load(testCDN(config.App{Name: "first", Manifests: "plain"}, app), app)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return a
}

func ids(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, u := range objs {
		out = append(out, u.GetAPIVersion()+" "+describe(u))
	}
	return out
}

func field(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldCopy(u.Object, path...)
	if err != nil || !found {
		t.Fatalf("%s: %s: found=%v err=%v", describe(u), strings.Join(path, "."), found, err)
	}
	return v
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s in %v", kind, name, ids(objs))
	return nil
}

func TestLoadPlainDirectory(t *testing.T) {
	a := load(t, config.App{Name: "video", Manifests: "plain"})
	want := []string{
		"v1 Namespace video",
		"apps/v1 Deployment video/rtmp",
		"v1 Service video/rtmp",
		"v1 ConfigMap video/rtmp-config", // from the List
		"v1 Service video/internal",
		"media.example.com/v1 Stream video/live", // JSON
	}
	if got := ids(a.Objects()); !reflect.DeepEqual(got, want) {
		t.Errorf("objects:\n got %q\nwant %q", got, want)
	}
	if a.Kustomization != "" || a.Dir != filepath.Join("testdata", "plain") {
		t.Errorf("Kustomization %q, Dir %q", a.Kustomization, a.Dir)
	}
	// Numbers decode as int64, as in objects read by client-go.
	if got := field(t, find(t, a.Objects(), "Deployment", "rtmp"), "spec", "replicas"); got != int64(1) {
		t.Errorf("replicas = %#v, want int64(1)", got)
	}
	// Objects returns copies.
	a.Objects()[0].SetName("changed")
	if a.Objects()[0].GetName() != "video" {
		t.Error("Objects() shares the loaded objects")
	}
}

func TestLoadKustomization(t *testing.T) {
	a := load(t, config.App{Name: "video", Manifests: "kustomize"})
	objs := a.Objects()
	want := []string{"apps/v1 Deployment video/live-rtmp", "v1 Service video/live-rtmp"}
	if got := ids(objs); !reflect.DeepEqual(got, want) {
		t.Fatalf("objects: got %q, want %q (unused.yaml must not be read)", got, want)
	}
	if want := filepath.Join("testdata", "kustomize", "kustomization.yaml"); a.Kustomization != want {
		t.Errorf("Kustomization = %q, want %q", a.Kustomization, want)
	}
	d := objs[0]
	if got := field(t, d, "spec", "replicas"); got != int64(2) {
		t.Errorf("replicas = %v, want 2 from the kustomization's patch", got)
	}
	if got := d.GetLabels()["team"]; got != "media" {
		t.Errorf("label team = %q, want media", got)
	}
	if got := field(t, d, "spec", "template", "spec", "containers"); len(got.([]any)) != 1 {
		t.Errorf("containers = %v", got)
	}
}

func TestLoadKustomizationFileNames(t *testing.T) {
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, name), "namePrefix: p-\nresources: [cm.yaml]\n")
			write(t, filepath.Join(dir, "cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
			a, err := Load(testCDN(), config.App{Name: "x", Manifests: dir})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(a.Objects()); !reflect.DeepEqual(got, []string{"v1 ConfigMap p-c"}) {
				t.Errorf("objects %q: the kustomization was not built", got)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	p := func(parts ...string) string {
		return filepath.Join(append([]string{"testdata", "errors"}, parts...)...)
	}
	tests := []struct {
		dir  string
		want []string // substrings of the error
	}{
		{"missing", []string{`app "video": manifests: stat testdata/missing: no such file or directory`}},
		{"plain/deploy.yaml", []string{"is not a directory"}},
		{"errors/nomanifests", []string{"no *.yaml, *.yml or *.json files and no kustomization in " + p("nomanifests")}},
		{"errors/badyaml", []string{p("badyaml", "b.yaml") + ": document 2: ", "yaml"}},
		{"errors/noname", []string{p("noname", "cm.yaml") + ": document 1: ConfigMap without metadata.name"}},
		{"errors/listitem", []string{p("listitem", "list.yaml") + ": document 1: items[1]: object without kind"}},
		{"errors/notobject", []string{p("notobject", "list.yaml") + ": document 1: not an object but a list"}},
		{"errors/badjson", []string{p("badjson", "cm.json") + ": document 2: ", "unexpected EOF"}},
		{"errors/dup", []string{"Service video/rtmp is defined twice: in " + p("dup", "a.yaml") + " (document 1) and in " + p("dup", "b.yaml") + " (document 2)"}},
		{"errors/badkust", []string{"kustomize " + p("badkust") + ": ", "missing.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			app := config.App{Name: "video", Manifests: tt.dir}
			_, err := Load(testCDN(app), app)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), `app "video": `) {
				t.Errorf("error %q does not name the app", err)
			}
		})
	}
}

func TestRegions(t *testing.T) {
	cfg := testCDN()
	if got := load(t, config.App{Name: "video", Manifests: "plain"}).Regions(cfg); !reflect.DeepEqual(got, []string{"eu", "us", "ap"}) {
		t.Errorf("all regions: got %q", got)
	}
	if got := load(t, config.App{Name: "video", Manifests: "plain", Regions: []string{"us"}}).Regions(cfg); !reflect.DeepEqual(got, []string{"us"}) {
		t.Errorf("subset: got %q", got)
	}
}

func TestForRegion(t *testing.T) {
	app := config.App{
		Name:      "video",
		Manifests: "plain",
		Overrides: []config.Override{
			{Regions: []string{"eu"}, Kind: "Deployment", Name: "rtmp", Patch: map[string]any{
				"spec": map[string]any{
					"replicas": 3,
					"template": map[string]any{"spec": map[string]any{"containers": []any{
						map[string]any{"name": "rtmp", "image": "example.org/nginx-rtmp:2.0"},
					}}},
				},
			}},
			// A later override of the same field wins (file order).
			{Regions: []string{"eu", "us"}, Kind: "Deployment", Name: "rtmp", Namespace: "video", Patch: map[string]any{
				"spec": map[string]any{"replicas": 5},
			}},
			// JSON merge patch on a kind the scheme does not know: lists
			// are replaced, null deletes.
			{Regions: []string{"eu"}, Kind: "Stream", Name: "live", Patch: map[string]any{
				"spec": map[string]any{"bitrates": []any{6000}, "ingest": map[string]any{"auth": nil}},
			}},
			{Regions: []string{"ap"}, Kind: "Service", Name: "rtmp", Patch: map[string]any{
				"metadata": map[string]any{"annotations": map[string]any{"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}},
			}},
		},
	}
	a := load(t, app)

	type want struct {
		replicas   int64
		containers []any
		stream     map[string]any
		annotated  bool
	}
	sidecar := map[string]any{"name": "exporter", "image": "example.org/rtmp-exporter:1.0", "ports": []any{map[string]any{"containerPort": int64(9113)}}}
	rtmp := func(image string) map[string]any {
		return map[string]any{"name": "rtmp", "image": image, "ports": []any{map[string]any{"containerPort": int64(1935)}}}
	}
	tests := []struct {
		region string
		want   want
	}{
		{"eu", want{
			replicas:   5,
			containers: []any{rtmp("example.org/nginx-rtmp:2.0"), sidecar}, // strategic merge keeps the sidecar
			stream:     map[string]any{"bitrates": []any{int64(6000)}, "ingest": map[string]any{"port": int64(1935)}},
		}},
		{"us", want{
			replicas:   5,
			containers: []any{rtmp("example.org/nginx-rtmp:1.0"), sidecar},
			stream:     map[string]any{"bitrates": []any{int64(3000), int64(1500)}, "ingest": map[string]any{"port": int64(1935), "auth": true}},
		}},
		{"ap", want{
			replicas:   1,
			containers: []any{rtmp("example.org/nginx-rtmp:1.0"), sidecar},
			stream:     map[string]any{"bitrates": []any{int64(3000), int64(1500)}, "ingest": map[string]any{"port": int64(1935), "auth": true}},
			annotated:  true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			objs, err := a.ForRegion(tt.region)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ids(objs), ids(a.Objects()); !reflect.DeepEqual(got, want) {
				t.Fatalf("objects %q, want %q", got, want)
			}
			d := find(t, objs, "Deployment", "rtmp")
			if got := field(t, d, "spec", "replicas"); got != tt.want.replicas {
				t.Errorf("replicas = %#v, want %d", got, tt.want.replicas)
			}
			if got := field(t, d, "spec", "template", "spec", "containers"); !reflect.DeepEqual(got, tt.want.containers) {
				t.Errorf("containers:\n got %#v\nwant %#v", got, tt.want.containers)
			}
			if got := field(t, find(t, objs, "Stream", "live"), "spec"); !reflect.DeepEqual(got, tt.want.stream) {
				t.Errorf("stream spec:\n got %#v\nwant %#v", got, tt.want.stream)
			}
			_, annotated := find(t, objs, "Service", "rtmp").GetAnnotations()["service.beta.kubernetes.io/aws-load-balancer-type"]
			if annotated != tt.want.annotated {
				t.Errorf("annotated = %v, want %v", annotated, tt.want.annotated)
			}
			wantLabels := map[string]string{
				"app.kubernetes.io/managed-by": "kubecdn",
				"kubecdn.io/cdn":               "cdn1",
				"kubecdn.io/region":            tt.region,
				"kubecdn.io/app":               "video",
			}
			for _, u := range objs {
				got := u.GetLabels()
				for k, v := range wantLabels {
					if got[k] != v {
						t.Errorf("%s: label %s = %q, want %q", describe(u), k, got[k], v)
					}
				}
			}
			if got := d.GetLabels()["app"]; got != "rtmp" {
				t.Errorf("the manifest's own label app = %q, want rtmp", got)
			}
			// Only metadata labels: selectors and pod templates untouched.
			if got := field(t, d, "spec", "selector"); !reflect.DeepEqual(got, map[string]any{"matchLabels": map[string]any{"app": "rtmp"}}) {
				t.Errorf("selector changed: %v", got)
			}
			if got := field(t, d, "spec", "template", "metadata", "labels"); !reflect.DeepEqual(got, map[string]any{"app": "rtmp"}) {
				t.Errorf("pod template labels changed: %v", got)
			}
		})
	}
	// Rendering a region changes nothing loaded.
	if got := a.Objects()[1].GetLabels(); !reflect.DeepEqual(got, map[string]string{"app": "rtmp"}) {
		t.Errorf("loaded object was modified: labels %v", got)
	}
}

func TestForRegionKustomization(t *testing.T) {
	a := load(t, config.App{Name: "video", Manifests: "kustomize", Overrides: []config.Override{
		{Regions: []string{"us"}, Kind: "Deployment", Name: "live-rtmp", Namespace: "video", Patch: map[string]any{"spec": map[string]any{"replicas": 4}}},
	}})
	objs, err := a.ForRegion("us")
	if err != nil {
		t.Fatal(err)
	}
	if got := field(t, find(t, objs, "Deployment", "live-rtmp"), "spec", "replicas"); got != int64(4) {
		t.Errorf("replicas = %v, want 4", got)
	}
}

func TestForRegionErrors(t *testing.T) {
	deploy := func(patch map[string]any) config.Override {
		return config.Override{Regions: []string{"eu"}, Kind: "Deployment", Name: "rtmp", Patch: patch}
	}
	tests := []struct {
		name      string
		regions   []string
		overrides []config.Override
		region    string
		want      string
	}{
		{
			name:      "unknown name",
			overrides: []config.Override{deploy(map[string]any{"spec": map[string]any{"replicas": 2}}), {Regions: []string{"eu"}, Kind: "Deployment", Name: "nope", Patch: map[string]any{"a": 1}}},
			region:    "eu",
			want:      `spec.apps[1].overrides[1]: region "eu": no Deployment named "nope" in the app's manifests`,
		},
		{
			name:      "unknown kind",
			overrides: []config.Override{{Regions: []string{"us"}, Kind: "StatefulSet", Name: "rtmp", Patch: map[string]any{"a": 1}}},
			region:    "us",
			want:      `spec.apps[1].overrides[0]: region "us": no StatefulSet named "rtmp" in the app's manifests`,
		},
		{
			name:      "wrong namespace",
			overrides: []config.Override{{Regions: []string{"eu"}, Kind: "Deployment", Name: "rtmp", Namespace: "default", Patch: map[string]any{"a": 1}}},
			region:    "eu",
			want:      `spec.apps[1].overrides[0]: region "eu": no Deployment named "rtmp" in namespace default in the app's manifests`,
		},
		{
			name:      "strategic patch renames",
			overrides: []config.Override{deploy(map[string]any{"metadata": map[string]any{"name": "rtmp2"}})},
			region:    "eu",
			want:      `spec.apps[1].overrides[0]: region "eu": the patch changes metadata.name of Deployment video/rtmp ("rtmp" to "rtmp2"): an override cannot rename or move an object`,
		},
		{
			name:      "strategic patch moves",
			overrides: []config.Override{deploy(map[string]any{"metadata": map[string]any{"namespace": nil}})},
			region:    "eu",
			want:      `the patch changes metadata.namespace of Deployment video/rtmp ("video" to "")`,
		},
		{
			name:      "merge patch changes kind",
			overrides: []config.Override{{Regions: []string{"eu"}, Kind: "Stream", Name: "live", Patch: map[string]any{"kind": "Channel"}}},
			region:    "eu",
			want:      `spec.apps[1].overrides[0]: region "eu": the patch changes kind of Stream video/live ("Stream" to "Channel")`,
		},
		{
			name:      "merge patch changes apiVersion",
			overrides: []config.Override{{Regions: []string{"eu"}, Kind: "Stream", Name: "live", Patch: map[string]any{"apiVersion": "media.example.com/v2"}}},
			region:    "eu",
			want:      `the patch changes apiVersion of Stream video/live ("media.example.com/v1" to "media.example.com/v2")`,
		},
		{
			name:      "strategic patch of the wrong type",
			overrides: []config.Override{deploy(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": "rtmp"}}}})},
			region:    "eu",
			want:      `spec.apps[1].overrides[0]: region "eu": patching Deployment video/rtmp: the patched object is not a valid Deployment: `,
		},
		{
			name:    "region the app does not run in",
			regions: []string{"us"},
			region:  "eu",
			want:    `spec.apps[1]: app "video" does not run in region "eu"`,
		},
		{
			name:   "unknown region",
			region: "mars",
			want:   `app "video" does not run in region "mars"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := load(t, config.App{Name: "video", Manifests: "plain", Regions: tt.regions, Overrides: tt.overrides})
			_, err := a.ForRegion(tt.region)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestForRegionAmbiguousOverride(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: other\n")
	app := config.App{Name: "x", Manifests: dir, Overrides: []config.Override{
		{Regions: []string{"eu"}, Kind: "ConfigMap", Name: "c", Patch: map[string]any{"data": map[string]any{"k": "v"}}},
		{Regions: []string{"us"}, Kind: "ConfigMap", Name: "c", Namespace: "default", Patch: map[string]any{"data": map[string]any{"k": "us"}}},
	}}
	a, err := Load(testCDN(app), app)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.ForRegion("eu")
	if want := `spec.apps[0].overrides[0]: region "eu": ConfigMap "c" matches 2 objects (v1 ConfigMap c, v1 ConfigMap other/c): set namespace`; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	// An object without a namespace is matched as "default".
	objs, err := a.ForRegion("us")
	if err != nil {
		t.Fatal(err)
	}
	if got := objs[0].Object["data"]; !reflect.DeepEqual(got, map[string]any{"k": "us"}) || objs[0].GetNamespace() != "" {
		t.Errorf("data %v, namespace %q: want the patch on the object without a namespace, left without one", got, objs[0].GetNamespace())
	}
	if _, ok := objs[1].Object["data"]; ok {
		t.Error("the object in namespace other was patched")
	}
}

func TestService(t *testing.T) {
	a := load(t, config.App{Name: "video", Manifests: "plain", Services: []config.AppService{
		{Service: "rtmp", Hostname: "live.example.com"},
		{Service: "internal", Hostname: "internal.example.com"},
	}})
	tests := []struct {
		name     string
		svc      config.AppService
		wantPort int32
		wantErr  string
	}{
		{name: "first port", svc: config.AppService{Service: "rtmp"}, wantPort: 1935},
		{name: "named port", svc: config.AppService{Service: "rtmp", Namespace: "video", Port: 8080}, wantPort: 8080},
		{name: "port not found", svc: config.AppService{Service: "rtmp", Port: 1936}, wantErr: "service video/rtmp has no port 1936 (its ports: 1935/TCP rtmp, 8080/TCP http)"},
		{name: "missing", svc: config.AppService{Service: "hls"}, wantErr: `app "video": service "hls": no Service "hls" in the manifests of app "video" (it has video/rtmp, video/internal)`},
		{name: "other namespace", svc: config.AppService{Service: "rtmp", Namespace: "default"}, wantErr: `no Service default/rtmp in the manifests of app "video"`},
		{name: "not a LoadBalancer", svc: config.AppService{Service: "internal", Hostname: "internal.example.com", Health: config.AppHealth{}}, wantErr: `spec.apps[1].services[1]: Service video/internal is of type ClusterIP, want LoadBalancer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := a.Service(tt.svc)
			var port int32
			if err == nil {
				if s.Name != tt.svc.Service || s.Namespace != "video" {
					t.Errorf("got Service %s/%s", s.Namespace, s.Name)
				}
				port, err = ServicePort(s, tt.svc)
			}
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v\nwant it to contain %q", err, tt.wantErr)
				}
			case err != nil:
				t.Errorf("error %v", err)
			case port != tt.wantPort:
				t.Errorf("port %d, want %d", port, tt.wantPort)
			}
		})
	}
}

func TestServiceDefaultNamespace(t *testing.T) {
	a := load(t, config.App{Name: "video", Manifests: "kustomize"})
	// The kustomization sets namespace video; a Service written without
	// one is found as default/…: check with a directory of our own.
	if _, err := a.Service(config.AppService{Service: "live-rtmp"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "svc.yaml"), "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  type: LoadBalancer\n")
	b, err := Load(testCDN(), config.App{Name: "x", Manifests: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Service(config.AppService{Service: "s", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace != "default" {
		t.Errorf("namespace %q, want default", s.Namespace)
	}
	if _, err := ServicePort(s, config.AppService{Service: "s"}); err == nil || err.Error() != "service default/s has no ports" {
		t.Errorf("ServicePort error %v, want: service default/s has no ports", err)
	}
}

// TestMergePatch runs the examples of RFC 7386, appendix A.
func TestMergePatch(t *testing.T) {
	obj := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		target, patch, want any
	}{
		{obj("a", "b"), obj("a", "c"), obj("a", "c")},
		{obj("a", "b"), obj("b", "c"), obj("a", "b", "b", "c")},
		{obj("a", "b"), obj("a", nil), obj()},
		{obj("a", "b", "b", "c"), obj("a", nil), obj("b", "c")},
		{obj("a", []any{"b"}), obj("a", "c"), obj("a", "c")},
		{obj("a", "c"), obj("a", []any{"b"}), obj("a", []any{"b"})},
		{obj("a", obj("b", "c")), obj("a", obj("b", "d", "c", nil)), obj("a", obj("b", "d"))},
		{obj("a", []any{obj("b", "c")}), obj("a", []any{int64(1)}), obj("a", []any{int64(1)})},
		{[]any{"a", "b"}, []any{"c", "d"}, []any{"c", "d"}},
		{obj("a", "b"), []any{"c"}, []any{"c"}},
		{obj("a", "foo"), nil, nil},
		{obj("a", "foo"), "bar", "bar"},
		{obj("e", nil), obj("a", int64(1)), obj("e", nil, "a", int64(1))},
		{[]any{int64(1), int64(2)}, obj("a", "b", "c", nil), obj("a", "b")},
		{obj(), obj("a", obj("bb", obj("ccc", nil))), obj("a", obj("bb", obj()))},
	}
	for i, tt := range tests {
		if got := mergePatch(tt.target, tt.patch); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%d: mergePatch(%v, %v) = %v, want %v", i, tt.target, tt.patch, got, tt.want)
		}
	}
}

// FuzzDecodeDocument: any input is either an error or objects that all
// have apiVersion, kind and name.
func FuzzDecodeDocument(f *testing.F) {
	for _, p := range []string{"plain/deploy.yaml", "plain/list.yaml", "plain/stream.json", "errors/listitem/list.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("kind: List\nitems: [1]\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		objs, err := decodeDocument(doc)
		if err != nil {
			return
		}
		for _, u := range objs {
			if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" || slices.Contains([]string{"List"}, u.GetKind()) {
				t.Fatalf("decoded %v from %q", u.Object, doc)
			}
		}
	})
}

func TestForRegionConcurrent(t *testing.T) {
	a := load(t, config.App{Name: "video", Manifests: "plain", Overrides: []config.Override{
		{Regions: []string{"eu", "us", "ap"}, Kind: "Deployment", Name: "rtmp", Patch: map[string]any{"spec": map[string]any{"replicas": 2}}},
		{Regions: []string{"eu", "us", "ap"}, Kind: "Stream", Name: "live", Patch: map[string]any{"spec": map[string]any{"bitrates": []any{1}}}},
	}})
	regions := a.Regions(testCDN())
	errs := make(chan error, 4*len(regions))
	for range 4 {
		for _, r := range regions {
			go func() {
				objs, err := a.ForRegion(r)
				if err == nil && objs[1].GetLabels()[LabelRegion] != r {
					err = fmt.Errorf("region %s: got labels %v", r, objs[1].GetLabels())
				}
				errs <- err
			}()
		}
	}
	for range 4 * len(regions) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestForRegionEmptyLabelsAndNoAppEntry(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n")
	// An app that is not in the CDN file's spec.apps is named by name.
	app := config.App{Name: "x", Manifests: dir, Overrides: []config.Override{{Regions: []string{"eu"}, Kind: "Secret", Name: "c", Patch: map[string]any{"a": "b"}}}}
	a, err := Load(testCDN(), app)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := a.ForRegion("us")
	if err != nil {
		t.Fatal(err)
	}
	if got := objs[0].GetLabels(); len(got) != 4 || got[LabelApp] != "x" {
		t.Errorf("labels %v", got)
	}
	if _, err := a.ForRegion("eu"); err == nil || !strings.HasPrefix(err.Error(), `app "x": overrides[0]: region "eu": no Secret named "c"`) {
		t.Errorf("error %v", err)
	}
}
