// Package configtest builds CDN files for tests. Minimal is the smallest
// valid file as the schema's own types; a test sets the fields it depends on
// and then writes the file as YAML (for the kubecdn binary) or parses it the
// way kubecdn reads it, so each test names only what it is about and a
// schema change breaks the build, not a YAML string.
package configtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Minimal returns the smallest valid CDN: "demo", zone cdn.example.com
// serving www.cdn.example.com from https://origin.example.com, with one
// always-on region, us-east-1 on aws. Every call returns a new value.
func Minimal() *config.CDN {
	return &config.CDN{
		APIVersion: config.APIVersion,
		Kind:       config.Kind,
		Metadata:   config.Metadata{Name: "demo"},
		Spec: config.Spec{
			Zone:      "cdn.example.com",
			Hostnames: []string{"www.cdn.example.com"},
			Origin:    config.Origin{URL: "https://origin.example.com"},
			Regions:   config.Regions{AlwaysOn: []config.Region{Region("us-east-1", "aws")}},
		},
	}
}

// Region is a region on provider whose edges have the given public
// addresses (none: the addresses are not known statically).
func Region(name, provider string, edges ...string) config.Region {
	return config.Region{Name: name, Provider: provider, Edges: edges}
}

// ClusterRegion is a region on provider deployed to the cluster of context
// in the kubeconfig file.
func ClusterRegion(name, provider, kubeconfig, context string) config.Region {
	return config.Region{Name: name, Provider: provider, Cluster: config.Cluster{Kubeconfig: kubeconfig, Context: context}}
}

// Network pins a client network to a place, for the geo policy.
func Network(cidr string, lat, lon float64) config.GeoNetwork {
	return config.GeoNetwork{CIDR: cidr, Location: &config.Location{Lat: lat, Lon: lon}}
}

// Duration is a duration field written as in the file ("30s", "500ms").
func Duration(t testing.TB, s string) config.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return config.Duration(d)
}

// YAML returns c as the file a user writes.
func YAML(t testing.TB, c *config.CDN) []byte {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("writing the cdn file as yaml: %v", err)
	}
	return b
}

// Write writes c as YAML to dir/kubecdn.yaml and returns that path.
func Write(t testing.TB, dir string, c *config.CDN) string {
	t.Helper()
	path := filepath.Join(dir, "kubecdn.yaml")
	if err := os.WriteFile(path, YAML(t, c), 0o644); err != nil {
		t.Fatalf("writing the cdn file: %v", err)
	}
	return path
}

// Parse returns c as kubecdn reads it: written as YAML, then decoded,
// defaulted and validated by config.Parse (relative paths resolve against
// the working directory). An invalid file fails the test.
func Parse(t testing.TB, c *config.CDN) *config.CDN {
	t.Helper()
	got, err := config.Parse(YAML(t, c))
	if err != nil {
		t.Fatalf("the test's cdn file is invalid: %v\n%s", err, YAML(t, c))
	}
	return got
}

// Load writes c to dir/kubecdn.yaml and loads it with config.Load, so
// relative paths resolve against dir. An invalid file fails the test.
func Load(t testing.TB, dir string, c *config.CDN) *config.CDN {
	t.Helper()
	path := Write(t, dir, c)
	got, err := config.Load(path)
	if err != nil {
		t.Fatalf("the test's cdn file is invalid: %v\n%s", err, YAML(t, c))
	}
	return got
}
