package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

// localCDN is a valid file for zone cdn.test whose origin nobody answers;
// its regions are the given ones, all on provider local.
func localCDN(alwaysOn, autoscale []config.Region) *config.CDN {
	c := configtest.Minimal()
	c.Metadata.Name = "t"
	c.Spec.Zone = "cdn.test"
	c.Spec.Hostnames = []string{"www.cdn.test"}
	c.Spec.Origin = config.Origin{URL: "http://127.0.0.1:1"}
	c.Spec.Regions = config.Regions{AlwaysOn: alwaysOn, Autoscale: autoscale}
	return c
}

// threeRegions: us-east-1 with assigned addresses, us-west-2 (shielded by
// us-east-1) with an explicit edge on edgePort, eu-west-1 to autoscale.
func threeRegions(t *testing.T, edgePort string) *config.CDN {
	west := configtest.Region("us-west-2", "local", "127.0.0.3:"+edgePort)
	west.Parent = "us-east-1"
	return configtest.Parse(t, localCDN(
		[]config.Region{configtest.Region("us-east-1", "local"), west},
		[]config.Region{configtest.Region("eu-west-1", "local")}))
}

// fastHealth probes every 200ms and turns within two probes, so the tests
// see a region go down and come back in well under a second.
func fastHealth(t *testing.T) config.Health {
	return config.Health{Interval: configtest.Duration(t, "200ms"), Timeout: configtest.Duration(t, "100ms"), FailAfter: 2, PassAfter: 1}
}

func TestPlanLayout(t *testing.T) {
	example, err := config.Parse(Example())
	if err != nil {
		t.Fatalf("the built-in example is invalid: %v", err)
	}
	tests := []struct {
		name      string
		cfg       *config.CDN
		o         PlanOptions
		want      map[string][]EdgeAddrs
		wantState map[string]string
		wantErr   string
	}{
		{name: "example", cfg: example, o: PlanOptions{Demo: true},
			want: map[string][]EdgeAddrs{
				"us-east-1": {{"127.0.0.2:8080", "127.0.0.2:9090"}},
				"us-west-2": {{"127.0.0.3:8080", "127.0.0.3:9090"}},
				"eu-west-1": {{"127.0.0.4:8080", "127.0.0.4:9090"}},
			},
			wantState: map[string]string{"us-east-1": StateOpen, "us-west-2": StateOpen, "eu-west-1": StateClosed}},
		{name: "assigned skip explicit IPs, two edges each", cfg: threeRegions(t, "18080"), o: PlanOptions{EdgesPerRegion: 2},
			want: map[string][]EdgeAddrs{
				"us-east-1": {{"127.0.0.2:8080", "127.0.0.2:9090"}, {"127.0.0.2:8081", "127.0.0.2:9091"}},
				"us-west-2": {{"127.0.0.3:18080", "127.0.0.3:19090"}},
				"eu-west-1": {{"127.0.0.4:8080", "127.0.0.4:9090"}, {"127.0.0.4:8081", "127.0.0.4:9091"}},
			}},
		{name: "admin port below when above 65535", cfg: threeRegions(t, "65000"),
			want: map[string][]EdgeAddrs{"us-west-2": {{"127.0.0.3:65000", "127.0.0.3:63990"}}}},
		{name: "control on an edge address", cfg: threeRegions(t, "18080"), o: PlanOptions{Control: "127.0.0.2:8080"},
			wantErr: "127.0.0.2:8080: used twice, by us-east-1 edge and by control API and status page"},
		{name: "too many edges", cfg: threeRegions(t, "18080"), o: PlanOptions{EdgesPerRegion: 17}, wantErr: "more than 16"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := PlanLayout(tc.cfg, tc.o)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				r, ok := l.Region(name)
				if !ok {
					t.Fatalf("no region %s", name)
				}
				if fmt.Sprint(r.Edges) != fmt.Sprint(want) {
					t.Errorf("%s edges = %v, want %v", name, r.Edges, want)
				}
			}
			for name, want := range tc.wantState {
				if r, _ := l.Region(name); r.Initial != want {
					t.Errorf("%s initial = %s, want %s", name, r.Initial, want)
				}
			}
		})
	}
}

func TestDNSConfigClosedRegionsHaveNoEdges(t *testing.T) {
	cfg := threeRegions(t, "18080")
	l, err := PlanLayout(cfg, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dc := l.DNSConfig(cfg, map[string]string{"us-east-1": StateOpen, "us-west-2": StateDown, "eu-west-1": StateClosed})
	got := map[string][]string{}
	for _, r := range dc.AllRegions() {
		got[r.Name] = r.Edges
	}
	want := map[string][]string{"us-east-1": {"127.0.0.2:8080"}, "us-west-2": {"127.0.0.3:18080"}, "eu-west-1": nil}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dns regions = %v, want %v", got, want)
	}
	if len(cfg.Spec.Regions.AlwaysOn[0].Edges) != 0 {
		t.Fatal("DNSConfig changed the original file")
	}
}

func TestBindAllNamesEveryTakenAddressAndReleasesTheRest(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := freeTCP(t, "127.0.0.1")
	_, err = bindAll([]Listener{
		{Addr: free, Net: "tcp", Role: "origin"},
		{Addr: taken.Addr().String(), Net: "tcp", Role: "dns admin"},
	})
	var pe *PortError
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Role != "dns admin" {
		t.Fatalf("err = %v, want a PortError naming the dns admin", err)
	}
	if want := taken.Addr().String() + "/tcp (dns admin): bind: address already in use"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("the free address was not released: %v", err)
	}
	ln.Close()
}

func TestSuperviseRestartsWithBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var waits []time.Duration
	runs := 0
	run := func(ctx context.Context) error {
		mu.Lock()
		runs++
		n := runs
		mu.Unlock()
		if n <= 3 {
			return fmt.Errorf("crash %d", n)
		}
		<-ctx.Done()
		return nil
	}
	done := make(chan struct{})
	go func() {
		supervise(ctx, run, time.Millisecond, 3*time.Millisecond, func(err error, wait time.Duration) {
			mu.Lock()
			waits = append(waits, wait)
			mu.Unlock()
		})
		close(done)
	}()
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := runs
		mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if runs != 4 || fmt.Sprint(waits) != "[1ms 2ms 3ms]" {
		t.Fatalf("runs = %d, waits = %v; want 4 runs and waits [1ms 2ms 3ms]", runs, waits)
	}
}

// freeTCP returns ip:port with a port free a moment ago.
func freeTCP(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freeEdgePort returns a port p free on ip with p+1010 free too.
func freeEdgePort(t *testing.T, ip string) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if p+adminPortOffset > 65535 {
			continue
		}
		if a, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, p+adminPortOffset)); err == nil {
			a.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// closableListener lets a test break an edge's listener (a crash).
type closableListener struct {
	net.Listener
}

func TestUpRegionsDownUpAndRestart(t *testing.T) {
	ipA, ipB := "127.0.0.52", "127.0.0.53"
	pa, pb := freeEdgePort(t, ipA), freeEdgePort(t, ipB)
	c := localCDN([]config.Region{configtest.Region("us-east-1", "local", fmt.Sprintf("%s:%d", ipA, pa))},
		[]config.Region{configtest.Region("eu-west-1", "local", fmt.Sprintf("%s:%d", ipB, pb))})
	c.Spec.Routing = config.Routing{Policy: config.PolicyGeo, Health: fastHealth(t)}
	cfg := configtest.Parse(t, c)
	var logs bytes.Buffer
	var logMu sync.Mutex
	u, err := New(cfg, Options{
		PlanOptions: PlanOptions{Demo: true, DNS: freeTCP(t, "127.0.0.1"), DNSAdmin: freeTCP(t, "127.0.0.1"),
			Control: freeTCP(t, "127.0.0.1"), OriginAddr: freeTCP(t, "127.0.0.1")},
		AdminToken: "tok", DemoLargeSize: 1 << 20, TokenFile: t.TempDir() + "/token",
		Logger:         slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
		RestartBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wrap the first edge's listener so the test can break it.
	rr := u.regions["us-east-1"]
	cl := &closableListener{Listener: rr.pre[0]}
	rr.pre[0] = cl

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- u.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	edgeA := fmt.Sprintf("http://%s:%d/.well-known/kubecdn/health", ipA, pa)
	waitStatus(t, edgeA, 200)

	// A crash: the edge's listener breaks, Run returns, up restarts it.
	cl.Listener.Close()
	waitStatus(t, edgeA, 200)
	waitLog(t, &logs, &logMu, "edge stopped on its own; restarting it")

	// Down frees the region's ports, up serves again.
	if _, err := u.SetRegion("us-east-1", false); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{fmt.Sprintf("%s:%d", ipA, pa), fmt.Sprintf("%s:%d", ipA, pa+adminPortOffset)} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("after region down, %s is still bound: %v", a, err)
		}
		ln.Close()
	}
	ts, _ := u.Regions(ctx)
	if ts[0].State != StateDown || ts[1].State != StateClosed {
		t.Fatalf("states %s %s, want down closed", ts[0].State, ts[1].State)
	}
	if _, err := u.SetRegion("us-east-1", true); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, edgeA, 200)

	// Opening a closed region adds it to the dns.
	if _, err := u.SetRegion("eu-west-1", true); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, fmt.Sprintf("http://%s:%d/.well-known/kubecdn/health", ipB, pb), 200)
	st := u.dns.State()
	if len(st.Regions[1].Edges) != 1 {
		t.Fatalf("dns state of eu-west-1 after opening: %+v", st.Regions[1])
	}
	if _, err := u.SetRegion("nope", true); !errors.Is(err, ErrUnknownRegion) {
		t.Fatalf("unknown region: err = %v", err)
	}
}

// TestUpEdgesReportRTTWithTheToken: under the latency policy the dns of up
// refuses rtt reports without the admin token and takes the edges' own,
// which carry it (an edge sends its last report when its region goes
// down).
func TestUpEdgesReportRTTWithTheToken(t *testing.T) {
	ip := "127.0.0.54"
	p := freeEdgePort(t, ip)
	u, dnsAdmin := startLatencyUp(t, fmt.Sprintf("%s:%d", ip, p), 0)
	// a request to the edge: the edge measures 127.0.0.0/24
	waitStatus(t, fmt.Sprintf("http://%s:%d/.well-known/kubecdn/health", ip, p), 200)

	report := `{"region":"us-east-1","samples":[{"net":"192.0.2.0/24","rtt_ms":5,"count":1}]}`
	for _, tt := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {u.Token(), http.StatusNoContent}} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+dnsAdmin+"/v1/rtt", strings.NewReader(report))
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("POST /v1/rtt with token %q: %d, want %d", tt.token, resp.StatusCode, tt.want)
		}
	}

	if _, err := u.SetRegion("us-east-1", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + dnsAdmin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `kubecdn_dns_rtt_reports_total{result="ok"} 2`) &&
			strings.Contains(string(b), `kubecdn_dns_rtt_samples_total{region="us-east-1"} 2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge's report never arrived with the token:\n%s", grepLines(string(b), "kubecdn_dns_rtt"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func waitStatus(t *testing.T, url string, code int) {
	t.Helper()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET %s: %s, want %d", url, last, code)
}

func waitLog(t *testing.T, b *bytes.Buffer, mu *sync.Mutex, s string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		ok := strings.Contains(b.String(), s)
		mu.Unlock()
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log never said %q", s)
}
