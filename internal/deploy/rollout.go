package deploy

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

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
