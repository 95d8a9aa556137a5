package kubetest

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// Apply sends u as a server-side apply, as kubecdn deploy does (field
// manager "kubecdn", forced, strict field validation), in dry run when
// dryRun is set; to a subresource ("status") when one is given.
func Apply(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, u *unstructured.Unstructured, dryRun bool, subresource ...string) error {
	gvk := u.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("no resource for %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	data, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "kubecdn", Force: new(true), FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, opts, subresource...)
	return err
}

// InstallCRDs creates the CustomResourceDefinitions (YAML, one per
// document) and waits until the server establishes each and lists its kind.
func (c *Cluster) InstallCRDs(ctx context.Context, docs ...[]byte) error {
	crds := c.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	var served []schema.GroupVersionResource
	for i, b := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			return fmt.Errorf("CRD %d: %w", i, err)
		}
		if _, err := crds.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("install CRD %s: %w", u.GetName(), err)
		}
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
		versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
		for _, v := range versions {
			name, _, _ := unstructured.NestedString(v.(map[string]any), "name")
			if on, _, _ := unstructured.NestedBool(v.(map[string]any), "served"); on {
				served = append(served, schema.GroupVersionResource{Group: group, Version: name, Resource: plural})
			}
		}
	}
	for _, gvr := range served {
		for {
			_, err := c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			if err == nil {
				err = discovered(c, gvr)
			}
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not served: %w", gvr, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// discovered reports whether discovery lists the resource (a group's list
// can be served before it names a second CRD of the group).
func discovered(c *Cluster, gvr schema.GroupVersionResource) error {
	l, err := c.Client.Discovery().ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if err != nil {
		return err
	}
	for _, r := range l.APIResources {
		if r.Name == gvr.Resource {
			return nil
		}
	}
	return fmt.Errorf("%s not in discovery yet", gvr)
}
