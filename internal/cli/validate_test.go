package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateLoadsApps(t *testing.T) {
	good, err := filepath.Abs("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := runValidate(context.Background(), []string{"-f", good}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "1 apps") {
		t.Fatalf("example file: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}

	// An override naming an object the manifests do not have: the file
	// parses, the apps do not.
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := strings.Replace(string(b), "name: rtmp, patch", "name: rtmpx, patch", 1)
	bad = strings.Replace(bad, "manifests: apps/video", "manifests: "+filepath.Join(filepath.Dir(good), "apps/video"), 1)
	path := filepath.Join(dir, "kubecdn.yaml")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	code := runValidate(context.Background(), []string{"-f", path}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "spec.apps[0]") || !strings.Contains(stderr.String(), "rtmpx") {
		t.Errorf("bad override: exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
}

// TestValidateLocalInfraRegions: a region kubecdn infra makes on this
// machine is refused by validate for what its module refuses at plan (a
// Kubernetes version the local binaries are not, too many nodes).
func TestValidateLocalInfraRegions(t *testing.T) {
	for _, tc := range []struct {
		name, regions, want string
	}{
		{"ok", "{name: a, provider: local, infra: {kubernetesVersion: \"1.37\", nodePools: [{name: edge, min: 1, max: 3, desired: 3}]}}", ""},
		{"version", "{name: a, provider: local, infra: {kubernetesVersion: \"1.33\"}}", "spec.regions.alwaysOn[0]: region a: infra.kubernetesVersion: \"1.33\""},
		{"nodes", "{name: a, provider: local, infra: {nodePools: [{name: edge, min: 101, max: 101}]}}", "a local region plays at most 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kubecdn.yaml")
			file := strings.Replace(infraTestFile, infraTestFile[strings.Index(infraTestFile, "      - {name: from-file"):], "      - "+tc.regions+"\n", 1)
			if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := runValidate(context.Background(), []string{"-f", path}, &stdout, &stderr)
			if tc.want == "" && code != 0 || tc.want != "" && (code != 1 || !strings.Contains(stderr.String(), tc.want)) {
				t.Errorf("exit %d, want the error %q\nstdout: %s\nstderr: %s", code, tc.want, stdout.String(), stderr.String())
			}
		})
	}
}
