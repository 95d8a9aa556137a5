package deploy

import (
	"errors"
	"fmt"
	"time"

	"github.com/kubecdn/kubecdn/internal/publish"
)

// Change is one object created, configured (changed), pruned or deleted.
type Change struct {
	Action string // "created", "configured", "pruned", "deleted"
	Ref    Ref
}

// RegionResult is what happened in one region.
type RegionResult struct {
	Region string
	// Removed is set for a region removed from the file (or closed).
	Removed bool
	Changes []Change
	// Unchanged counts objects applied that did not change.
	Unchanged int
	// Addresses read from the load balancers (when the region got that far).
	Addresses *RegionState
	// EdgesDown is set when the rollout did not finish and not one of the
	// region's edges was ready: the region is left out of DNS (its app
	// endpoints stay) until a later deploy finds an edge ready.
	EdgesDown bool
	Took      time.Duration
	Err       error
}

// Count returns how many changes have the action.
func (r RegionResult) Count(action string) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == action {
			n++
		}
	}
	return n
}

// Result is the outcome of a deploy.
type Result struct {
	Regions []RegionResult
	// DNS lists what the external publisher changed (or would change);
	// empty with provider kubecdn, whose changes are the regions'
	// kubecdn-config ConfigMaps (reported in the output).
	DNS []publish.Change
	// DNSErr is why DNS was not fully published (then removed regions are
	// not torn down).
	DNSErr error
	// HopErr is what about the regions' hop key Secrets needs a person:
	// they disagree (then none is created anywhere), or one holds no
	// usable key. Deploy never changes a hop Secret that exists.
	HopErr error
}

// Err joins every region's error, the DNS error and the hop key error; nil
// when all went well.
func (r Result) Err() error {
	var errs []error
	for _, rr := range r.Regions {
		if rr.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rr.Region, rr.Err))
		}
	}
	if r.DNSErr != nil {
		errs = append(errs, fmt.Errorf("dns: %w", r.DNSErr))
	}
	if r.HopErr != nil {
		errs = append(errs, fmt.Errorf("hop key: %w", r.HopErr))
	}
	return errors.Join(errs...)
}

// Failed counts the regions that failed.
func (r Result) Failed() int {
	n := 0
	for _, rr := range r.Regions {
		if rr.Err != nil {
			n++
		}
	}
	return n
}
