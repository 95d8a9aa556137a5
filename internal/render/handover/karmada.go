package handover

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

const karmadaPolicy = "policy.karmada.io/v1alpha1"

// Karmada turns the per-region renders into what a Karmada control plane
// propagates: the union of the regions' objects as resource templates (each
// as the first region of the file that has it renders it), a
// PropagationPolicy per namespace (a ClusterPropagationPolicy for
// cluster-scoped objects) whose placement names the open regions that have
// those objects, and for every other region OverridePolicies whose plaintext
// JSON patches turn the template into that region's own render, only for
// the fields that differ.
//
// A Karmada member cluster is named after its region (karmadactl join
// REGION). open lists the autoscale regions that are open now (the
// always-on regions are always placed): Karmada has no notion of demand, so
// opening or closing a region is rendering again with another open list,
// which changes only the placements; the overrides of closed regions are
// kept so that opening one needs nothing else. An object none of whose
// regions is open stays a template, placed nowhere. The policies resolve
// conflicts by overwriting, so the engine takes over objects kubecdn
// deploy applied before.
//
// out is render.Render's output (with render.WithApps); regions are taken
// in the file's order.
func Karmada(cfg *config.CDN, out map[string][]render.Object, open []string) ([]render.Object, error) {
	order, placed, err := regionOrder(cfg, out, open)
	if err != nil {
		return nil, err
	}
	type entry struct {
		tmpl    *unstructured.Unstructured
		regions []string
		diffs   map[string][]patchOp // by region; only regions that differ
	}
	byID := map[string]*entry{}
	var ids []string
	for _, region := range order {
		for _, o := range out[region] {
			u, err := render.Unstructured(o)
			if err != nil {
				return nil, err
			}
			id := objectID(u)
			e := byID[id]
			if e == nil {
				byID[id] = &entry{tmpl: u, regions: []string{region}, diffs: map[string][]patchOp{}}
				ids = append(ids, id)
				continue
			}
			e.regions = append(e.regions, region)
			if ops := diff(nil, e.tmpl.Object, u.Object); len(ops) > 0 {
				e.diffs[region] = ops
			}
		}
	}

	var objs []render.Object
	// Propagation: objects grouped by scope, namespace and the open regions
	// that have them.
	type group struct {
		namespace string
		clusters  []string
		selectors []any
	}
	groups := map[string]*group{}
	var gkeys []string
	// Overrides: per region, objects grouped by identical patches, so one
	// policy per region covers every object that differs only in the same
	// way (its region label, say).
	type override struct {
		namespace, region string
		ops               []patchOp
		selectors         []any
	}
	overrides := map[string]*override{}
	var okeys []string
	for _, id := range ids {
		e := byID[id]
		objs = append(objs, e.tmpl)
		ns := e.tmpl.GetNamespace()
		var clusters []string
		for _, r := range e.regions {
			if placed[r] {
				clusters = append(clusters, r)
			}
		}
		if len(clusters) > 0 {
			k := ns + "\x00" + strings.Join(clusters, ",")
			if groups[k] == nil {
				groups[k] = &group{namespace: ns, clusters: clusters}
				gkeys = append(gkeys, k)
			}
			groups[k].selectors = append(groups[k].selectors, selector(e.tmpl))
		}
		for _, r := range e.regions {
			ops := e.diffs[r]
			if len(ops) == 0 {
				continue
			}
			js, err := json.Marshal(ops)
			if err != nil {
				return nil, err
			}
			k := ns + "\x00" + r + "\x00" + string(js)
			if overrides[k] == nil {
				overrides[k] = &override{namespace: ns, region: r, ops: ops}
				okeys = append(okeys, k)
			}
			overrides[k].selectors = append(overrides[k].selectors, selector(e.tmpl))
		}
	}

	// Names are unique per kind across namespaces too: render.FileName
	// names a file by kind and name only.
	taken := map[string]string{} // kind and name → namespace
	uniq := func(kind, ns, base string) string {
		name := base
		if other, ok := taken[kind+"\x00"+name]; ok && other != ns && ns != "" {
			name = base + "-" + ns
		}
		for n := 2; ; n++ {
			if _, ok := taken[kind+"\x00"+name]; !ok {
				break
			}
			name = fmt.Sprintf("%s-%d", base, n)
		}
		taken[kind+"\x00"+name] = ns
		return name
	}
	for _, k := range gkeys {
		g := groups[k]
		// The policy of the objects every placed region has is
		// kubecdn-CDN; one of objects only some have names them (or their
		// hash, when that is too long).
		base := "kubecdn-" + cfg.Metadata.Name
		if len(g.clusters) != len(placedIn(order, placed)) {
			if n := base + "-in-" + strings.Join(g.clusters, "-"); len(n) <= 63 {
				base = n
			} else {
				base += "-in-" + shortHash(strings.Join(g.clusters, ","))
			}
		}
		kind := "PropagationPolicy"
		if g.namespace == "" {
			kind = "ClusterPropagationPolicy"
		}
		objs = append(objs, policy(kind, g.namespace, uniq(kind, g.namespace, base), map[string]any{
			"resourceSelectors":  g.selectors,
			"placement":          map[string]any{"clusterAffinity": map[string]any{"clusterNames": strs(g.clusters)}},
			"conflictResolution": "Overwrite",
		}))
	}
	for _, k := range okeys {
		ov := overrides[k]
		var plain []any
		for _, op := range ov.ops {
			p := map[string]any{"path": op.Path, "operator": op.Op}
			if op.Op != "remove" {
				p["value"] = op.Value
			}
			plain = append(plain, p)
		}
		kind := "OverridePolicy"
		if ov.namespace == "" {
			kind = "ClusterOverridePolicy"
		}
		// A policy of one object is named after it; the first of several
		// objects after the region alone.
		base := "kubecdn-" + cfg.Metadata.Name + "-" + ov.region
		if len(ov.selectors) == 1 {
			sel := ov.selectors[0].(map[string]any)
			base += "-" + strings.ToLower(sel["kind"].(string)) + "-" + sel["name"].(string)
		}
		objs = append(objs, policy(kind, ov.namespace, uniq(kind, ov.namespace, base), map[string]any{
			"resourceSelectors": ov.selectors,
			"overrideRules": []any{map[string]any{
				"targetCluster": map[string]any{"clusterNames": []any{ov.region}},
				"overriders":    map[string]any{"plaintext": plain},
			}},
		}))
	}
	return objs, nil
}

// regionOrder returns the rendered regions in the file's order and which of
// them are placed (always-on, or named in open); open must name rendered
// autoscale regions.
func regionOrder(cfg *config.CDN, out map[string][]render.Object, open []string) ([]string, map[string]bool, error) {
	var order []string
	placed := map[string]bool{}
	autoscale := map[string]bool{}
	for _, r := range cfg.AllRegions() {
		if _, ok := out[r.Name]; !ok {
			continue
		}
		order = append(order, r.Name)
		placed[r.Name] = !r.Autoscale
		autoscale[r.Name] = r.Autoscale
	}
	if len(order) != len(out) {
		return nil, nil, fmt.Errorf("rendered regions %v are not all regions of the file", render.Regions(out))
	}
	if len(order) == 0 {
		return nil, nil, fmt.Errorf("no regions to hand over")
	}
	for _, name := range open {
		inFile := slices.ContainsFunc(cfg.AllRegions(), func(r config.RegionRef) bool { return r.Name == name })
		switch {
		case !inFile:
			return nil, nil, fmt.Errorf("open region %q is not a region of the file", name)
		case !slices.Contains(order, name):
			return nil, nil, fmt.Errorf("open region %q is not among the rendered regions %v", name, order)
		case !autoscale[name]:
			return nil, nil, fmt.Errorf("open region %q is always-on (always placed); name only autoscale regions", name)
		}
		placed[name] = true
	}
	return order, placed, nil
}

func placedIn(order []string, placed map[string]bool) []string {
	var out []string
	for _, r := range order {
		if placed[r] {
			out = append(out, r)
		}
	}
	return out
}

func objectID(u *unstructured.Unstructured) string {
	return u.GetAPIVersion() + "\x00" + u.GetKind() + "\x00" + u.GetNamespace() + "\x00" + u.GetName()
}

func selector(u *unstructured.Unstructured) any {
	s := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "name": u.GetName()}
	if ns := u.GetNamespace(); ns != "" {
		s["namespace"] = ns
	}
	return s
}

func policy(kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": name, "labels": map[string]any{labelManagedBy: managedBy}}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": karmadaPolicy, "kind": kind, "metadata": meta, "spec": spec,
	}}
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// patchOp is one RFC 6902 operation, as Karmada's plaintext overrider takes
// it (operator add, remove or replace).
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// diff returns the operations that turn a into b: maps key by key, lists of
// equal length element by element, anything else replaced whole. Keys are
// visited in order, so the result is deterministic.
func diff(path []string, a, b any) []patchOp {
	if reflect.DeepEqual(a, b) {
		return nil
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var ops []patchOp
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			av, ina := am[k]
			bv, inb := bm[k]
			p := append(slices.Clone(path), k)
			switch {
			case !inb:
				ops = append(ops, patchOp{Op: "remove", Path: pointer(p)})
			case !ina:
				ops = append(ops, patchOp{Op: "add", Path: pointer(p), Value: bv})
			default:
				ops = append(ops, diff(p, av, bv)...)
			}
		}
		return ops
	}
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok && bok && len(as) == len(bs) {
		var ops []patchOp
		for i := range as {
			ops = append(ops, diff(append(slices.Clone(path), fmt.Sprint(i)), as[i], bs[i])...)
		}
		return ops
	}
	return []patchOp{{Op: "replace", Path: pointer(path), Value: b}}
}

// pointer is the RFC 6901 JSON pointer of path.
func pointer(path []string) string {
	var sb strings.Builder
	for _, p := range path {
		sb.WriteByte('/')
		sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return sb.String()
}
