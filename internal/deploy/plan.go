package deploy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Ref names one object in a cluster. Namespace is empty for cluster-scoped
// kinds (and for namespaced kinds whose manifest left it out, until the
// RESTMapper says which they are).
type Ref struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// RefOf returns the Ref of an object.
func RefOf(u *unstructured.Unstructured) Ref {
	gvk := u.GroupVersionKind()
	return Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// GVK returns the ref's group, version and kind.
func (r Ref) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// key identifies the object whatever its API version (apps/v1 and
// apps/v1beta2 name the same Deployment).
func (r Ref) key() string { return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name }

func (r Ref) String() string {
	k := strings.ToLower(r.Kind)
	if r.Namespace == "" {
		return k + "/" + r.Name
	}
	return k + "/" + r.Namespace + "/" + r.Name
}

// Prune returns the objects of the inventory (what an earlier deploy
// applied) that desired no longer names, in deletion order: the reverse of
// apply order, so a Namespace goes after what lives in it.
func Prune(inventory []Ref, desired []Ref) []Ref {
	want := sets.New[string]()
	for _, d := range desired {
		want.Insert(d.key())
	}
	var out []Ref
	seen := sets.New[string]()
	for _, r := range inventory {
		if want.Has(r.key()) || seen.Has(r.key()) {
			continue
		}
		seen.Insert(r.key())
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b Ref) int { return -compareApplyOrder(a, b) })
	return out
}

// kindOrder ranks kinds in apply order: what others need first.
func kindOrder(kind string) int {
	switch kind {
	case "Namespace":
		return 0
	case "CustomResourceDefinition":
		return 1
	case "ServiceAccount", "ClusterRole", "Role":
		return 2
	case "ClusterRoleBinding", "RoleBinding":
		return 3
	case "ConfigMap", "Secret", "PersistentVolumeClaim", "StorageClass":
		return 4
	case "Service":
		return 5
	case "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod":
		return 6
	default:
		return 7
	}
}

func compareApplyOrder(a, b Ref) int {
	return cmp.Or(cmp.Compare(kindOrder(a.Kind), kindOrder(b.Kind)), cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// SortForApply orders objects so that what others need goes first
// (namespaces, CRDs, RBAC, configuration, services, workloads, the rest).
func SortForApply(objs []*unstructured.Unstructured) {
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return compareApplyOrder(RefOf(a), RefOf(b))
	})
}

// ScaledByHPA returns the workloads (kind/name in a namespace) whose
// replica count a HorizontalPodAutoscaler among objs owns. Applying the
// file's spec.replicas to those would undo the autoscaler at every deploy,
// so deploy sends the file's count only when it creates the object, and the
// live count after that (within the autoscaler's bounds, see
// ReplicaBounds.Clamp).
func ScaledByHPA(objs []*unstructured.Unstructured) sets.Set[string] {
	return sets.KeySet(hpaBounds(objs))
}

// ReplicaBounds is the range an autoscaler keeps a workload's replicas in.
type ReplicaBounds struct{ Min, Max int64 }

// Clamp is the replica count deploy sends for a workload an autoscaler
// scales, given the live count: the autoscaler's choice when it is within
// the bounds, else the nearest bound. Below the minimum is drift: someone
// scaled by hand, and at zero the autoscaler stops scaling altogether
// (Kubernetes disables it for a target at zero), so edges scaled to 0
// would never come back.
// A Max of zero (not set) is no upper bound.
func (b ReplicaBounds) Clamp(live int64) int64 {
	n := max(live, b.Min)
	if b.Max > 0 {
		n = min(n, max(b.Max, b.Min))
	}
	return n
}

// hpaBounds is ScaledByHPA with each autoscaler's bounds (minReplicas is 1
// when unset, as in Kubernetes).
func hpaBounds(objs []*unstructured.Unstructured) map[string]ReplicaBounds {
	out := map[string]ReplicaBounds{}
	for _, o := range objs {
		if o.GetKind() != "HorizontalPodAutoscaler" {
			continue
		}
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "spec", "scaleTargetRef", "name")
		if kind == "" || name == "" {
			continue
		}
		b := ReplicaBounds{Min: 1}
		if n, ok := integer(o, "spec", "minReplicas"); ok {
			b.Min = n
		}
		b.Max, _ = integer(o, "spec", "maxReplicas")
		out[kind+"/"+o.GetNamespace()+"/"+name] = b
	}
	return out
}

// integer reads a whole number at path: int64 from the API server, float64
// from objects that went through encoding/json (render's, the apps').
func integer(u *unstructured.Unstructured, path ...string) (int64, bool) {
	v, found, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
	if !found {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		return int64(n), n == float64(int64(n))
	}
	return 0, false
}

// Rollout is how far a workload's rollout has come.
type Rollout struct {
	Ready, Want int64
	Done        bool
	// Message says what is missing, e.g. "1 of 2 updated".
	Message string
}

func (r Rollout) String() string {
	if r.Done {
		return fmt.Sprintf("%d/%d ready", r.Ready, r.Want)
	}
	return fmt.Sprintf("%d/%d ready (%s)", r.Ready, r.Want, r.Message)
}

// IsWorkload reports whether kubecdn waits for the kind's rollout.
func IsWorkload(kind string) bool {
	return kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet"
}

// RolloutOf reads a live Deployment, StatefulSet or DaemonSet's status the
// way `kubectl rollout status` does.
func RolloutOf(u *unstructured.Unstructured) Rollout {
	gen := u.GetGeneration()
	i := func(path ...string) int64 {
		v, _, _ := unstructured.NestedInt64(u.Object, path...)
		return v
	}
	observed := i("status", "observedGeneration")
	switch u.GetKind() {
	case "DaemonSet":
		want := i("status", "desiredNumberScheduled")
		r := Rollout{Ready: i("status", "numberReady"), Want: want}
		switch updated := i("status", "updatedNumberScheduled"); {
		case observed < gen:
			r.Message = "waiting for the controller to see the new spec"
		case updated < want:
			r.Message = fmt.Sprintf("%d of %d updated", updated, want)
		case r.Ready < want:
			r.Message = fmt.Sprintf("%d of %d ready", r.Ready, want)
		default:
			r.Done = true
		}
		return r
	}
	want := int64(1)
	if v, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); found {
		want = v
	}
	r := Rollout{Ready: i("status", "readyReplicas"), Want: want}
	updated := i("status", "updatedReplicas")
	current, _, _ := unstructured.NestedString(u.Object, "status", "currentRevision")
	update, _, _ := unstructured.NestedString(u.Object, "status", "updateRevision")
	replicas := i("status", "replicas")
	switch {
	case observed < gen:
		r.Message = "waiting for the controller to see the new spec"
	case updated < want:
		r.Message = fmt.Sprintf("%d of %d updated", updated, want)
	case replicas > updated:
		r.Message = fmt.Sprintf("%d old replicas still running", replicas-updated)
	case r.Ready < want:
		r.Message = fmt.Sprintf("%d of %d ready", r.Ready, want)
	case u.GetKind() == "Deployment" && i("status", "availableReplicas") < want:
		r.Message = fmt.Sprintf("%d of %d available", i("status", "availableReplicas"), want)
	case u.GetKind() == "StatefulSet" && current != "" && update != "" && current != update:
		r.Message = "revision " + update + " not current yet"
	default:
		r.Done = true
	}
	return r
}

// Same reports whether two versions of an object agree on everything but
// what the server keeps for itself (resourceVersion, generation, uid,
// timestamps, managedFields, status). A dry-run apply compared with the
// live object says whether a real apply would change it.
func Same(a, b *unstructured.Unstructured) bool {
	if a == nil || b == nil {
		return a == b
	}
	na, nb := normalize(a), normalize(b)
	ja, _ := json.Marshal(na)
	jb, _ := json.Marshal(nb)
	return string(ja) == string(jb)
}

func normalize(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy().Object
	delete(c, "status")
	if md, ok := c["metadata"].(map[string]any); ok {
		for _, k := range []string{"resourceVersion", "generation", "uid", "creationTimestamp", "managedFields", "selfLink"} {
			delete(md, k)
		}
		if a, ok := md["annotations"].(map[string]any); ok {
			delete(a, "deployment.kubernetes.io/revision")
			if len(a) == 0 {
				delete(md, "annotations")
			}
		}
	}
	return c
}
