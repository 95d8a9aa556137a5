package edge

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/units"
)

// writeFile writes content to a new file in t's temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestLoadSettingsPrecedence: each layer overrides the one before it:
// the defaults, the --config file, the environment, the flags given.
func TestLoadSettingsPrecedence(t *testing.T) {
	file := writeFile(t, "edge.yaml", `
origin: http://127.0.0.1:9000
memory: 512MiB
hostnames: [a.example, b.example]
staleDeadline: 5s
hopKeyFile: `+writeFile(t, "file-hop", "key-named-by-the-file-0123\n")+`
`)
	flagHop := writeFile(t, "flag-hop", "key-named-by-a-flag-012345\n")
	envHop := map[string]string{"KUBECDN_HOP_KEY": "key-from-the-environment", "KUBECDN_ADMIN_TOKEN": " env-token \n"}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(s Settings) string // what is wrong, or ""
	}{
		{"defaults", []string{"--origin", "http://o"}, nil, func(s Settings) string {
			d := DefaultSettings()
			if s.Memory != d.Memory || s.Listen != "127.0.0.1:8080" || s.StaleIfError != d.StaleIfError || s.IOUring != IOUringAuto || s.Hostnames != nil || s.HopKeys != nil || s.AdminToken != "" {
				return "not the defaults"
			}
			return ""
		}},
		{"file over defaults", []string{"--config", file}, nil, func(s Settings) string {
			if s.Memory != 512<<20 || s.StaleDeadline != units.Duration(5*time.Second) || s.Disk != DefaultSettings().Disk ||
				!reflect.DeepEqual(s.Hostnames, []string{"a.example", "b.example"}) || s.Origin != "http://127.0.0.1:9000" {
				return "the file's values are not all there"
			}
			if !reflect.DeepEqual(s.HopKeys, []string{"key-named-by-the-file-0123"}) {
				return "hop key not from the file the file names"
			}
			return ""
		}},
		{"environment without a key file", []string{"--origin", "http://o"}, envHop, func(s Settings) string {
			if !reflect.DeepEqual(s.HopKeys, []string{"key-from-the-environment"}) || s.AdminToken != "env-token" {
				return "secrets not from the environment"
			}
			return ""
		}},
		{"flags over the file and the environment", []string{"--config", file, "--memory", "1GiB", "--hostname", "c.example",
			"--stale-deadline", "-1s", "--hop-key-file", flagHop}, envHop, func(s Settings) string {
			if s.Memory != 1<<30 || !reflect.DeepEqual(s.Hostnames, []string{"c.example"}) || s.StaleDeadline != units.Duration(-time.Second) {
				return "a flag given did not win over the file"
			}
			if !reflect.DeepEqual(s.HopKeys, []string{"key-named-by-a-flag-012345"}) {
				return "hop key not from the flag's file"
			}
			if s.Origin != "http://127.0.0.1:9000" {
				return "a field no flag gave lost the file's value"
			}
			return ""
		}},
		{"flag order does not matter for --config", []string{"--memory", "1GiB", "--config", file}, nil, func(s Settings) string {
			if s.Memory != 1<<30 {
				return "the file beat a flag given before --config"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSettings(tt.args, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if why := tt.check(s); why != "" {
				t.Errorf("%s: %+v", why, s)
			}
		})
	}
}

// TestLoadSettingsRefusesBadFiles: a bad file is refused, and the error
// names the field.
func TestLoadSettingsRefusesBadFiles(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"memory: lots\n", "memory: invalid size"},
		{"memroy: 1GiB\n", "memroy: unknown field"},
		{"hstsMaxAge: soon\n", "hstsMaxAge: invalid duration"},
		{"hostnames: a.example\n", "hostnames: must be a list"},
		{"httpsPort: many\n", "httpsPort: must be an integer"},
		{"tlsCerts: [{cert: a.crt, kee: a.key}]\n", "tlsCerts[0].kee: unknown field"},
		{"memory: 1GiB\nmemory: 2GiB\n", `key "memory" already set`},
	} {
		_, err := LoadSettings([]string{"--config", writeFile(t, "edge.yaml", tt.file)}, env(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v, want one containing %q", tt.file, err, tt.want)
		}
	}
	if _, err := LoadSettings([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, env(nil)); err == nil {
		t.Error("a missing file was accepted")
	}
	if _, err := LoadSettings([]string{"--admin-token-file", filepath.Join(t.TempDir(), "missing")}, env(nil)); err == nil || !strings.Contains(err.Error(), "adminTokenFile") {
		t.Errorf("a missing token file: %v", err)
	}
}

// TestHSTSMaxAgeForms: --hsts-max-age and hstsMaxAge take what people
// write: seconds, days or a Go duration.
func TestHSTSMaxAgeForms(t *testing.T) {
	base := []string{"--origin", "http://o", "--tls-listen", "127.0.0.1:0", "--tls-cert", "a.crt", "--tls-key", "a.key"}
	for _, v := range []string{"31536000", "365d", "8760h"} {
		s, err := LoadSettings(append(base, "--hsts-max-age", v), env(nil))
		if err != nil {
			t.Fatalf("--hsts-max-age %s: %v", v, err)
		}
		cfg, err := s.Config()
		if err != nil || cfg.HSTSMaxAge != 8760*time.Hour {
			t.Errorf("--hsts-max-age %s: %v, %v", v, cfg.HSTSMaxAge, err)
		}
		file := writeFile(t, "edge.yaml", "hstsMaxAge: "+v+"\n")
		if s, err = LoadSettings(append(base, "--config", file), env(nil)); err != nil || s.HSTSMaxAge.Std() != 8760*time.Hour {
			t.Errorf("hstsMaxAge: %s in the file: %v, %v", v, s.HSTSMaxAge, err)
		}
	}
	if _, err := LoadSettings(append(base, "--hsts-max-age", "a year"), env(nil)); err == nil {
		t.Error(`--hsts-max-age "a year" accepted`)
	}
}

// TestSettingsConfig: the conversion keeps what the old flag handling did
// with the special values.
func TestSettingsConfig(t *testing.T) {
	s := DefaultSettings()
	s.Origin = "http://o"
	cfg, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StaleIfError != 24*time.Hour || cfg.MemoryBytes != 256<<20 || cfg.MaxKeyBytes != 8<<10 || cfg.Name != "kubecdn" {
		t.Errorf("defaults: %+v", cfg)
	}
	s.StaleIfError = 0
	if cfg, _ = s.Config(); cfg.StaleIfError >= 0 {
		t.Errorf("staleIfError 0 gives %v, want it turned off (negative)", cfg.StaleIfError)
	}
	// Config's own defaults are DefaultSettings.
	if got := (Config{Listen: "127.0.0.1:1"}).withDefaults(); got.MemoryBytes != int64(DefaultSettings().Memory) || got.StaleDeadline != DefaultSettings().StaleDeadline.Std() {
		t.Errorf("withDefaults %+v", got)
	}
	s.Slice = 1
	if _, err := s.Config(); err == nil || !strings.Contains(err.Error(), "slice") {
		t.Errorf("slice 1: %v", err)
	}
}

// TestTLSCertFlags: --tls-cert and --tls-key pair in order and replace the
// file's tlsCerts; an unpaired one is refused.
func TestTLSCertFlags(t *testing.T) {
	file := writeFile(t, "edge.yaml", "tlsCerts: [{cert: f.crt, key: f.key}]\n")
	s, err := LoadSettings([]string{"--config", file, "--tls-cert", "a.crt", "--tls-key", "a.key", "--tls-key", "b.key", "--tls-cert", "b.crt"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := []TLSCert{{"a.crt", "a.key"}, {"b.crt", "b.key"}}; !reflect.DeepEqual(s.TLSCerts, want) {
		t.Errorf("tlsCerts %v, want %v", s.TLSCerts, want)
	}
	s, _ = LoadSettings([]string{"--origin", "http://o", "--tls-listen", "127.0.0.1:0", "--tls-cert", "a.crt"}, env(nil))
	if _, err := s.Config(); err == nil || !strings.Contains(err.Error(), "tlsCerts[0]") {
		t.Errorf("a certificate without its key: %v", err)
	}
}

// TestSettingsYAMLRoundTrip: what YAML writes, ParseSettings reads back as
// the same settings, zero values that differ from a default included; the
// defaults themselves are left out, but for the video rules, which a
// reader of edge.yaml is shown.
func TestSettingsYAMLRoundTrip(t *testing.T) {
	want := "video:\n  blockingReloads: 64\n  missingSegment: 1s\n  playlistFraction: 0.5\n  segment: 24h0m0s\n"
	if b, err := DefaultSettings().YAML(); err != nil || string(b) != want {
		t.Errorf("the defaults write %q, %v; want %q", b, err, want)
	}
	s := DefaultSettings()
	s.Listen, s.Origin, s.Hostnames, s.Peers = ":8080", "https://o.example", []string{"a.example"}, []string{"http://p1", "http://p2"}
	s.Memory, s.Disk, s.CacheDir, s.MaxKey = 3<<29, 1234567, "/var/cache", 16<<10
	s.StaleIfError, s.HSTSMaxAge, s.StaleDeadline = 0, units.Duration(8760*time.Hour), units.Duration(-time.Second)
	s.TLSCerts, s.HTTPSPort, s.OriginInsecure, s.Pprof, s.IOUring = []TLSCert{{"c", "k"}}, 8443, true, true, IOUringOff
	s.RTTReport, s.Region = []string{"http://dns/v1/rtt"}, "us-east-1"
	s.Video.PlaylistFraction, s.Video.Off = 0.25, true
	b, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSettings(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("round trip through\n%s\ngives %+v\nwant %+v", b, back, s)
	}
	s.AdminToken, s.HopKeys = "secret-token", []string{"secret-hop-key-0123456"}
	if b, _ := s.YAML(); strings.Contains(string(b), "secret") {
		t.Errorf("secrets written to the file:\n%s", b)
	}
}

// TestFlagDefaultsShown: -h shows each default as before.
func TestFlagDefaultsShown(t *testing.T) {
	fs := NewFlagSet("kubecdn edge", nil)
	for name, want := range map[string]string{"listen": "127.0.0.1:8080", "admin": "127.0.0.1:9090", "memory": "256MiB", "disk": "10GiB",
		"slice": "4MiB", "max-key": "8KiB", "stale-if-error": "24h", "heuristic-max": "24h", "upstream-timeout": "30s", "stale-deadline": "2s"} {
		if f := fs.Lookup(name); f == nil || f.DefValue != want {
			t.Errorf("--%s default %v, want %s", name, f, want)
		}
	}
}

// FuzzParseSettings: whatever file is accepted writes back (YAML) to a
// file that reads as the same settings.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{"memory: 1GiB\n", "hstsMaxAge: 31536000\nstaleIfError: 0\n", "tlsCerts: [{cert: a, key: b}]\n", "peers: []\n", "{}", "slice: 1.5MiB\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSettings([]byte(in))
		if err != nil {
			return
		}
		b, err := s.YAML()
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		back, err := ParseSettings(b)
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("%q reads as %+v, writes\n%s\nwhich reads as %+v, %v", in, s, b, back, err)
		}
	})
}
