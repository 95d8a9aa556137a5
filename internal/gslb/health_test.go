package gslb

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

func TestObserve(t *testing.T) {
	// Each step is one probe result; want is the state after it.
	tests := []struct {
		name  string
		steps []bool
		want  []bool
	}{
		{name: "first success is up", steps: []bool{true}, want: []bool{true}},
		{name: "first failure is down", steps: []bool{false}, want: []bool{false}},
		{name: "never up: the first success counts at once", steps: []bool{false, false, true}, want: []bool{false, false, true}},
		{name: "up, then down after 3 failures", steps: []bool{true, false, false, false}, want: []bool{true, true, true, false}},
		{name: "back up only after 2 successes", steps: []bool{true, false, false, false, true, true}, want: []bool{true, true, true, false, false, true}},
		{name: "a failure between successes restarts the count", steps: []bool{true, false, false, false, true, false, true, true}, want: []bool{true, true, true, false, false, false, false, true}},
		{name: "late start, then a flap needs the full count", steps: []bool{false, true, false, false, false, true, true}, want: []bool{false, true, true, true, false, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h edgeHealth
			for i, ok := range tt.steps {
				h.observe(ok, "", 3, 2, testNow)
				if h.up != tt.want[i] {
					t.Fatalf("after probe %d (%v): up %v, want %v", i+1, ok, h.up, tt.want[i])
				}
			}
		})
	}
}

// lateEdge is an edge whose address is bound from the start but that
// answers nothing (probes time out) until serve is called: an edge that
// starts after the dns.
func lateEdge(t *testing.T, ip string) (e *testEdge, serve func()) {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	t.Cleanup(func() { l.Close() })
	e = &testEdge{addr: l.Addr().String()}
	return e, func() {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		srv.Listener.Close()
		srv.Listener = l
		srv.Start()
		t.Cleanup(srv.Close)
	}
}

// switchEdge is an edge whose health answer is switched by up.
func switchEdge(t *testing.T, ip string) (*testEdge, *atomic.Bool) {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	up := &atomic.Bool{}
	up.Store(true)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != config.HealthPath || !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return &testEdge{srv: srv, addr: l.Addr().String()}, up
}

// startWith runs a Server on the test file (geo policy) with the given
// edges and health settings, and waits for /readyz.
func startWith(t *testing.T, health config.Health, o Options, us, eu, eu6 *testEdge) (srv *Server, udp string) {
	t.Helper()
	c := testFile(t, "geo", "1s", "500ms", us, eu, eu6)
	c.Spec.Routing.Health = health
	srv, _, _ = runServer(t, configtest.Parse(t, c), o)
	waitReady(t, srv.AdminAddr().String())
	return srv, srv.UDPAddr().String()
}

// TestLateEdgeJoinsAtFirstSuccess: a region whose edge starts after the
// dns was ready is answered as soon as one probe passes, not after
// passAfter probes (before, /readyz said ready while the region stayed
// out of the answers for passAfter intervals).
func TestLateEdgeJoinsAtFirstSuccess(t *testing.T) {
	us, serve := lateEdge(t, "127.0.0.2")
	eu, eu6 := startEdge(t, "127.0.0.3"), startEdge(t, "[::1]")
	const interval = 100 * time.Millisecond
	_, udp := startWith(t, config.Health{Interval: config.Duration(100 * time.Millisecond), Timeout: config.Duration(50 * time.Millisecond), PassAfter: 8}, Options{}, us, eu, eu6)
	newYork := "198.51.100.0/24"
	if got := joined(query(t, "udp", udp, "www.cdn.example.com.", dns.TypeA, newYork)); got != "127.0.0.3" {
		t.Fatalf("ready, with us-east-1's edge not started: %q, want eu-west-1's 127.0.0.3", got)
	}
	serve()
	took := eventually(t, "us-east-1 answered after its edge started", func() bool {
		return joined(query(t, "udp", udp, "www.cdn.example.com.", dns.TypeA, newYork)) == "127.0.0.2"
	})
	t.Logf("us-east-1 answered %v after its edge started", took.Round(time.Millisecond))
	// One interval for the next probe, one of slack; passAfter would take 7 or more.
	if took > 4*interval {
		t.Errorf("us-east-1 answered %v after its edge started; want within %v (one probe)", took, 4*interval)
	}
}

// TestHealthChangeLogLevels: a region or edge going down is a warning;
// coming back up is logged at INFO.
func TestHealthChangeLogLevels(t *testing.T) {
	us, up := switchEdge(t, "127.0.0.2")
	eu, eu6 := startEdge(t, "127.0.0.3"), startEdge(t, "[::1]")
	var logs e2e.SyncBuffer // the probe goroutines write while the test reads
	o := Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	startWith(t, config.Health{Interval: config.Duration(50 * time.Millisecond), Timeout: config.Duration(40 * time.Millisecond)}, o, us, eu, eu6)
	down := `msg="region health changed" region=us-east-1 state=down`
	back := `msg="region health changed" region=us-east-1 state=up`
	up.Store(false)
	eventually(t, "us-east-1 down", func() bool { return strings.Contains(logs.String(), down) })
	up.Store(true)
	eventually(t, "us-east-1 back up", func() bool { return strings.Contains(logs.String(), back) })
	for _, line := range strings.Split(logs.String(), "\n") {
		isUp := strings.Contains(line, back) || strings.Contains(line, "health changed") && strings.Contains(line, "up=true")
		isDown := strings.Contains(line, down) || strings.Contains(line, "health changed") && strings.Contains(line, "up=false")
		switch {
		case isUp && !strings.Contains(line, "level=INFO"):
			t.Errorf("coming up is not logged at INFO: %s", line)
		case isDown && !strings.Contains(line, "level=WARN"):
			t.Errorf("going down is not logged at WARN: %s", line)
		}
	}
}

func TestReloadHelpSaysTheInterval(t *testing.T) {
	if !strings.Contains(ReloadHelp, "every "+FileCheckInterval.String()) {
		t.Errorf("ReloadHelp does not say the file is checked every %v:\n%s", FileCheckInterval, ReloadHelp)
	}
}
