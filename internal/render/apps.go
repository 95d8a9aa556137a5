package render

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
)

// WithApps adds to each region of out (a Render result) the objects of the
// apps (spec.apps, loaded with apps.Load) that run there, as kubecdn deploy
// applies them: the region's overrides applied and kubecdn's labels set
// (apps.App.ForRegion), app.kubernetes.io/part-of where the object has
// none. A namespace the objects live in that none of them declares gets a
// Namespace, as deploy creates it where it is missing: render cannot look,
// so it is always written (see the README for a namespace that is not
// kubecdn's). Each region's list is sorted again into apply order.
func WithApps(cfg *config.CDN, loaded []*apps.App, out map[string][]Object) error {
	for _, region := range Regions(out) {
		objs := out[region]
		declared := map[string]bool{}
		for _, o := range objs {
			if isNamespace(o) {
				declared[o.GetName()] = true
			}
		}
		var added []*unstructured.Unstructured
		for _, a := range loaded {
			if !slices.Contains(a.Regions(cfg), region) {
				continue
			}
			more, err := a.ForRegion(region)
			if err != nil {
				return fmt.Errorf("render region %s: %w", region, err)
			}
			for _, u := range more {
				if l := u.GetLabels(); l["app.kubernetes.io/part-of"] == "" {
					l["app.kubernetes.io/part-of"] = "kubecdn"
					u.SetLabels(l)
				}
				if isNamespace(u) {
					declared[u.GetName()] = true
				}
			}
			added = append(added, more...)
		}
		for _, u := range added {
			objs = append(objs, u)
		}
		for _, u := range added {
			ns := u.GetNamespace()
			if ns == "" || declared[ns] {
				continue
			}
			declared[ns] = true
			n := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace"}}
			n.SetName(ns)
			n.SetLabels(map[string]string{
				"app.kubernetes.io/managed-by": "kubecdn",
				"app.kubernetes.io/part-of":    "kubecdn",
				labelCDN:                       cfg.Metadata.Name,
				labelRegion:                    region,
			})
			objs = append(objs, n)
		}
		sortObjects(objs)
		out[region] = objs
	}
	return nil
}

func isNamespace(o Object) bool {
	gvk := o.GetObjectKind().GroupVersionKind()
	return gvk.Group == "" && gvk.Kind == "Namespace"
}
