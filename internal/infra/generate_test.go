package infra

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/config"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the generators")

// generated is every managed region of testdata/clouds.yaml with its root.
func generated(t *testing.T) map[string]Root {
	t.Helper()
	cfg, err := config.Load("testdata/clouds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Root{}
	for _, r := range cfg.AllRegions() {
		if !cfg.InfraManaged(r.Region) {
			continue
		}
		root, err := Generate(cfg, r, filepath.Join("infra", r.Name), nil)
		if err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		out[r.Name] = root
	}
	if len(out) != 4 {
		t.Fatalf("managed regions = %d, want 4 (onprem-paris has its own cluster)", len(out))
	}
	return out
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/infra -run TestGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (rerun with -update if intended):\n%s", name, got)
	}
}

func TestGolden(t *testing.T) {
	for region, root := range generated(t) {
		b, err := Marshal(root.JSON)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, region+".main.tf.json", b)
		extra, _ := json.MarshalIndent(map[string]any{"before": root.Before, "auth": root.Auth, "export": root.Export}, "", "  ")
		golden(t, region+".driver.json", append(extra, '\n'))
		for name, b := range root.Files {
			golden(t, region+"."+name, b)
		}
	}
}

// TestDeterministic generates each root many times: the bytes never change
// (maps are written with sorted keys, lists in file order).
func TestDeterministic(t *testing.T) {
	first := map[string][]byte{}
	for range 20 {
		for region, root := range generated(t) {
			b, _ := Marshal(root.JSON)
			if first[region] == nil {
				first[region] = b
			} else if !bytes.Equal(first[region], b) {
				t.Fatalf("%s: output changed between runs", region)
			}
		}
	}
}

// pinnedInputs reads testdata/inputs/FILE: variable names, and VAR.ATTR
// lines for the attributes of object-typed variables.
func pinnedInputs(t *testing.T, file string) (vars map[string]bool, attrs map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "inputs", file))
	if err != nil {
		t.Fatal(err)
	}
	vars, attrs = map[string]bool{}, map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if v, a, ok := strings.Cut(l, "."); ok {
			attrs[v] = append(attrs[v], a)
		} else {
			vars[l] = true
		}
	}
	return vars, attrs
}

// metaArgs are module block arguments that are not inputs.
var metaArgs = []string{"source", "version", "providers", "depends_on", "count", "for_each"}

// TestInputsExist checks every input a generated module block sets against
// the variables of the pinned module version (and, for object-typed
// variables, every attribute set inside them), so a pin bump that renames
// an input fails here, not at a user's plan.
func TestInputsExist(t *testing.T) {
	bySource := map[string]Pin{}
	for _, p := range Modules {
		bySource[p.Source] = p
	}
	checked := 0
	for region, root := range generated(t) {
		mods, _ := root.JSON["module"].(map[string]any)
		for name, m := range mods {
			block := m.(map[string]any)
			src := block["source"].(string)
			if strings.HasPrefix(src, "./") {
				continue // kops' own output, written at run time
			}
			pin, ok := bySource[src]
			if !ok || block["version"] != pin.Version {
				t.Errorf("%s: module %s uses %s@%v, which is not in the Modules table", region, name, src, block["version"])
				continue
			}
			vars, attrs := pinnedInputs(t, pin.Inputs)
			for k, v := range block {
				if slices.Contains(metaArgs, k) {
					continue
				}
				checked++
				if !vars[k] {
					t.Errorf("%s: module %s sets %q, which %s@%s has no variable for", region, name, k, src, pin.Version)
					continue
				}
				if want := attrs[k]; len(want) > 0 {
					for _, obj := range objects(v) {
						for a := range obj {
							checked++
							if !slices.Contains(want, a) {
								t.Errorf("%s: module %s sets %s.%s, which %s@%s does not take", region, name, k, a, src, pin.Version)
							}
						}
					}
				}
			}
		}
	}
	if checked < 40 {
		t.Errorf("checked only %d inputs", checked)
	}
}

// objects returns the objects a variable value holds: itself (object), its
// elements (list of objects) or its values (map of objects).
func objects(v any) []map[string]any {
	switch x := v.(type) {
	case []any:
		var out []map[string]any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	case map[string]any:
		allMaps := len(x) > 0
		for _, e := range x {
			if _, ok := e.(map[string]any); !ok {
				allMaps = false
			}
		}
		if !allMaps {
			return []map[string]any{x}
		}
		var out []map[string]any
		for _, e := range x {
			out = append(out, e.(map[string]any))
		}
		return out
	}
	return nil
}

// TestInputsExistCatchesTypos makes sure the check above can fail.
func TestInputsExistCatchesTypos(t *testing.T) {
	vars, attrs := pinnedInputs(t, Modules["eks"].Inputs)
	if vars["cluster_version"] || !vars["kubernetes_version"] {
		t.Error("eks v21 renamed cluster_version to kubernetes_version; the inputs file says otherwise")
	}
	if slices.Contains(attrs["eks_managed_node_groups"], "instance_type") || !slices.Contains(attrs["eks_managed_node_groups"], "instance_types") {
		t.Error("node group attributes are not what eks v21 takes")
	}
}

// TestKopsInstanceGroupFields: every field the kops instance groups set
// exists in kops' v1alpha2 InstanceGroupSpec (testdata/inputs), one group
// per node pool of the file, each in the cluster and the zone, spot pools
// all spot.
func TestKopsInstanceGroupFields(t *testing.T) {
	spec, mixed := pinnedInputs(t, "kops-instancegroup.txt")
	root := generated(t)["ap-southeast-1"]
	b := root.Files[kopsGroupsFile]
	if b == nil {
		t.Fatalf("no %s for the kops region", kopsGroupsFile)
	}
	var names []string
	for _, doc := range strings.Split(string(b), "---\n") {
		var ig struct {
			APIVersion, Kind string
			Metadata         struct {
				Name   string
				Labels map[string]string
			}
			Spec map[string]any
		}
		if err := yaml.Unmarshal([]byte(doc), &ig); err != nil {
			t.Fatal(err)
		}
		names = append(names, ig.Metadata.Name)
		if ig.APIVersion != "kops.k8s.io/v1alpha2" || ig.Kind != "InstanceGroup" || ig.Metadata.Labels["kops.k8s.io/cluster"] != "demo-ap-southeast-1.k8s.local" {
			t.Errorf("%s: %s %s labels %v", ig.Metadata.Name, ig.APIVersion, ig.Kind, ig.Metadata.Labels)
		}
		for k, v := range ig.Spec {
			if !spec[k] {
				t.Errorf("%s: spec.%s is not a field of kops' InstanceGroupSpec", ig.Metadata.Name, k)
			}
			if m, ok := v.(map[string]any); ok && k == "mixedInstancesPolicy" {
				for mk := range m {
					if !slices.Contains(mixed["mixedInstancesPolicy"], mk) {
						t.Errorf("%s: spec.mixedInstancesPolicy.%s is not a field of kops' MixedInstancesPolicySpec", ig.Metadata.Name, mk)
					}
				}
			}
		}
		if ig.Spec["role"] != "Node" || fmt.Sprint(ig.Spec["subnets"]) != "[ap-southeast-1a]" {
			t.Errorf("%s: role %v subnets %v", ig.Metadata.Name, ig.Spec["role"], ig.Spec["subnets"])
		}
		if spot := ig.Spec["mixedInstancesPolicy"] != nil; spot != (ig.Metadata.Name == "edge-spot") {
			t.Errorf("%s: spot %v", ig.Metadata.Name, spot)
		}
	}
	if strings.Join(names, ",") != "edge,edge-spot" {
		t.Errorf("instance groups %v, want one per node pool", names)
	}
}
