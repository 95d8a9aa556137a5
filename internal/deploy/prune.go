package deploy

import (
	"context"
	"errors"
)

// prune deletes what an earlier deploy applied (prev, the region's
// inventory) and the file no longer names (not in desired), each deletion
// a change in rr, and saves the inventory: desired and what could not be
// deleted, so a later run tries again. Failures join rr's error.
func (d *deployer) prune(ctx context.Context, c *Cluster, region string, prev, desired []Ref, rr *RegionResult) {
	var kept []Ref
	for _, p := range Prune(prev, desired) {
		if err := c.Delete(ctx, p, d.opts.DryRun); err != nil {
			kept = append(kept, p)
			rr.Err = errors.Join(rr.Err, err)
			continue
		}
		rr.Changes = append(rr.Changes, Change{"pruned", p})
	}
	if !d.opts.DryRun {
		st := d.state
		st.CDN, st.Inventory = d.cfg.Metadata.Name, append(desired, kept...)
		if err := d.writeState(ctx, c, region, st); err != nil {
			rr.Err = errors.Join(rr.Err, err)
		}
	}
}
