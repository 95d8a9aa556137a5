package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/opstest"
)

// fakeControl serves the control API of `kubecdn up` over fake edges.
func fakeControl(t *testing.T, token string) (url string, east, west *opstest.FakeEdge) {
	t.Helper()
	east, west = opstest.NewFakeEdge(t, token), opstest.NewFakeEdge(t, token)
	east.Add("hit", 90, 9<<20)
	east.Add("miss", 10, 1<<20)
	east.SetFill(3<<20, 0)
	east.OnScrape(func(e *opstest.FakeEdge) { e.Add("hit", 5, 0) })
	d := opstest.NewFakeDNS(t, adminapi.State{Regions: []adminapi.RegionState{{Name: "us-east-1", Serving: true, Healthy: true}}})
	targets := []ops.Target{
		{Region: "us-east-1", State: ops.StateOpen, Admin: []string{east.URL()}, DNSAdmin: d.URL()},
		{Region: "us-west-2", State: ops.StateOpen, Admin: []string{west.URL()}},
		{Region: "eu-west-1", State: ops.StateClosed},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/regions", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(targets) })
	mux.HandleFunc("GET /v1/token", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, token+"\n") })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, east, west
}

func deadURL(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	s.Close()
	return s.URL
}

func TestStatusTable(t *testing.T) {
	ctl, _, _ := fakeControl(t, "tok")
	var out, errb bytes.Buffer
	code := runStatus(context.Background(), []string{"--control", ctl, "--interval", "50ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, errb.String())
	}
	t.Logf("\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, 3 regions and a total:\n%s", out.String())
	}
	for _, want := range []string{"REGION", "STATE", "HEALTH", "REQ/S", "HIT%", "BYTES", "FILL"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header %q lacks %s", lines[0], want)
		}
	}
	east := strings.Fields(lines[1])
	// 5 hits between the looks: a hit ratio of 100% over the interval.
	if east[0] != "us-east-1" || east[1] != "open" || east[2] != "up" || east[5] != "100.0%" || east[6]+east[7] != "10.0MiB" || east[8]+east[9] != "3.0MiB" {
		t.Errorf("us-east-1 line: %q", lines[1])
	}
	if f := strings.Fields(lines[3]); f[0] != "eu-west-1" || f[1] != "closed" || f[2] != "-" {
		t.Errorf("eu-west-1 line: %q", lines[3])
	}
}

func TestStatusUnreachable(t *testing.T) {
	dead := deadURL(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"control", []string{"--control", dead}, "cannot reach the control API of `kubecdn up` at " + dead},
		{"admin", []string{"--admin", "r=" + dead, "--interval", "0"}, strings.TrimPrefix(dead, "http://")},
		{"dns only", []string{"--dns-admin", dead}, "cannot reach the dns admin API at " + dead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runStatus(context.Background(), tt.args, &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errb.String(), tt.want)
			}
		})
	}
}

func TestPurgeCommand(t *testing.T) {
	ctl, east, west := fakeControl(t, "tok")
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte("tok\n"), 0o600)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "KUBECDN_ADMIN_TOKEN" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name     string
		env      string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"token from up, flags after the URL", "", []string{"--control", ctl, "http://www.cdn.localhost/a.css", "--soft", "--tag", "t"},
			0, []string{"us-east-1  purged 2  (", "us-west-2  purged 2  (", "eu-west-1  skipped (closed"}, "purged 4 objects in 2 regions"},
		{"token from the environment wins over up's", "wrong", []string{"--control", ctl, "--prefix", "http://www.cdn.localhost/img/"},
			1, []string{"us-east-1  FAILED", "401"}, "2 of 2 regions failed"},
		{"token file wins over the environment", "wrong", []string{"--admin", "us-east-1=" + east.URL() + ",us-west-2=" + west.URL(), "--token-file", tokFile, "--tag", "x"},
			0, []string{"us-east-1  purged 1"}, ""},
		{"explicit admin without a token", "", []string{"--admin", east.URL(), "--tag", "x"}, 1, nil, "no admin token"},
		{"relative URL", "", []string{"/a.css"}, 2, nil, `"/a.css" is not an absolute http(s) URL`},
		{"nothing", "", nil, 2, nil, "nothing to purge"},
		{"up not running", "", []string{"--control", deadURL(t), "--tag", "x"}, 1, nil, "cannot reach the control API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := purgeCmd{getenv: env(tt.env), readFile: os.ReadFile}.run(context.Background(), tt.args, &out, &errb)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out.String(), errb.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			if !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr lacks %q: %s", tt.wantErr, errb.String())
			}
		})
	}
	if p := east.Purges(); len(p) < 1 || !p[0].Soft || p[0].URLs[0] != "http://www.cdn.localhost/a.css" || p[0].Tags[0] != "t" {
		t.Errorf("first purge the edge saw: %+v", p)
	}
}
