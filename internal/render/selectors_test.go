package render

import (
	"maps"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestEdgeSelector: the selector and container name the operator tools
// use are those of the rendered edges, in every region.
func TestEdgeSelector(t *testing.T) {
	cfg := loadCDN(t)
	for region, objs := range mustRender(t, cfg, Options{Image: testImage}) {
		ss := find[*appsv1.StatefulSet](t, objs, edgeName)
		if want := EdgeSelector(cfg.Metadata.Name); !maps.Equal(ss.Spec.Selector.MatchLabels, want) {
			t.Errorf("%s: StatefulSet selects %v, EdgeSelector says %v", region, ss.Spec.Selector.MatchLabels, want)
		}
		for k, v := range EdgeSelector(cfg.Metadata.Name) {
			if ss.Spec.Template.Labels[k] != v {
				t.Errorf("%s: pod template labels %v lack %s=%s", region, ss.Spec.Template.Labels, k, v)
			}
		}
		if c := ss.Spec.Template.Spec.Containers[0].Name; c != EdgeContainer {
			t.Errorf("%s: edge container %q, EdgeContainer %q", region, c, EdgeContainer)
		}
	}
}
