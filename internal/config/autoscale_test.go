package config

import (
	"strings"
	"testing"
)

func TestAutoscaleSettingsThatWouldFlapAreRefused(t *testing.T) {
	const region = "    autoscale:\n      - {name: eu-west-1, provider: gcp}\n"
	tests := []struct {
		name, autoscale string
		want            string // "" for accepted
	}{
		{"sound settings", "{scaleUpAbove: 50rps, scaleDownBelow: 5rps, window: 2m, cooldown: 10m, maxOpen: 1}", ""},
		{"band too narrow", "{scaleUpAbove: 50rps, scaleDownBelow: 40rps, window: 2m, cooldown: 10m}", "spec.autoscale.scaleDownBelow: band too narrow: at most half of scaleUpAbove (25)"},
		{"inverted band", "{scaleUpAbove: 5rps, scaleDownBelow: 40rps, window: 2m, cooldown: 10m}", "spec.autoscale.scaleDownBelow: must be below scaleUpAbove"},
		{"window under 3 TTLs", "{scaleUpAbove: 50rps, scaleDownBelow: 5rps, window: 60s, cooldown: 10m}", "spec.autoscale.window: 1m0s is shorter than 3 dns TTLs (spec.routing.ttl 30s)"},
		{"cooldown under the window", "{scaleUpAbove: 50rps, scaleDownBelow: 5rps, window: 5m, cooldown: 1m}", "spec.autoscale.cooldown: 1m0s is shorter than the window"},
		{"negative maxOpen", "{scaleUpAbove: 50rps, scaleDownBelow: 5rps, window: 2m, cooldown: 10m, maxOpen: -1}", "spec.autoscale.maxOpen: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + region + "  autoscale: " + tt.autoscale + "\n"))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused sound settings: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
