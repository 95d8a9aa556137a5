package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/render"
)

// TestRenderedEdgeStarts feeds the rendered edge.yaml and the StatefulSet's
// args (with $(POD_NAME) expanded as the kubelet does) to the edge's own
// flag handling: what render writes must be what `kubecdn edge` accepts.
func TestRenderedEdgeStarts(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := runRender(context.Background(), []string{"-f", "../config/testdata/kubecdn.yaml", "-o", dir, "--image", "example.com/kubecdn:t"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("render exit %d: %s", code, stderr.String())
	}
	rdir := filepath.Join(dir, "us-west-2")
	var cm corev1.ConfigMap
	readYAML(t, filepath.Join(rdir, "10-configmap-kubecdn-config.yaml"), &cm)
	var ss appsv1.StatefulSet
	readYAML(t, filepath.Join(rdir, "30-statefulset-kubecdn-edge.yaml"), &ss)

	etc := t.TempDir()
	if err := os.WriteFile(filepath.Join(etc, "edge.yaml"), []byte(cm.Data["edge.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range ss.Spec.Template.Spec.Containers[0].Args[1:] { // drop the subcommand
		a = strings.ReplaceAll(a, "$(POD_NAME)", "kubecdn-edge-1")
		args = append(args, strings.ReplaceAll(a, "/etc/kubecdn", etc))
	}
	if err := edge.NewFlagSet("kubecdn edge", &stderr).Parse(args); err != nil {
		t.Fatalf("flags %v: %v", args, err)
	}
	set, cfg, err := edgeConfig(args, func(k string) string {
		switch k {
		case "KUBECDN_ADMIN_TOKEN":
			return "secret"
		case "KUBECDN_HOP_KEY":
			return "hop-key-of-the-whole-cdn"
		}
		return ""
	})
	if err != nil {
		t.Fatalf("the edge refuses its rendered configuration: %v", err)
	}
	if cfg.Listen != ":8080" || cfg.Admin != ":9090" || cfg.Origin != "https://origin.example.com" ||
		cfg.Parent != "http://us-east-1.edges.cdn.example.com" || cfg.Self != "http://kubecdn-edge-1.kubecdn-edge:8080" ||
		cfg.MemoryBytes != 512<<20 || cfg.DiskBytes != 50<<30 || cfg.CacheDir != "/var/cache/kubecdn" || cfg.AdminToken != "secret" ||
		len(cfg.HopKeys) != 1 || cfg.HopKeys[0] != "hop-key-of-the-whole-cdn" {
		t.Errorf("edge config %+v", cfg)
	}
	if !slices.Contains(cfg.Peers, cfg.Self) || len(cfg.Peers) != 2 {
		t.Errorf("peers %v do not name self %s", cfg.Peers, cfg.Self)
	}
	if set.Region != "us-west-2" || !slices.Equal(set.RTTReport, []string{"http://kubecdn-dns-admin:9053/v1/rtt"}) {
		t.Errorf("region %q rtt %v", set.Region, set.RTTReport)
	}
}

func TestRenderFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"no output", []string{"-f", "../config/testdata/kubecdn.yaml"}, 2, "", "-o DIR is required"},
		{"bad replicas", []string{"-f", "../config/testdata/kubecdn.yaml", "-o", "-", "--edge-replicas", "0"}, 2, "", "--edge-replicas: 0"},
		{"missing file", []string{"-f", "nope.yaml", "-o", "-"}, 1, "", "nope.yaml"},
		{"unknown region", []string{"-f", "../config/testdata/kubecdn.yaml", "-o", "-", "--region", "mars-1"}, 1, "", `"mars-1" is not a region`},
		{"stdout one region", []string{"-f", "../config/testdata/kubecdn.yaml", "-o", "-", "--region", "eu-west-1", "--namespace", "cdn", "--edge-replicas", "12"},
			0, "# region: eu-west-1\napiVersion: v1\nkind: Namespace\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runRender(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stdout.String(), tt.wantOut) || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("exit %d (want %d)\nstdout: %.300s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if code == 0 && strings.Contains(stdout.String(), "us-east-1.edges") {
				t.Error("--region did not restrict the output")
			}
		})
	}
}

func TestDefaultImage(t *testing.T) {
	for v, want := range map[string]string{
		"dev":          render.DefaultImage,
		"":             render.DefaultImage,
		"v1.2.3":       "ghcr.io/kubecdn/kubecdn:v1.2.3",
		"v1.2.3-rc.1":  "ghcr.io/kubecdn/kubecdn:v1.2.3-rc.1",
		"v1.2.3-dirty": "ghcr.io/kubecdn/kubecdn:v1.2.3-dirty",
		"1.2":          render.DefaultImage,
	} {
		if got := defaultImage(v); got != want {
			t.Errorf("defaultImage(%q) = %s, want %s", v, got, want)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestRenderMonitoringAndApps: --monitoring alone means a Prometheus per
// region, --monitoring=operator the operator's objects, anything else is a
// usage error; the file's apps are written in the regions they run in.
func TestRenderMonitoringAndApps(t *testing.T) {
	for _, tc := range []struct {
		flag string
		code int
		want []string // files of us-east-1
	}{
		{"--monitoring", 0, []string{"30-statefulset-kubecdn-prometheus.yaml", "30-app-video-deployment-video-rtmp.yaml", "00-namespaces.yaml"}},
		{"--monitoring=operator", 0, []string{"71-prometheusrule-kubecdn.yaml", "70-servicemonitor-kubecdn-edge.yaml", "20-app-video-service-video-rtmp.yaml"}},
		{"--monitoring=grafana", 2, nil},
	} {
		dir := t.TempDir()
		var stdout, stderr bytes.Buffer
		code := runRender(context.Background(), []string{"-f", "../config/testdata/kubecdn.yaml", "-o", dir, tc.flag}, &stdout, &stderr)
		if code != tc.code {
			t.Fatalf("%s: exit %d, want %d: %s", tc.flag, code, tc.code, stderr.String())
		}
		for _, f := range tc.want {
			if _, err := os.Stat(filepath.Join(dir, "us-east-1", f)); err != nil {
				t.Errorf("%s: %v", tc.flag, err)
			}
		}
		if tc.code == 0 {
			if _, err := os.Stat(filepath.Join(dir, "eu-west-1", "30-app-video-deployment-video-rtmp.yaml")); err == nil {
				t.Errorf("%s: the app is written in eu-west-1, where it does not run", tc.flag)
			}
		}
	}
}
