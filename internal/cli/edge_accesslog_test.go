package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEdgeAccessLogFlags: the access log is on (stdout, every request) by
// default; flags and the config file set it, flags winning; a sample of 0
// means errors only.
func TestEdgeAccessLogFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(file, []byte("origin: http://127.0.0.1:9000\nregion: eu-1\naccessLog: /var/log/access.log\naccessLogSample: 0.25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args       []string
		dest       string
		sample     float64
		region     string
		wantErrSub string
	}{
		{args: nil, dest: "-", sample: 1},
		{args: []string{"--access-log", "off"}, dest: "off", sample: 1},
		{args: []string{"--access-log-sample", "0.1"}, dest: "-", sample: 0.1},
		{args: []string{"--access-log-sample", "0"}, dest: "-", sample: -1},
		{args: []string{"--access-log-sample", "1.5"}, wantErrSub: "accessLogSample"},
		{args: []string{"--access-log-sample", "-2"}, wantErrSub: "accessLogSample"},
		{args: []string{"--config", file}, dest: "/var/log/access.log", sample: 0.25, region: "eu-1"},
		{args: []string{"--config", file, "--access-log", "-", "--access-log-sample", "1"}, dest: "-", sample: 1, region: "eu-1"},
	} {
		args := c.args
		if len(args) == 0 || args[0] != "--config" {
			args = append([]string{"--origin", "http://127.0.0.1:9000"}, args...)
		}
		_, cfg, err := edgeConfig(args, func(string) string { return "" })
		if c.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Errorf("%v: error %v, want one naming %s", c.args, err, c.wantErrSub)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if cfg.AccessLog != c.dest || cfg.AccessLogSample != c.sample || cfg.Region != c.region {
			t.Errorf("%v: access log %q sample %v region %q, want %q %v %q", c.args, cfg.AccessLog, cfg.AccessLogSample, cfg.Region, c.dest, c.sample, c.region)
		}
	}
}
