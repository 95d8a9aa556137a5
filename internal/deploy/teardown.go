package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
)

// teardown removes the regions removed from the file (step 5), each into
// results, and drops from regions (the next state's) those torn down. When
// DNS was not fully published (dnsErr) none is touched: it may still be in
// DNS.
func (d *deployer) teardown(ctx context.Context, removed []string, dnsErr error, results map[string]*RegionResult, regions map[string]RegionState) {
	if len(removed) > 0 && dnsErr != nil {
		for _, name := range removed {
			results[name] = &RegionResult{Region: name, Removed: true, Err: fmt.Errorf("not torn down: it may still be in DNS (%v)", dnsErr)}
		}
		return
	}
	for _, name := range removed {
		rr := d.removeRegion(ctx, name, regions[name])
		results[name] = &rr
		if rr.Err == nil && !d.opts.DryRun {
			delete(regions, name)
		}
	}
}

// removeRegion tears down a region that left the file (or was closed):
// DNS no longer names it; once Drain has passed since then, every object in
// its inventory is deleted, the namespace last.
func (d *deployer) removeRegion(ctx context.Context, name string, st RegionState) (rr RegionResult) {
	rr = RegionResult{Region: name, Removed: true}
	start := d.opts.Now()
	defer func() { rr.Took = d.opts.Now().Sub(start) }()
	if d.opts.DryRun {
		d.printf(name, "dry run: would leave DNS, then be torn down %s later", d.opts.Drain)
		return rr
	}
	c := d.clusters[name]
	if c == nil {
		var err error
		if c, err = d.dial(ctx, config.Cluster{Kubeconfig: st.Kubeconfig, Context: st.Context}); err != nil {
			rr.Err = fmt.Errorf("removed from the file, but its cluster cannot be reached to tear it down: %w", err)
			d.printf(name, "failed: %v", rr.Err)
			return rr
		}
	}
	if wait := st.LeftDNS.Add(d.opts.Drain).Sub(d.opts.Now()); wait > 0 {
		d.printf(name, "left DNS; tearing down in %s, when cached answers have expired", wait.Round(time.Second))
		if err := d.opts.Sleep(ctx, wait); err != nil {
			rr.Err = fmt.Errorf("interrupted before teardown: %w", err)
			return rr
		}
	}
	ns := d.opts.Render.Namespace
	cur, _, err := c.readState(ctx, ns)
	if err != nil {
		rr.Err = err
		return rr
	}
	for _, p := range Prune(cur.Inventory, nil) {
		if err := c.Delete(ctx, p, false); err != nil {
			rr.Err = errors.Join(rr.Err, err)
			continue
		}
		rr.Changes = append(rr.Changes, Change{"deleted", p})
	}
	if rr.Err == nil {
		state := Ref{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: StateName}
		if err := c.Delete(ctx, state, false); err != nil {
			rr.Err = err
		}
	}
	if rr.Err != nil {
		d.printf(name, "teardown failed: %v", rr.Err)
	} else {
		d.printf(name, "torn down: %d objects deleted", len(rr.Changes))
	}
	return rr
}
