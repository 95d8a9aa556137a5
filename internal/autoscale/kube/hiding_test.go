package kube

import (
	"context"
	"slices"
	"testing"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// recorder is a Publisher that keeps what it was given.
type recorder struct{ got publish.Desired }

func (r *recorder) Publish(_ context.Context, d publish.Desired, _ bool) ([]publish.Change, error) {
	r.got = d
	return nil, nil
}

// TestHiddenRegions: a deploy run for one region republishes every region,
// so the external publisher gets only those DNS may name: the subject as
// the step asks, always-on regions, and autoscale regions the controller
// has open (never one warming or draining).
func TestHiddenRegions(t *testing.T) {
	cfg := configtest.Minimal()
	cfg.Spec.Regions.Autoscale = []config.Region{configtest.Region("eu-west-1", "gcp"), configtest.Region("ap-south-1", "aws"), configtest.Region("sa-east-1", "aws")}
	phases := map[string]autoscale.Phase{"us-east-1": autoscale.Open, "eu-west-1": autoscale.Warming, "ap-south-1": autoscale.Open, "sa-east-1": autoscale.Draining}
	a := &Actuator{CDN: cfg, Phase: func(r string) autoscale.Phase { return phases[r] }}
	all := []string{"us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"}
	for _, tt := range []struct {
		subject string
		show    bool
		want    []string
	}{
		{"eu-west-1", true, []string{"us-east-1", "eu-west-1", "ap-south-1"}},
		{"eu-west-1", false, []string{"us-east-1", "ap-south-1"}},
		{"ap-south-1", false, []string{"us-east-1"}},
	} {
		rec := &recorder{}
		h := hiding{next: rec, hidden: a.hidden(tt.subject, tt.show)}
		var targets []publish.Target
		for _, r := range all {
			targets = append(targets, publish.Target{Region: r})
		}
		if _, err := h.Publish(t.Context(), publish.Desired{Names: []publish.Name{{FQDN: "www.cdn.example.com", Targets: targets}}}, false); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tg := range rec.got.Names[0].Targets {
			got = append(got, tg.Region)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s show=%v: published %v, want %v", tt.subject, tt.show, got, tt.want)
		}
	}
}
