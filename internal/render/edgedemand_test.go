package render

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubecdn/kubecdn/internal/edge"
)

// TestRenderedEdgeCountsDemand: each region's edge.yaml names every region
// of the file, with its location, and the file's geo networks, so the
// edges label demand with the client's nearest region as the dns does.
func TestRenderedEdgeCountsDemand(t *testing.T) {
	cfg := loadCDN(t)
	out := mustRender(t, cfg, Options{})
	for _, ref := range cfg.AllRegions() {
		cm := find[*corev1.ConfigMap](t, out[ref.Name], ConfigName)
		s, err := edge.ParseSettings([]byte(cm.Data["edge.yaml"]))
		if err != nil {
			t.Fatalf("%s: %v", ref.Name, err)
		}
		var names []string
		for _, r := range s.DemandRegions {
			names = append(names, r.Name)
			if r.Location == nil {
				t.Errorf("%s: region %s without its location", ref.Name, r.Name)
			}
		}
		var want []string
		for _, r := range cfg.AllRegions() {
			want = append(want, r.Name)
		}
		if !reflect.DeepEqual(names, want) {
			t.Errorf("%s: demand regions %v, want the file's %v", ref.Name, names, want)
		}
		if len(s.Geo.Networks) == 0 || !reflect.DeepEqual(s.Geo.Networks, cfg.Spec.Routing.Geo.Networks) {
			t.Errorf("%s: geo networks %+v, want the file's %+v", ref.Name, s.Geo.Networks, cfg.Spec.Routing.Geo.Networks)
		}
	}
}
