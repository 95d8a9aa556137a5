package handover_test

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/render"
	"github.com/kubecdn/kubecdn/internal/render/handover"
)

// argoCDModule is the Argo CD release whose CRDs the ApplicationSet is
// checked against: its module zip on the Go module proxy carries
// manifests/crds.
const argoCDModule = "github.com/argoproj/argo-cd/v3@v3.6.2"

// argoCDCRDs returns Argo CD's Application and ApplicationSet CRDs, read
// from the module's zip, which `go mod download` fetches into the module
// cache (checked against the checksum database) on the first run. The
// module needs a newer Go than this one to build, which download reports
// as an error after storing the zip: only the zip is read.
func argoCDCRDs(t *testing.T) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", argoCDModule)
	cmd.Dir = t.TempDir() // outside the module: nothing of go.mod is touched
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod")
	out, runErr := cmd.Output()
	var info struct{ Zip, Sum, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Zip == "" || info.Sum == "" {
		t.Fatalf("go mod download %s: %v %v %s", argoCDModule, runErr, err, out)
	}
	z, err := zip.OpenReader(info.Zip)
	if err != nil {
		t.Fatalf("%s: %v (download said %q)", info.Zip, err, info.Error)
	}
	defer z.Close()
	var crds [][]byte
	for _, name := range []string{"application-crd.yaml", "applicationset-crd.yaml"} {
		p := argoCDModule + "/manifests/crds/" + name
		f, err := z.Open(p)
		if err != nil {
			t.Fatalf("%s in %s: %v", p, info.Zip, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		crds = append(crds, b)
	}
	return crds
}

// projectCRDs returns the Karmada and ClusterProfile CRDs kept in
// testdata/crds (see its README for their source).
func projectCRDs(t *testing.T) [][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/crds/*.yaml")
	if err != nil || len(files) != 5 {
		t.Fatalf("CRDs in testdata/crds: %v %v", files, err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// schemas maps "group/version Kind" to the openAPIV3Schema of that version.
func schemas(t *testing.T, crds [][]byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, b := range crds {
		var crd unstructured.Unstructured
		if err := yaml.Unmarshal(b, &crd.Object); err != nil {
			t.Fatal(err)
		}
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for _, v := range versions {
			name, _, _ := unstructured.NestedString(v.(map[string]any), "name")
			s, _, _ := unstructured.NestedMap(v.(map[string]any), "schema", "openAPIV3Schema")
			out[group+"/"+name+" "+kind] = s
		}
	}
	return out
}

// walk checks v against the OpenAPI schema s at path: every field exists,
// types and enums match. It adds every path it sets to fields.
func walk(path string, v any, s map[string]any, fields map[string]bool) []string {
	if path != "" {
		fields[path] = true
	}
	if s["x-kubernetes-preserve-unknown-fields"] == true && s["properties"] == nil && s["additionalProperties"] == nil {
		return nil
	}
	if s["x-kubernetes-int-or-string"] == true {
		switch v.(type) {
		case string, float64, int64:
			return nil
		}
		return []string{fmt.Sprintf("%s: %T, want an int or a string", path, v)}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		return []string{fmt.Sprintf("%s: %v is not one of %v", path, v, enum)}
	}
	var errs []string
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want an object", path, v)}
		}
		props, _ := s["properties"].(map[string]any)
		required, _ := s["required"].([]any)
		for _, req := range required {
			if _, ok := m[req.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required field %s missing", path, req))
			}
		}
		for k, c := range m {
			switch ps, ok := props[k].(map[string]any); {
			case path == "" && k == "metadata":
				// the API machinery's, not the CRD's to describe
			case ok:
				errs = append(errs, walk(path+"."+k, c, ps, fields)...)
			case s["additionalProperties"] != nil:
				as, _ := s["additionalProperties"].(map[string]any)
				if as == nil { // additionalProperties: true
					as = map[string]any{"x-kubernetes-preserve-unknown-fields": true}
				}
				errs = append(errs, walk(path+".*", c, as, fields)...)
			default:
				errs = append(errs, fmt.Sprintf("%s.%s: no such field", path, k))
			}
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want a list", path, v)}
		}
		items, _ := s["items"].(map[string]any)
		for _, c := range l {
			errs = append(errs, walk(path+"[]", c, items, fields)...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want a string", path, v))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			errs = append(errs, fmt.Sprintf("%s: %T, want a boolean", path, v))
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			if _, ok := v.(int64); !ok {
				errs = append(errs, fmt.Sprintf("%s: %v, want an integer", path, v))
			}
		}
	}
	return errs
}

// TestFieldsExistUpstream walks every field of every generated Argo CD,
// Karmada and ClusterProfile object through the schema the project
// publishes for it (its CRD, generated from its Go API types): the field
// exists, its type and enum match, required fields are set. The paths the
// generated objects set are kept in testdata/golden/fields.txt, so a change
// in what kubecdn relies on shows in review.
func TestFieldsExistUpstream(t *testing.T) {
	sch := schemas(t, append(projectCRDs(t), argoCDCRDs(t)...))
	cfg, out := rendered(t)
	var objs []*unstructured.Unstructured
	set, err := handover.ArgoCD(cfg, render.Regions(out), argoOpts)
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, set)
	k, err := handover.Karmada(cfg, out, []string{"eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range k {
		if u := o.(*unstructured.Unstructured); strings.HasPrefix(u.GetAPIVersion(), "policy.karmada.io/") {
			objs = append(objs, u)
		}
	}
	reg, err := handover.Registrations("us-east-1", "https://k.example.com", testCA(t), testExec("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, reg[1]) // the ClusterProfile; the Secret is core (see apiserver_test.go)

	byKind := map[string]map[string]bool{}
	for _, u := range objs {
		key := u.GetAPIVersion() + " " + u.GetKind()
		s := sch[key]
		if s == nil {
			t.Fatalf("no published schema for %s", key)
		}
		if byKind[key] == nil {
			byKind[key] = map[string]bool{}
		}
		js, err := json.Marshal(u.Object) // the wire form: numbers as float64
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatal(err)
		}
		for _, e := range walk("", m, s, byKind[key]) {
			t.Errorf("%s %s/%s: %s", key, u.GetNamespace(), u.GetName(), e)
		}
	}
	var b strings.Builder
	b.WriteString("# Fields the generated objects set, checked against the published CRDs:\n" +
		"# Karmada f8fdd02df376 and cluster-inventory-api 8375ac21498c (testdata/crds/README.md),\n" +
		"# Argo CD " + argoCDModule + " (module zip, manifests/crds).\n")
	for _, kind := range slices.Sorted(maps.Keys(byKind)) {
		for _, f := range slices.Sorted(maps.Keys(byKind[kind])) {
			fmt.Fprintf(&b, "%s %s\n", kind, f)
		}
	}
	golden(t, "fields.txt", []byte(b.String()))

	// The walk can fail: a misspelt field, a wrong enum value and a
	// missing required field are each found.
	bad := set.DeepCopy()
	_ = unstructured.SetNestedField(bad.Object, true, "spec", "goTemplat")
	var pp *unstructured.Unstructured
	for _, o := range k {
		if o.GetObjectKind().GroupVersionKind().Kind == "PropagationPolicy" {
			pp = o.(*unstructured.Unstructured).DeepCopy()
		}
	}
	_ = unstructured.SetNestedField(pp.Object, "Sometimes", "spec", "conflictResolution")
	unstructured.RemoveNestedField(pp.Object, "spec", "resourceSelectors")
	for _, tc := range []struct {
		u    *unstructured.Unstructured
		want []string
	}{
		{bad, []string{".spec.goTemplat: no such field"}},
		{pp, []string{"Sometimes is not one of", "required field resourceSelectors missing"}},
	} {
		errs := strings.Join(walk("", tc.u.Object, sch[tc.u.GetAPIVersion()+" "+tc.u.GetKind()], map[string]bool{}), "\n")
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: walk found %q, want %q", tc.u.GetKind(), errs, w)
			}
		}
	}
}
