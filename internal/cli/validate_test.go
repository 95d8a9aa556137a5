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
