package autoscale

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnknownRegion is returned for a name that is not an autoscale region
// the controller knows.
var ErrUnknownRegion = errors.New("not an autoscale region")

// Pin pins region to p (Open or Closed) until released with p "": the
// next decisions drive it there whatever the demand (`kubecdn region
// open|close|release`). The pin is stored with the state.
func (c *Controller) Pin(ctx context.Context, region string, p Phase) error {
	if p != "" && p != Open && p != Closed {
		return fmt.Errorf("pin %s: %q is not open, closed or none", region, p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Regions {
		r := &c.st.Regions[i]
		if r.Name != region {
			continue
		}
		if r.AlwaysOn {
			return fmt.Errorf("%w: %q is always on", ErrUnknownRegion, region)
		}
		if r.Pin != p {
			r.Pin = p
			what := "released"
			if p != "" {
				what = "pinned " + string(p)
			}
			c.Log.Info("autoscale: region "+what+" by an operator", "region", region)
			c.saveLocked(ctx)
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownRegion, region)
}

// SetPaused pauses decisions (steps under way still finish) or resumes
// them. It is stored with the state.
func (c *Controller) SetPaused(ctx context.Context, paused bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Paused == paused {
		return
	}
	c.st.Paused = paused
	c.Log.Info("autoscale: decisions paused by an operator", "paused", paused)
	c.saveLocked(ctx)
}
