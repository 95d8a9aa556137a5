package infra

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMissingCLIConfigDropped: a TF_CLI_CONFIG_FILE naming no file (as on
// this project's CI machines) would put tofu's warning ahead of its
// version; the driver runs tofu without it, and without the variables
// tfexec sets itself. One that names a file is left alone.
func TestMissingCLIConfigDropped(t *testing.T) {
	t.Setenv("TF_CLI_CONFIG_FILE", filepath.Join(t.TempDir(), "missing.tfrc"))
	env, ok := withoutMissingCLIConfig([]string{"TF_CLI_CONFIG_FILE=x", "AWS_PROFILE=p", "TF_LOG=trace", "TF_VAR_a=1"})
	if !ok {
		t.Fatal("a missing CLI config file was kept")
	}
	if _, has := env["TF_CLI_CONFIG_FILE"]; has || env["AWS_PROFILE"] != "p" || env["TF_LOG"] != "" || env["TF_VAR_a"] != "" {
		t.Errorf("env = %v", env)
	}
	f := filepath.Join(t.TempDir(), "tofurc")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TF_CLI_CONFIG_FILE", f)
	if _, ok := withoutMissingCLIConfig(os.Environ()); ok {
		t.Error("an existing CLI config file was dropped")
	}
}
