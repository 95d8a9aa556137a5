package deploy

import (
	"slices"
	"sort"

	"github.com/kubecdn/kubecdn/internal/config"
)

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
