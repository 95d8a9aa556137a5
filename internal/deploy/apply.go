package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

// objectsFor is everything one region gets: render's objects for it from
// cfg (the file with the addresses known so far, see addressed) and the
// apps that run there.
func (d *deployer) objectsFor(region string, cfg *config.CDN) ([]*unstructured.Unstructured, error) {
	ro := d.opts.Render
	ro.Regions = []string{region}
	out, err := render.Render(cfg, ro)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, o := range out[region] {
		u, err := render.Unstructured(o)
		if err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	for _, a := range d.apps {
		if !slices.Contains(a.Regions(d.cfg), region) {
			continue
		}
		more, err := a.ForRegion(region)
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	return objs, nil
}

// setLabels marks u as kubecdn's: the CDN, region and managed-by labels
// always win (pruning and teardown find objects by them); the others only
// where the object has none of its own.
func (d *deployer) setLabels(u *unstructured.Unstructured, region string) {
	ls := u.GetLabels()
	if ls == nil {
		ls = map[string]string{}
	}
	for k, v := range d.labels(region) {
		if _, ok := ls[k]; !ok || k == "kubecdn.io/cdn" || k == "kubecdn.io/region" || k == "app.kubernetes.io/managed-by" {
			ls[k] = v
		}
	}
	u.SetLabels(ls)
}

func (d *deployer) labels(region string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/managed-by": "kubecdn",
		"app.kubernetes.io/part-of":    "kubecdn",
		"kubecdn.io/cdn":               d.cfg.Metadata.Name,
		"kubecdn.io/region":            region,
	}
}

// withNamespaces adds a Namespace for every namespace the objects live in
// that none of them declares and that does not exist yet (or that an
// earlier deploy created): `kubectl apply` would fail on those, and a user
// expects their app's namespace to come and go with the app. A namespace
// that exists and is not kubecdn's is left alone.
func (d *deployer) withNamespaces(ctx context.Context, c *Cluster, region string, objs []*unstructured.Unstructured, inventory []Ref) ([]*unstructured.Unstructured, error) {
	declared := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" {
			declared[o.GetName()] = true
		}
	}
	owned := map[string]bool{}
	for _, r := range inventory {
		if r.Kind == "Namespace" && r.Group == "" {
			owned[r.Name] = true
		}
	}
	var extra []*unstructured.Unstructured
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" || declared[ns] {
			continue
		}
		declared[ns] = true
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		u.SetLabels(d.labels(region))
		if !owned[ns] {
			live, err := c.Get(ctx, u, "")
			if err != nil {
				return nil, err
			}
			if live != nil {
				continue // someone else's
			}
		}
		extra = append(extra, u)
	}
	return append(objs, extra...), nil
}

// regionObjects is everything the region gets (objectsFor), labelled as
// kubecdn's, with the Namespaces they need (withNamespaces), in apply
// order.
func (d *deployer) regionObjects(ctx context.Context, c *Cluster, region string, known *config.CDN, inventory []Ref) ([]*unstructured.Unstructured, error) {
	objs, err := d.objectsFor(region, known)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		d.setLabels(o, region)
	}
	if objs, err = d.withNamespaces(ctx, c, region, objs, inventory); err != nil {
		return nil, err
	}
	SortForApply(objs)
	return objs, nil
}

// apply applies objs in order, making the region's Secrets once the
// namespace is there, and counts each object into rr by comparing with
// what was there. It returns the refs now desired in the region. When it
// fails it returns false with rr's error set: the region is done, and
// when the failure was a change refused, what was created so far stays in
// the inventory with prev (applyFailed).
func (d *deployer) apply(ctx context.Context, c *Cluster, region string, objs []*unstructured.Unstructured, prev []Ref, rr *RegionResult) ([]Ref, bool) {
	scaled := hpaBounds(objs)
	var desired []Ref
	secretsDone := false
	for _, o := range objs {
		if !secretsDone && o.GetKind() != "Namespace" {
			// The Secrets the edges and the dns read at start (optional
			// there): made once the namespace is there and before
			// anything that runs, so no pod starts without them.
			secretsDone = true
			refs, created, err := d.ensureSecrets(ctx, c, region)
			desired = append(desired, refs...)
			for _, ref := range created {
				rr.Changes = append(rr.Changes, Change{"created", ref})
			}
			// Every desired object is counted once: a Secret kept as it
			// was is unchanged, or the counts would not add up.
			rr.Unchanged += len(refs) - len(created)
			if err != nil {
				*rr = d.applyFailed(ctx, c, region, *rr, err, union(prev, desired))
				return nil, false
			}
		}
		live, err := c.Get(ctx, o, "default")
		if err != nil {
			rr.Err = err
			return nil, false
		}
		if b, ok := scaled[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()]; ok && live != nil {
			// The autoscaler owns the count: send what it chose, so the
			// field stays set (dropping it would reset it to 1), unless it
			// is out of the autoscaler's bounds (scaled to 0 by hand).
			if n, found, _ := unstructured.NestedInt64(live.Object, "spec", "replicas"); found {
				_ = unstructured.SetNestedField(o.Object, b.Clamp(n), "spec", "replicas")
			}
		}
		out, err := c.Apply(ctx, o, "default", d.opts.DryRun)
		if err != nil {
			if d.opts.DryRun && live == nil && o.GetKind() != "Namespace" && isNamespaceMissing(err) {
				// The namespace would be created first; a dry run cannot
				// see it, so it cannot validate what lives in it.
				rr.Changes = append(rr.Changes, Change{"created", RefOf(o)})
				desired = append(desired, RefOf(o))
				continue
			}
			*rr = d.applyFailed(ctx, c, region, *rr, err, union(prev, desired))
			return nil, false
		}
		desired = append(desired, RefOf(o))
		switch {
		case live == nil:
			rr.Changes = append(rr.Changes, Change{"created", RefOf(o)})
		case !Same(live, out): // field ownership moving alone is no change
			rr.Changes = append(rr.Changes, Change{"configured", RefOf(o)})
		default:
			rr.Unchanged++
		}
	}
	return desired, true
}

// applyFailed ends a region whose apply failed with err: what this run
// created stays in the inventory (with what was there), so a later run can
// prune it; nothing is pruned now.
func (d *deployer) applyFailed(ctx context.Context, c *Cluster, region string, rr RegionResult, err error, inventory []Ref) RegionResult {
	rr.Err = err
	if !d.opts.DryRun {
		st := d.state
		st.CDN, st.Inventory = d.cfg.Metadata.Name, inventory
		if werr := d.writeState(ctx, c, region, st); werr != nil {
			rr.Err = errors.Join(rr.Err, werr)
		}
	}
	return rr
}

// union returns a followed by the refs of b not in a.
func union(a, b []Ref) []Ref {
	out := slices.Clone(a)
	seen := map[string]bool{}
	for _, r := range a {
		seen[r.key()] = true
	}
	for _, r := range b {
		if !seen[r.key()] {
			seen[r.key()] = true
			out = append(out, r)
		}
	}
	return out
}

// isNamespaceMissing reports whether the API server refused an object
// because its namespace does not exist.
func isNamespaceMissing(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	st := se.Status()
	return st.Reason == metav1.StatusReasonNotFound && st.Details != nil && st.Details.Kind == "namespaces"
}

// summary counts the region's objects by what happened to them; in a
// dry run, by what would.
func summary(rr RegionResult, dryRun bool) string {
	f := "%d created, %d configured, %d unchanged, %d pruned"
	if dryRun {
		f = "%d would be created, %d would change, %d unchanged, %d would be pruned"
	}
	return fmt.Sprintf(f, rr.Count("created"), rr.Count("configured"), rr.Unchanged, rr.Count("pruned"))
}

// reportChanges prints one line per change of the region, in the tense
// of a dry run when it is one.
func (d *deployer) reportChanges(region string, rr RegionResult) {
	verb := map[string]string{"created": "created", "configured": "configured", "pruned": "pruned"}
	if d.opts.DryRun {
		verb = map[string]string{"created": "would create", "configured": "would change", "pruned": "would prune"}
	}
	for _, ch := range rr.Changes {
		d.printf(region, "%s %s", verb[ch.Action], ch.Ref)
	}
}
