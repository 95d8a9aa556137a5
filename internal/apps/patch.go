package apps

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubecdn/kubecdn/internal/config"
)

// applyOverride patches the one object the override names, in place in
// objs (which are the caller's own copies).
func applyOverride(objs []*unstructured.Unstructured, o config.Override) error {
	var hits []int
	for i, u := range objs {
		if u.GetKind() != o.Kind || u.GetName() != o.Name {
			continue
		}
		if o.Namespace != "" && namespaceOf(u) != o.Namespace {
			continue
		}
		hits = append(hits, i)
	}
	switch len(hits) {
	case 0:
		where := ""
		if o.Namespace != "" {
			where = " in namespace " + o.Namespace
		}
		return fmt.Errorf("no %s named %q%s in the app's manifests", o.Kind, o.Name, where)
	case 1:
	default:
		var names []string
		for _, i := range hits {
			names = append(names, objs[i].GetAPIVersion()+" "+describe(objs[i]))
		}
		return fmt.Errorf("%s %q matches %d objects (%s): set namespace", o.Kind, o.Name, len(hits), strings.Join(names, ", "))
	}
	u := objs[hits[0]]
	patched, err := patchObject(u, o.Patch)
	if err != nil {
		return fmt.Errorf("patching %s: %w", describe(u), err)
	}
	before, after := identity(u.Object), identity(patched)
	for i, f := range identityFields() {
		if before[i] != after[i] {
			return fmt.Errorf("the patch changes %s of %s (%q to %q): an override cannot rename or move an object", f, describe(u), before[i], after[i])
		}
	}
	objs[hits[0]] = &unstructured.Unstructured{Object: patched}
	return nil
}

// namespaceOf is the namespace an object lands in when applied: its own,
// else "default" (what kubectl does for namespaced kinds).
func namespaceOf(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return ns
	}
	return "default"
}

// identityFields are what an override may not change.
func identityFields() [4]string {
	return [4]string{"apiVersion", "kind", "metadata.name", "metadata.namespace"}
}

func identity(obj map[string]any) [4]string {
	var out [4]string
	for i, f := range identityFields() {
		v, _, _ := unstructured.NestedFieldNoCopy(obj, strings.Split(f, ".")...)
		if v != nil {
			out[i] = fmt.Sprint(v)
		}
	}
	return out
}

// patchObject returns a patched copy of u: a strategic merge patch when
// client-go's scheme knows the kind (so lists such as containers merge by
// their keys), else a JSON merge patch (RFC 7386).
func patchObject(u *unstructured.Unstructured, p map[string]any) (map[string]any, error) {
	pj, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding the patch: %w", err)
	}
	if typed, err := scheme.Scheme.New(u.GroupVersionKind()); err == nil {
		orig, err := json.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		out, err := strategicpatch.StrategicMergePatch(orig, pj, typed)
		if err != nil {
			return nil, fmt.Errorf("strategic merge patch: %w", err)
		}
		var m map[string]any
		if err := utiljson.Unmarshal(out, &m); err != nil {
			return nil, err
		}
		// Catch a patch of the wrong shape (a string for a list) here,
		// with the override's name, rather than at apply time.
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, typed); err != nil {
			return nil, fmt.Errorf("the patched object is not a valid %s: %w", u.GetKind(), err)
		}
		return m, nil
	}
	var pm map[string]any // a fresh copy, with the same number types as u
	if err := utiljson.Unmarshal(pj, &pm); err != nil {
		return nil, err
	}
	m, _ := mergePatch(u.DeepCopy().Object, pm).(map[string]any)
	return m, nil
}

// mergePatch applies an RFC 7386 JSON merge patch to target, reusing
// target's maps: objects merge key by key, null deletes a key, anything
// else (lists included) replaces.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergePatch(t[k], v)
	}
	return t
}
