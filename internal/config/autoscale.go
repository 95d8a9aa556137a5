package config

import (
	"fmt"
	"time"
)

// validateAutoscale checks spec.autoscale, refusing settings that would
// flap: a band too narrow for noisy demand to stay on one side of, or a
// window shorter than resolvers take to move to a new answer.
func (c *CDN) validateAutoscale(v *validator) {
	a := c.Spec.Autoscale
	if a.ScaleUpAbove < 0 || a.ScaleDownBelow < 0 {
		v.add("spec.autoscale", "rates must not be negative")
	}
	if a.ScaleUpAbove > 0 && a.ScaleDownBelow >= a.ScaleUpAbove {
		v.add("spec.autoscale.scaleDownBelow", "must be below scaleUpAbove")
	} else if a.ScaleUpAbove > 0 && a.ScaleDownBelow > a.ScaleUpAbove/2 {
		// A region opened at scaleUpAbove serves about that load; if the
		// close threshold sits close below it, ordinary swings of demand
		// close and reopen the region. A factor of two keeps them apart.
		v.add("spec.autoscale.scaleDownBelow", "band too narrow: at most half of scaleUpAbove (%g), so demand swinging by less than a factor of two does not open and close a region", float64(a.ScaleUpAbove)/2)
	}
	switch a.Mode {
	case "", ModePrune, ModeWarm, ModeCold:
	default:
		v.add("spec.autoscale.mode", "%q, want %s, %s or %s", a.Mode, ModePrune, ModeWarm, ModeCold)
	}
	if a.Mode == ModeCold {
		c.validateCold(v)
	}
	if a.Retain < 0 {
		v.add("spec.autoscale.retain", "must not be negative")
	}
	if a.MaxOpen < 0 {
		v.add("spec.autoscale.maxOpen", "must not be negative")
	}
	if a.Window < 0 {
		v.add("spec.autoscale.window", "must not be negative")
	}
	if a.Cooldown < 0 {
		v.add("spec.autoscale.cooldown", "must not be negative")
	}
	if len(c.Spec.Regions.Autoscale) == 0 || a.ScaleUpAbove == 0 {
		return
	}
	// Demand moves between regions only as fast as resolvers let cached
	// answers expire: a window shorter than three answer TTLs measures the
	// last decision's tail, not the demand.
	ttl := c.Spec.Routing.TTL.D()
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	if a.Window.D() < 3*ttl {
		v.add("spec.autoscale.window", "%s is shorter than 3 dns TTLs (spec.routing.ttl %s): decisions would see the previous one's tail and flap; use at least %s", a.Window.D(), ttl, 3*ttl)
	}
	if a.Cooldown < a.Window {
		v.add("spec.autoscale.cooldown", "%s is shorter than the window (%s): a region could close on the demand that opened it", a.Cooldown.D(), a.Window.D())
	}
}

// validateCold: cold mode creates and destroys the autoscale regions'
// clusters with kubecdn infra, so the file must ask kubecdn to create them
// (spec.infra) and none may name a cluster of its own, which kubecdn would
// then destroy.
func (c *CDN) validateCold(v *validator) {
	if c.Spec.Infra == nil {
		v.add("spec.autoscale.mode", "cold creates and destroys the autoscale regions' clusters with kubecdn infra: the file needs spec.infra (spec.infra: {} for the defaults)")
		return
	}
	for i, r := range c.Spec.Regions.Autoscale {
		if !c.InfraManaged(r) {
			v.add(fmt.Sprintf("spec.regions.autoscale[%d].cluster", i), "region %s names its own cluster, which cold mode would destroy: leave cluster: empty so kubecdn infra creates it, or use mode prune or warm", r.Name)
		}
	}
}

// DefaultRetain is how long cold mode keeps a closed region's cluster
// before destroying it (spec.autoscale.retain).
const DefaultRetain = time.Hour

// RetainOr is spec.autoscale.retain, or DefaultRetain when unset.
func (a Autoscale) RetainOr() time.Duration {
	if a.Retain == 0 {
		return DefaultRetain
	}
	return a.Retain.D()
}

// AutoscaleMode is what closing an autoscale region does on Kubernetes.
type AutoscaleMode string

// The modes of spec.autoscale.mode.
const (
	ModePrune AutoscaleMode = "prune" // delete the region's objects, keep the cluster (default)
	ModeWarm  AutoscaleMode = "warm"  // scale the edges to zero, keep the objects
	ModeCold  AutoscaleMode = "cold"  // destroy the cluster (kubecdn infra)
)
