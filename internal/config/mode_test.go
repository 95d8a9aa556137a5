package config

import (
	"strings"
	"testing"
)

// TestAutoscaleMode: spec.autoscale.mode is optional (prune) and one of
// prune, warm, cold; anything else names the field.
func TestAutoscaleMode(t *testing.T) {
	const region = "    autoscale:\n      - {name: eu-west-1, provider: gcp}\n"
	for _, tt := range []struct{ mode, want string }{
		{"", ""}, {"prune", ""}, {"warm", ""},
		{"cold", "the file needs spec.infra"}, // accepted with it: TestColdModeNeedsClustersKubecdnCreates
		{"hot", `spec.autoscale.mode: "hot", want prune, warm or cold`},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			as := "{scaleUpAbove: 50rps, scaleDownBelow: 5rps, window: 2m, cooldown: 10m"
			if tt.mode != "" {
				as += ", mode: " + tt.mode
			}
			cfg, err := Parse([]byte(minimal + region + "  autoscale: " + as + "}\n"))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			case tt.want == "" && string(cfg.Spec.Autoscale.Mode) != tt.mode:
				t.Errorf("mode = %q, want %q", cfg.Spec.Autoscale.Mode, tt.mode)
			}
		})
	}
}
