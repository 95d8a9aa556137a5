package render

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/edge"
)

// TestRenderedEdgeSettingsRoundTrip: the edge.yaml render writes, read by
// the edge's own loader, gives back the settings render built for the
// region, with and without the file's optional cache sizes.
func TestRenderedEdgeSettingsRoundTrip(t *testing.T) {
	noDisk := parseCDN(t, func(s string) string {
		return strings.Replace(s, "    disk: {path: /var/cache/kubecdn, size: 50GiB}\n", "", 1)
	})
	noMemory := parseCDN(t, func(s string) string { return strings.Replace(s, "    memory: 512MiB\n", "", 1) })
	for _, tt := range []struct {
		name string
		cfg  *config.CDN
		opts Options
	}{
		{"file", loadCDN(t), Options{}},
		{"no disk tier", noDisk, Options{}},
		{"default memory", noMemory, Options{ParentURL: "https://{region}-{namespace}.shield.example.net"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := mustRender(t, tt.cfg, tt.opts)
			opts := tt.opts.withDefaults()
			for _, ref := range tt.cfg.AllRegions() {
				want := regionRender{cfg: tt.cfg, opts: opts, region: ref}.edgeSettings()
				cm := find[*corev1.ConfigMap](t, out[ref.Name], ConfigName)
				got, err := edge.ParseSettings([]byte(cm.Data["edge.yaml"]))
				if err != nil {
					t.Fatalf("%s: the edge refuses its edge.yaml: %v", ref.Name, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: edge.yaml\n%s\nreads as %+v\nwant %+v", ref.Name, cm.Data["edge.yaml"], got, want)
				}
				if _, err := got.Config(); err != nil {
					t.Errorf("%s: %v", ref.Name, err)
				}
			}
		})
	}
}
