package deploy

import (
	"context"
	"slices"
	"sort"

	"github.com/kubecdn/kubecdn/internal/config"
)

// connect reaches the always-on regions (step 1), keeps their clusters and
// adopts the freshest state any of them holds; a region that cannot be
// reached or read goes to fail and is reported.
func (d *deployer) connect(ctx context.Context, fail func(region string, err error)) {
	always := d.cfg.Spec.Regions.AlwaysOn
	states := make([]State, len(always))
	errs := make([]error, len(always))
	d.parallel(ctx, len(always), func(i int) {
		c, err := d.dial(ctx, always[i].Cluster)
		if err != nil {
			errs[i] = err
			return
		}
		st, _, err := c.readState(ctx, d.opts.Render.Namespace)
		if err != nil {
			errs[i] = err
			return
		}
		d.mu.Lock()
		d.clusters[always[i].Name] = c
		d.mu.Unlock()
		states[i] = st
	})
	for i, err := range errs {
		if err != nil {
			fail(always[i].Name, err)
			d.printf(always[i].Name, "failed: %v", err)
		}
		if states[i].Updated.After(d.state.Updated) {
			d.state = states[i]
		}
	}
	if d.state.Regions == nil {
		d.state.Regions = map[string]RegionState{}
	}
}

// dial reaches a region's cluster and checks that a Kubernetes API server
// answers there (Cluster.Check): a kubeconfig that points at something
// else, or at a server that never answers, is one clear error before
// anything is read or applied.
func (d *deployer) dial(ctx context.Context, cl config.Cluster) (*Cluster, error) {
	c, err := d.opts.Connect(cl)
	if err != nil {
		return nil, err
	}
	if err := c.Check(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// cluster returns region r's cluster, dialling it if no earlier step has.
func (d *deployer) cluster(ctx context.Context, r config.RegionRef) (*Cluster, error) {
	d.mu.Lock()
	c := d.clusters[r.Name]
	d.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := d.dial(ctx, r.Cluster)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.clusters[r.Name] = c
	d.mu.Unlock()
	return c, nil
}

// activeRegions returns the regions to deploy (always-on, then open
// autoscale ones, in file order) and the regions to remove (in the state
// but no longer in the file, or closed), sorted.
func (d *deployer) activeRegions() ([]config.RegionRef, []string) {
	var active []config.RegionRef
	inFile := map[string]bool{}
	for _, r := range d.cfg.AllRegions() {
		inFile[r.Name] = true
		switch {
		case !r.Autoscale:
			active = append(active, r)
		case slices.Contains(d.opts.Close, r.Name):
		case slices.Contains(d.opts.Open, r.Name) || d.state.Regions[r.Name].Open:
			active = append(active, r)
		}
	}
	var removed []string
	for name := range d.state.Regions {
		if !inFile[name] || slices.Contains(d.opts.Close, name) {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	return active, removed
}
