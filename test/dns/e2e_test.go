// Package dns_test runs the kubecdn binary's dns end to end and queries it
// with dig (bind9-dnsutils) and kdig (knot-dnsutils), the way an operator
// would. Without those tools the tests skip, except under CI=true, where
// they must be installed.
//
// The binary is built once for the package from ./cmd/kubecdn into a
// temporary directory (e2e.Main), or taken from $KUBECDN_BIN when set.
package dns_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

func tool(t *testing.T, name, pkg string) string { return e2e.NeedTool(t, name, pkg) }

// binPath is the kubecdn binary, built once for the package by TestMain.
var binPath string

func TestMain(m *testing.M) { e2e.Main(m, &binPath) }

func buildKubecdn(t *testing.T) string {
	t.Helper()
	for _, sub := range []string{"dns", "validate"} {
		if out, _ := exec.Command(binPath, sub, "-h").CombinedOutput(); strings.Contains(string(out), "unknown command") {
			t.Fatalf("kubecdn %s is not registered in internal/cli/cli.go's commands()", sub)
		}
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	// a port free for both UDP and TCP
	for i := 0; i < 20; i++ {
		port := e2e.FreePort(t, "127.0.0.1")
		if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func startEdge(t *testing.T, ip string) (*httptest.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/kubecdn/health" {
			io.WriteString(w, "ok")
			return
		}
		http.NotFound(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, l.Addr().String()
}

// cdnFile is a CDN of two regions with one edge each, New York and Paris
// located for geo, and a TXT record too big for a UDP answer.
func cdnFile(policy, bigTXT, usEdge, euEdge string) *config.CDN {
	c := configtest.Minimal()
	c.Metadata.Name = "e2e"
	c.Spec.Origin = config.Origin{Dir: "./public"}
	c.Spec.Routing.Policy = config.Policy(policy)
	c.Spec.Routing.Geo.Networks = []config.GeoNetwork{
		configtest.Network("198.51.100.0/24", 40.7, -74.0),
		configtest.Network("203.0.113.0/24", 48.9, 2.4),
	}
	c.Spec.DNS.Nameservers = []config.Nameserver{{Name: "ns1.cdn.example.com", Addresses: []string{"192.0.2.53"}}}
	c.Spec.DNS.Records = []config.Record{{Name: "big", Type: "TXT", Value: bigTXT}}
	c.Spec.Regions.AlwaysOn = []config.Region{configtest.Region("us-east-1", "aws", usEdge), configtest.Region("eu-west-1", "aws", euEdge)}
	return c
}

// dnsToken is the admin token startDNS gives the dns (the edges' rtt
// reports must carry it).
const dnsToken = "e2e-admin-token"

type env struct {
	bin, file, port, admin string
	us, eu                 *httptest.Server
	usAddr, euAddr         string
	cmd                    *exec.Cmd
}

func (e *env) write(t *testing.T, policy string) {
	t.Helper()
	var parts []string
	for i := 0; i < 8; i++ {
		parts = append(parts, `"`+strings.Repeat(string(rune('a'+i)), 200)+`"`)
	}
	body := configtest.YAML(t, cdnFile(policy, strings.Join(parts, " "), e.usAddr, e.euAddr))
	if err := os.WriteFile(e.file, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func startDNS(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.us, e.usAddr = startEdge(t, "127.0.0.2")
	e.eu, e.euAddr = startEdge(t, "127.0.0.3")
	e.write(t, "geo")
	e.start(t)
	return e
}

func newEnv(t *testing.T) *env {
	return &env{bin: buildKubecdn(t), file: filepath.Join(t.TempDir(), "kubecdn.yaml")}
}

// start runs kubecdn dns on e.file and waits for its /readyz.
func (e *env) start(t *testing.T) {
	t.Helper()
	e.port = fmt.Sprint(freePort(t))
	e.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	e.cmd = exec.CommandContext(ctx, e.bin, "dns", "-f", e.file, "--listen", "127.0.0.1:"+e.port, "--admin", e.admin, "--region", "eu-west-1")
	e.cmd.Cancel = func() error { return e.cmd.Process.Signal(syscall.SIGTERM) }
	e.cmd.Env = append(os.Environ(), "KUBECDN_ADMIN_TOKEN="+dnsToken)
	var logs strings.Builder
	e.cmd.Stderr = &logs
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		e.cmd.Wait()
		if t.Failed() {
			t.Logf("kubecdn dns log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + e.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubecdn dns not ready after 10s (is it registered in internal/cli/cli.go?)\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDigAndKdig(t *testing.T) {
	dig := tool(t, "dig", "bind9-dnsutils")
	kdig := tool(t, "kdig", "knot-dnsutils")
	e := startDNS(t)
	at := []string{"@127.0.0.1", "-p", e.port}
	tests := []struct {
		name  string
		bin   string
		args  []string
		want  []string
		avoid []string
	}{
		{"dig ecs paris", dig, []string{"www.cdn.example.com", "A", "+norec", "+subnet=203.0.113.0/24"},
			[]string{"status: NOERROR", "flags: qr aa;", "CLIENT-SUBNET: 203.0.113.0/24/24", "IN\tA\t127.0.0.3"}, []string{"127.0.0.2"}},
		{"dig ecs new york over tcp", dig, []string{"www.cdn.example.com", "A", "+tcp", "+subnet=198.51.100.0/24"},
			[]string{"CLIENT-SUBNET: 198.51.100.0/24/24", "IN\tA\t127.0.0.2", "(TCP)"}, []string{"127.0.0.3"}},
		{"kdig ecs paris", kdig, []string{"www.cdn.example.com", "A", "+subnet=203.0.113.0/24"},
			[]string{"status: NOERROR", "CLIENT-SUBNET: 203.0.113.0/24/24", "IN\tA\t127.0.0.3"}, nil},
		{"kdig ecs new york tcp", kdig, []string{"+tcp", "www.cdn.example.com", "A", "+subnet=198.51.100.0/24"},
			[]string{"IN\tA\t127.0.0.2", "(TCP)"}, nil},
		{"dig refused outside zone", dig, []string{"www.example.org", "A"}, []string{"status: REFUSED"}, nil},
		{"kdig refused outside zone", kdig, []string{"www.example.org", "A"}, []string{"status: REFUSED"}, nil},
		{"dig nxdomain with soa", dig, []string{"nope.cdn.example.com", "A"}, []string{"status: NXDOMAIN", "flags: qr aa", "IN\tSOA\tns1.cdn.example.com."}, nil},
		{"dig ns with glue", dig, []string{"cdn.example.com", "NS"}, []string{"IN\tNS\tns1.cdn.example.com.", "ns1.cdn.example.com.\t3600\tIN\tA\t192.0.2.53"}, nil},
		{"dig truncation falls back to tcp", dig, []string{"big.cdn.example.com", "TXT", "+noedns"},
			[]string{"Truncated, retrying in TCP mode", "(TCP)", "ANSWER: 1"}, nil},
		{"dig truncated udp answer", dig, []string{"big.cdn.example.com", "TXT", "+noedns", "+ignore"},
			[]string{"flags: qr aa tc", "ANSWER: 0"}, nil},
		{"kdig any is minimal", kdig, []string{"www.cdn.example.com", "ANY"}, []string{"HINFO", "RFC8482"}, nil},
		{"dig case preserved", dig, []string{"WwW.CdN.eXaMpLe.CoM", "A"}, []string{"WwW.CdN.eXaMpLe.CoM.\t30\tIN\tA"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, tt.bin, append(append([]string{}, at...), tt.args...)...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tt.avoid {
				if strings.Contains(out, a) {
					t.Errorf("output has %q:\n%s", a, out)
				}
			}
		})
	}
}

var aRe = regexp.MustCompile(`(?m)^\S+\s+\d+\s+IN\s+A\s+(\S+)$`)

func answerA(t *testing.T, dig, port, subnet string) []string {
	t.Helper()
	out := run(t, dig, "@127.0.0.1", "-p", port, "www.cdn.example.com", "A", "+subnet="+subnet, "+noall", "+answer", "+tries=1", "+time=1")
	var ips []string
	for _, m := range aRe.FindAllStringSubmatch(out, -1) {
		ips = append(ips, m[1])
	}
	return ips
}

func TestFailoverAndReload(t *testing.T) {
	dig := tool(t, "dig", "bind9-dnsutils")
	e := startDNS(t)
	if got := answerA(t, dig, e.port, "203.0.113.0/24"); strings.Join(got, ",") != "127.0.0.3" {
		t.Fatalf("before: %v", got)
	}
	e.eu.Close()
	took := timeFailover(t, "eu-west-1's edge died", func() string { return strings.Join(answerA(t, dig, e.port, "203.0.113.0/24"), ",") }, "127.0.0.2")
	t.Logf("eu-west-1 left the answers %v after its edge died (target 3.5s)", took.Round(time.Millisecond))

	// reload on SIGHUP (policy all), then on a change of the file alone
	// (policy failover); eu-west-1 stays dead, so both answer us-east-1.
	waitPolicy := func(policy, why string) {
		t.Helper()
		deadline := time.Now().Add(6 * time.Second)
		for {
			resp, err := http.Get("http://" + e.admin + "/v1/state")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"policy": "`+policy+`"`) {
				if !strings.Contains(string(b), `"region": "eu-west-1"`) {
					t.Errorf("state lacks the replica's region:\n%s", b)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("policy %s not loaded 6s after %s:\n%s", policy, why, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	e.write(t, "all")
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitPolicy("all", "SIGHUP")
	if got := answerA(t, dig, e.port, "203.0.113.0/24"); strings.Join(got, ",") != "127.0.0.2" {
		t.Errorf("after reload (policy all, eu-west-1 dead): %v", got)
	}
	e.write(t, "failover")
	waitPolicy("failover", "a file change")
	if got := answerA(t, dig, e.port, "198.51.100.0/24"); strings.Join(got, ",") != "127.0.0.2" {
		t.Errorf("after reload (failover, eu-west-1 dead): %v", got)
	}
}

// timeFailover returns how long after now answer() takes to give want,
// failing the test if that is more than 5 s (the 3.5 s target of the
// default health settings, plus dig's own start-up) or never within 8 s.
func timeFailover(t *testing.T, what string, answer func() string, want string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := answer()
		if got == want {
			break
		}
		if time.Since(start) > 8*time.Second {
			t.Fatalf("still %q 8s after %s", got, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("failover after %s took %v; target about 3.5s (5s allowed for dig's own start-up)", what, took)
	}
	return took
}

func TestValidateCommand(t *testing.T) {
	bin := buildKubecdn(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(`apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: demo}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {dir: ./public}
  routing: {policy: nearest, ttl: 5}
  regions:
    alwaysOn:
      - {name: us-east-1, provider: aws}
      - {name: us-east-1, provider: aws, colour: red}
`), 0o644)
	cmd := exec.Command(bin, "validate", "-f", bad)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, out)
	}
	for _, w := range []string{
		"spec.regions.alwaysOn[1].colour: unknown field",
		"spec.routing.ttl: must be a duration",
		`spec.regions.alwaysOn[1].name: duplicate region "us-east-1"`,
		`spec.routing.policy: unknown policy "nearest"`,
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("validate output lacks %q:\n%s", w, out)
		}
	}
}
