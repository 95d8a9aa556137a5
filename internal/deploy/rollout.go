package deploy

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// edgeWorkload is the StatefulSet of the edges render makes.
const edgeWorkload = "kubecdn-edge"

var statefulSetGVK = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}

// waitRollouts polls every workload until its rollout is done, printing a
// line whenever one's progress changes.
func (d *deployer) waitRollouts(ctx context.Context, c *Cluster, region string, objs []*unstructured.Unstructured) error {
	last := map[string]string{}
	for {
		pending := 0
		var worst string
		for _, o := range objs {
			if !IsWorkload(o.GetKind()) {
				continue
			}
			live, err := c.Get(ctx, o, "default")
			if err != nil {
				return err
			}
			if live == nil {
				return fmt.Errorf("%s disappeared during the rollout", RefOf(o))
			}
			ro := RolloutOf(live)
			key := RefOf(o).String()
			if s := ro.String(); last[key] != s {
				last[key] = s
				d.printf(region, "%s %s", key, s)
			}
			if !ro.Done {
				pending++
				worst = key + " " + ro.String()
			}
		}
		if pending == 0 {
			return nil
		}
		if err := d.opts.Sleep(ctx, d.opts.Poll); err != nil {
			return fmt.Errorf("rollout not done after %s: %s", d.opts.Timeout, worst)
		}
	}
}

// edgesDown reports whether the region has no edge ready (its StatefulSet
// gone, or not one replica ready), for a region whose rollout did not
// finish: such a region must not stay in DNS on its last known addresses.
// A region that cannot be read is not known to be down.
func (d *deployer) edgesDown(ctx context.Context, c *Cluster, region string) bool {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(statefulSetGVK)
	u.SetNamespace(d.opts.Render.Namespace)
	u.SetName(edgeWorkload)
	live, err := c.Get(ctx, u, "")
	if err != nil {
		return false
	}
	if live != nil && RolloutOf(live).Ready > 0 {
		return false
	}
	d.printf(region, "no edge is ready: out of DNS until one is")
	return true
}
