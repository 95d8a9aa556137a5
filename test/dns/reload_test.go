package dns_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

// metric returns the line of the dns's /metrics that starts with series,
// or "" when there is none.
func (e *env) metric(t *testing.T, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return line
		}
	}
	return ""
}

// waitMetric waits up to 6 s (the file watch checks every 2 s) for the
// line series value.
func (e *env) waitMetric(t *testing.T, series, value, after string) {
	t.Helper()
	want := series + " " + value
	deadline := time.Now().Add(6 * time.Second)
	for {
		got := e.metric(t, series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("6s after %s: %q, want %q", after, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRefusedReloadCounted: a new version of the file that does not
// validate is refused before the server's Reload runs; it is still
// counted as a reload error, on SIGHUP and on a file change alike.
func TestRefusedReloadCounted(t *testing.T) {
	e := startDNS(t)
	const errors = `kubecdn_dns_reloads_total{result="error"}`
	e.write(t, "nearest") // an unknown policy: refused by validation
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(t, errors, "1", "SIGHUP with an invalid file")
	if err := os.WriteFile(e.file, []byte("spec: [not, a, cdn"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(t, errors, "2", "a change to an unparsable file")
	if got := e.metric(t, `kubecdn_dns_reloads_total{result="ok"}`); got != "" {
		t.Errorf("a refused file counted as loaded: %s", got)
	}
}

// TestHelpTellsReloading: `kubecdn dns -h` says how the file is reloaded.
func TestHelpTellsReloading(t *testing.T) {
	out, err := exec.Command(buildKubecdn(t), "dns", "-h").CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	for _, want := range []string{"SIGHUP", "content changes", `kubecdn_dns_reloads_total{result="error"}`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubecdn dns -h does not mention %q:\n%s", want, out)
		}
	}
}

// TestLateRegionAnsweredOnceReady: a region whose edge starts after the
// dns said ready is answered at the edge's first passing probe. Before,
// the region stayed out of the answers for passAfter probe intervals
// while /readyz already said ready.
func TestLateRegionAnsweredOnceReady(t *testing.T) {
	dig := tool(t, "dig", "bind9-dnsutils")
	e := newEnv(t)
	// us-east-1's address is bound from the start, so the probes time out
	// as for an edge still starting, and no one else can take the port.
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e.usAddr = l.Addr().String()
	e.eu, e.euAddr = startEdge(t, "127.0.0.3")
	const interval = 250 * time.Millisecond
	c := cdnFile("geo", `"x"`, e.usAddr, e.euAddr)
	c.Spec.Routing.Health = config.Health{Interval: config.Duration(interval), Timeout: config.Duration(200 * time.Millisecond), PassAfter: 6}
	if err := os.WriteFile(e.file, configtest.YAML(t, c), 0o644); err != nil {
		t.Fatal(err)
	}
	e.start(t) // returns once /readyz says ready
	newYork := "198.51.100.0/24"
	if got := strings.Join(answerA(t, dig, e.port, newYork), ","); got != "127.0.0.3" {
		t.Fatalf("ready with us-east-1's edge not started: %q, want eu-west-1's 127.0.0.3", got)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	started := time.Now()
	for strings.Join(answerA(t, dig, e.port, newYork), ",") != "127.0.0.2" {
		if time.Since(started) > 5*time.Second {
			t.Fatal("us-east-1 not answered 5s after its edge started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(started)
	t.Logf("us-east-1 answered %v after its edge started (probe interval %v, passAfter 6)", took.Round(time.Millisecond), interval)
	// One interval to the next probe plus dig's own time; passAfter 6
	// would take at least 5 intervals.
	if took > 900*time.Millisecond {
		t.Errorf("us-east-1 answered %v after its edge started; want within one probe interval (%v) and dig's time", took, interval)
	}
}
