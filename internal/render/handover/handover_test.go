package handover_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
	"github.com/kubecdn/kubecdn/internal/render/handover"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

const testFile = "../../config/testdata/kubecdn.yaml"

// rendered is what kubecdn render computes for the test file: every
// region, with the apps.
func rendered(t *testing.T) (*config.CDN, map[string][]render.Object) {
	t.Helper()
	cfg, err := config.Load(testFile)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	out, err := render.Render(cfg, render.Options{Image: "ghcr.io/kubecdn/kubecdn:v1.0.0"})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	loaded, err := apps.LoadAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := render.WithApps(cfg, loaded, out); err != nil {
		t.Fatal(err)
	}
	return cfg, out
}

var argoOpts = handover.ArgoCDOptions{RepoURL: "https://github.com/acme/cdn.git", Revision: "main", Path: "deploy/kubecdn"}

// testExec is an EKS region's credential plugin.
func testExec(region string) *clientcmdapi.ExecConfig {
	return &clientcmdapi.ExecConfig{
		Command:     "aws",
		Args:        []string{"eks", "get-token", "--cluster-name", "kubecdn-" + region, "--region", region, "--output", "json"},
		Env:         []clientcmdapi.ExecEnvVar{{Name: "AWS_PROFILE", Value: "cdn"}},
		APIVersion:  "client.authentication.k8s.io/v1beta1",
		InstallHint: "install the AWS CLI: https://aws.amazon.com/cli/",
	}
}

// golden compares got with testdata/golden/name; -update rewrites it. Run
// -update after an intended change and read the diff.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test ./internal/render/handover -update and read the diff", p)
	}
}

func TestArgoCDGolden(t *testing.T) {
	cfg, out := rendered(t)
	set, err := handover.ArgoCD(cfg, render.Regions(out), argoOpts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := render.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "argocd-applicationset.yaml", b)
}

func TestKarmadaGolden(t *testing.T) {
	cfg, out := rendered(t)
	objs, err := handover.Karmada(cfg, out, []string{"eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := render.MarshalAll(objs)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "karmada.yaml", b)
}

func TestRegistrationsGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		objs, err := handover.Registrations(region, "https://"+region+".eks.example.com", testCA(t), testExec(region))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			// Not render.Marshal: the ClusterProfile's status is the point.
			b, err := yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			buf.WriteString("---\n")
			buf.Write(b)
			if cfg, ok, _ := unstructured.NestedString(o.Object, "data", "config"); ok {
				js, err := base64.StdEncoding.DecodeString(cfg)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&buf, "# data.config decoded:\n# %s\n", js)
			}
		}
	}
	golden(t, "registrations.yaml", buf.Bytes())
}

// TestKarmadaReproducesEachRegion is the property the overrides exist for:
// every region's own render is its template with the region's plaintext
// overriders applied (by evanphx/json-patch, as Karmada applies them), and
// each object is placed exactly in the open regions that render it.
func TestKarmadaReproducesEachRegion(t *testing.T) {
	cfg, out := rendered(t)
	open := []string{"onprem-paris"}
	objs, err := handover.Karmada(cfg, out, open)
	if err != nil {
		t.Fatal(err)
	}
	templates := map[string]*unstructured.Unstructured{}
	patches := map[string]map[string][]any{}   // object → region → plaintext
	placements := map[string]map[string]bool{} // object → placed regions
	for _, o := range objs {
		u := o.(*unstructured.Unstructured)
		switch u.GetKind() {
		case "PropagationPolicy", "ClusterPropagationPolicy":
			clusters, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "placement", "clusterAffinity", "clusterNames")
			sels, _, _ := unstructured.NestedSlice(u.Object, "spec", "resourceSelectors")
			for _, s := range sels {
				id := selectorID(s)
				if placements[id] != nil {
					t.Errorf("%s is selected by two propagation policies", id)
				}
				placements[id] = map[string]bool{}
				for _, c := range clusters {
					placements[id][c] = true
				}
			}
		case "OverridePolicy", "ClusterOverridePolicy":
			rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "overrideRules")
			sels, _, _ := unstructured.NestedSlice(u.Object, "spec", "resourceSelectors")
			for _, r := range rules {
				clusters, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "targetCluster", "clusterNames")
				plain, _, _ := unstructured.NestedSlice(r.(map[string]any), "overriders", "plaintext")
				for _, s := range sels {
					id := selectorID(s)
					if patches[id] == nil {
						patches[id] = map[string][]any{}
					}
					for _, c := range clusters {
						patches[id][c] = append(patches[id][c], plain...)
					}
				}
			}
		default:
			templates[objID(u.GetKind(), u.GetNamespace(), u.GetName())] = u
		}
	}
	openOrAlways := map[string]bool{"onprem-paris": true}
	for _, r := range cfg.Spec.Regions.AlwaysOn {
		openOrAlways[r.Name] = true
	}
	checked := 0
	for region, robjs := range out {
		for _, o := range robjs {
			want, err := render.Unstructured(o)
			if err != nil {
				t.Fatal(err)
			}
			id := objID(want.GetKind(), want.GetNamespace(), want.GetName())
			tmpl := templates[id]
			if tmpl == nil {
				t.Errorf("%s of %s has no template", id, region)
				continue
			}
			if placements[id][region] != openOrAlways[region] {
				t.Errorf("%s placed in %s: %v, want %v", id, region, placements[id][region], openOrAlways[region])
			}
			got := applyPlaintext(t, tmpl.Object, patches[id][region])
			if !reflect.DeepEqual(got, want.Object) {
				t.Errorf("%s in %s: template + overrides differ from the region's render", id, region)
			}
			checked++
		}
	}
	t.Logf("%d objects of %d regions reproduced", checked, len(out))
}

func selectorID(s any) string {
	m := s.(map[string]any)
	ns, _ := m["namespace"].(string)
	return objID(m["kind"].(string), ns, m["name"].(string))
}

func objID(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// applyPlaintext applies Karmada plaintext overriders (path, operator,
// value) as the RFC 6902 patch they are.
func applyPlaintext(t *testing.T, doc map[string]any, plain []any) map[string]any {
	t.Helper()
	var ops []map[string]any
	for _, p := range plain {
		m := p.(map[string]any)
		op := map[string]any{"op": m["operator"], "path": m["path"]}
		if v, ok := m["value"]; ok {
			op["value"] = v
		}
		ops = append(ops, op)
	}
	return patch(t, doc, ops)
}

func patch(t *testing.T, doc map[string]any, ops any) map[string]any {
	t.Helper()
	pj, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(pj)
	if err != nil {
		t.Fatalf("patch %s: %v", pj, err)
	}
	dj, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Apply(dj)
	if err != nil {
		t.Fatalf("apply %s: %v", pj, err)
	}
	var out map[string]any
	if err := json.Unmarshal(res, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDiffRandomized: for seeded random pairs of JSON documents (keys with
// "/" and "~", lists of equal and other lengths, values changing type), the
// patch Diff computes turns the first into the second under an independent
// RFC 6902 implementation.
func TestDiffRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 2026))
	for i := range 2000 {
		a := randDoc(rng, 3)
		b := mutate(rng, a, 3)
		ops := handover.Diff(a, b)
		got := patch(t, a, ops)
		if !reflect.DeepEqual(got, normalize(t, b)) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			t.Fatalf("case %d: patch does not reproduce\n a=%s\n b=%s\n ops=%v", i, ja, jb, ops)
		}
	}
}

var keys = []string{"a", "b", "kubecdn.io/region", "x~y", "", "spec"}

func randValue(rng *rand.Rand, depth int) any {
	switch n := rng.IntN(6); {
	case depth > 0 && n == 0:
		return randDoc(rng, depth-1)
	case depth > 0 && n == 1:
		l := make([]any, rng.IntN(4))
		for i := range l {
			l[i] = randValue(rng, depth-1)
		}
		return l
	case n == 2:
		return float64(rng.IntN(5))
	case n == 3:
		return rng.IntN(2) == 0
	case n == 4:
		return nil
	default:
		return fmt.Sprint("v", rng.IntN(3))
	}
}

func randDoc(rng *rand.Rand, depth int) map[string]any {
	m := map[string]any{}
	for range rng.IntN(4) {
		m[keys[rng.IntN(len(keys))]] = randValue(rng, depth)
	}
	return m
}

// mutate returns a changed deep copy of v.
func mutate(rng *rand.Rand, v any, depth int) map[string]any {
	b, _ := json.Marshal(v)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	mutateIn(rng, c, depth)
	return c
}

func mutateIn(rng *rand.Rand, v any, depth int) {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			switch rng.IntN(5) {
			case 0:
				delete(t, k)
			case 1:
				t[k] = randValue(rng, depth)
			default:
				mutateIn(rng, c, depth-1)
			}
		}
		if rng.IntN(3) == 0 {
			t[keys[rng.IntN(len(keys))]] = randValue(rng, depth)
		}
	case []any:
		for i := range t {
			if rng.IntN(3) == 0 {
				t[i] = randValue(rng, depth)
			} else {
				mutateIn(rng, t[i], depth-1)
			}
		}
	}
}

func normalize(t *testing.T, v map[string]any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKarmadaOpenRefused(t *testing.T) {
	cfg, out := rendered(t)
	only := map[string][]render.Object{"us-east-1": out["us-east-1"], "eu-west-1": out["eu-west-1"]}
	for _, tc := range []struct {
		out  map[string][]render.Object
		open []string
		want string
	}{
		{out, []string{"ap-south-1"}, `open region "ap-south-1" is not a region of the file`},
		{out, []string{"us-west-2"}, `open region "us-west-2" is always-on`},
		{only, []string{"onprem-paris"}, `open region "onprem-paris" is not among the rendered regions [us-east-1 eu-west-1]`},
		{map[string][]render.Object{}, nil, "no regions to hand over"},
	} {
		_, err := handover.Karmada(cfg, tc.out, tc.open)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %v: got %v, want %q", tc.open, err, tc.want)
		}
	}
}

func TestArgoCDOptionsRefused(t *testing.T) {
	cfg, _ := rendered(t)
	for _, tc := range []struct {
		o    handover.ArgoCDOptions
		want string
	}{
		{handover.ArgoCDOptions{Revision: "main"}, "repo URL is required"},
		{handover.ArgoCDOptions{RepoURL: "cdn", Revision: "main"}, `repo URL "cdn": want a git URL`},
		{handover.ArgoCDOptions{RepoURL: "git@github.com:acme/cdn.git"}, "revision is required"},
		{handover.ArgoCDOptions{RepoURL: "https://x/y.git", Revision: "main", Path: "/abs"}, `path "/abs": want a path inside the repository`},
		{handover.ArgoCDOptions{RepoURL: "https://x/y.git", Revision: "main", Path: "../up"}, `path "../up"`},
	} {
		_, err := handover.ArgoCD(cfg, []string{"us-east-1"}, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestRegistrationsRefused(t *testing.T) {
	ca := testCA(t)
	noAPI := testExec("x")
	noAPI.APIVersion = ""
	for _, tc := range []struct {
		region, server string
		ca             []byte
		exec           *clientcmdapi.ExecConfig
		want           string
	}{
		{"US_East", "https://k.example.com", ca, testExec("x"), `region "US_East"`},
		{"us-east-1", "http://k.example.com", ca, testExec("x"), `server "http://k.example.com": want the API server's https URL`},
		{"us-east-1", "https://k.example.com", []byte("not pem"), testExec("x"), "CA: not PEM after 0 certificates"},
		{"us-east-1", "https://k.example.com", []byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), testExec("x"), `is "RSA PRIVATE KEY", want CERTIFICATE`},
		{"us-east-1", "https://k.example.com", ca, nil, "exec credential plugin: a command is required"},
		{"us-east-1", "https://k.example.com", ca, noAPI, "apiVersion is required"},
	} {
		_, err := handover.Registrations(tc.region, tc.server, tc.ca, tc.exec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: got %v, want %q", tc.region, tc.server, err, tc.want)
		}
	}
}

// testCA is a self-signed CA certificate kept in testdata (the golden files
// hold it).
func testCA(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWriteRegistrationsFile: kubecdn infra apply's file holds the two
// registrations of Registrations, the ClusterProfile's status included
// (render.Marshal would drop it).
func TestWriteRegistrationsFile(t *testing.T) {
	dir := t.TempDir()
	if err := handover.WriteRegistrations(dir, "eu-west-1", "https://eu-west-1.eks.example.com", testCA(t), testExec("eu-west-1")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(handover.RegistrationsFile(dir, "eu-west-1"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2:\n%s", len(docs), b)
	}
	for i, want := range []string{"kind: Secret", "kind: ClusterProfile"} {
		if !strings.Contains(docs[i], want) {
			t.Errorf("document %d lacks %q:\n%s", i, want, docs[i])
		}
	}
	if !strings.Contains(docs[1], "accessProviders") {
		t.Errorf("the ClusterProfile lost its status:\n%s", docs[1])
	}
	if err := handover.WriteRegistrations(dir, "eu-west-1", "http://plain", testCA(t), testExec("eu-west-1")); err == nil {
		t.Error("a non-https server was written")
	}
}
