package infra

import (
	"context"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/config"
)

func TestRegionsAndRefusals(t *testing.T) {
	cfg, err := config.Load("testdata/clouds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Regions(cfg, nil)
	if err != nil || len(rs) != 4 || rs[0].Name != "us-east-1" || rs[3].Name != "ap-southeast-1" {
		t.Fatalf("Regions = %v, %v", rs, err)
	}
	if rs, err = Regions(cfg, []string{"westeurope"}); err != nil || len(rs) != 1 {
		t.Errorf("Regions(westeurope) = %v, %v", rs, err)
	}
	for _, tt := range []struct {
		names []string
		o     Options
		want  string
	}{
		{[]string{"mars-1"}, Options{Action: Plan, Tofu: "tofu"}, `region "mars-1" is not in the file`},
		{[]string{"onprem-paris"}, Options{Action: Plan, Tofu: "tofu"}, `region "onprem-paris" has its own cluster: (spec.regions.autoscale[1])`},
		{nil, Options{Action: Destroy, Tofu: "tofu"}, "confirm with --yes"},
		{nil, Options{Action: "import", Tofu: "tofu"}, `unknown action "import"`},
	} {
		tt.o.Regions = tt.names
		if _, err := Run(context.Background(), cfg, tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Run(%v, %s) = %v, want %q", tt.names, tt.o.Action, err, tt.want)
		}
	}
	cfg.Spec.Infra = nil
	if _, err := Regions(cfg, nil); err == nil || !strings.Contains(err.Error(), "no spec.infra") {
		t.Errorf("without spec.infra: %v", err)
	}
}
