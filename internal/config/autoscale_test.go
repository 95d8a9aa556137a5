package config

import (
	"strings"
	"testing"
	"time"
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

// TestColdModeNeedsClustersKubecdnCreates: cold mode destroys the
// autoscale regions' clusters, so it is refused unless kubecdn infra
// creates every one of them.
func TestColdModeNeedsClustersKubecdnCreates(t *testing.T) {
	const sound = "  autoscale: {scaleUpAbove: 50rps, scaleDownBelow: 5rps, window: 2m, cooldown: 10m, mode: cold, retain: 30m}\n"
	tests := []struct {
		name, rest string
		want       string // "" for accepted
	}{
		{"created by kubecdn infra", "    autoscale:\n      - {name: eu-west-1, provider: aws}\n  infra: {}\n" + sound, ""},
		{"no spec.infra", "    autoscale:\n      - {name: eu-west-1, provider: gcp}\n" + sound, "spec.autoscale.mode: cold creates and destroys the autoscale regions' clusters with kubecdn infra: the file needs spec.infra"},
		{"a cluster of its own", "    autoscale:\n      - {name: eu-west-1, provider: aws, cluster: {kubeconfig: /k, context: c}}\n  infra: {}\n" + sound,
			"spec.regions.autoscale[0].cluster: region eu-west-1 names its own cluster, which cold mode would destroy"},
		{"negative retain", "    autoscale:\n      - {name: eu-west-1, provider: aws}\n  infra: {}\n" + strings.Replace(sound, "30m", "-1m", 1), "spec.autoscale.retain: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(minimal + tt.rest))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			case tt.want == "" && c.Spec.Autoscale.RetainOr() != 30*time.Minute:
				t.Fatalf("retain = %v", c.Spec.Autoscale.RetainOr())
			}
		})
	}
}
