package autoscale

import (
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
)

// The controller's limits that the file does not set.
const (
	// DefaultBackoff is the wait after a first failed action.
	DefaultBackoff = 30 * time.Second
	// DefaultMaxBackoff caps the doubling backoff.
	DefaultMaxBackoff = 10 * time.Minute
)

// SettingsOf reads spec.autoscale. every is how often demand is sampled:
// three missed samples in a row make the autoscaler stop trusting what it
// sees.
func SettingsOf(c *config.CDN, every time.Duration) Settings {
	a := c.Spec.Autoscale
	return Settings{
		ScaleUpAbove:   float64(a.ScaleUpAbove),
		ScaleDownBelow: float64(a.ScaleDownBelow),
		Window:         a.Window.D(),
		Cooldown:       a.Cooldown.D(),
		MaxOpen:        a.MaxOpen,
		MaxGap:         3 * every,
		Backoff:        DefaultBackoff,
		MaxBackoff:     DefaultMaxBackoff,
	}
}

// RegionsOf lists the file's regions as closed autoscale regions and open
// always-on ones: where a fresh autoscaler starts.
func RegionsOf(c *config.CDN) []Region {
	var out []Region
	for _, r := range c.AllRegions() {
		if r.Autoscale {
			out = append(out, Region{Name: r.Name, Phase: Closed})
		} else {
			out = append(out, Region{Name: r.Name, AlwaysOn: true, Phase: Open})
		}
	}
	return out
}
