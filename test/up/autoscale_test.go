package up_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/loadgen"
	"github.com/kubecdn/kubecdn/internal/local"
)

// autoscaleCDN is an up run with one always-on region (New York's) and one
// autoscale region (Dublin's), their edges on one port of two loopback IPs
// so a user's URL is the same whichever region answers.
type autoscaleCDN struct {
	dir, file, token        string
	eastIP, euIP, port      string
	dns, dnsAdmin, control  string
	origin                  string
	window, cooldown, ttl   time.Duration
	up, down                float64 // thresholds, req/s
	loopRate                float64 // the resolve-and-fetch loop's rate from Dublin
	args                    []string
	edgeSignal              bool // the edges count demand by nearest region
	sampleEvery, drainMax   time.Duration
	stateFile               string
	loadRate, loadSeconds   int
	euEdgeName, eastEdgeAdm string
	// ownOrigin: the test serves the origin on c.origin itself (no demo).
	ownOrigin bool
}

const dublin = "203.0.113.0/24"

// newAutoscaleCDN writes the file. edgeSignal chooses thresholds for the
// displaced signal in force: users' requests per second when the edges
// count them by nearest region, else the dns's queries per second, which
// one resolver network holds near 1/TTL whatever its users' rate.
// Each mod, if any, changes the defaults (addresses, window, ...) before
// the file is written.
func newAutoscaleCDN(t *testing.T, edgeSignal bool, mods ...func(*autoscaleCDN)) *autoscaleCDN {
	t.Helper()
	c := &autoscaleCDN{dir: t.TempDir(), eastIP: "127.0.0.72", euIP: "127.0.0.74", edgeSignal: edgeSignal,
		window: 3 * time.Second, cooldown: 6 * time.Second, ttl: time.Second, loadRate: 30, loadSeconds: 20}
	if edgeSignal {
		// The loop (3 req/s) stays under scaleDownBelow, so it is
		// served by eu-west-1 through the open and the close.
		c.up, c.down, c.loopRate = 20, 8, 3
	} else {
		// One resolver network asks about once a TTL: ~1 q/s under load.
		// Served load is the edges' requests per second between two
		// looks, so the loop must leave whole windows without a request
		// for the region to close.
		c.up, c.down, c.loopRate = 0.5, 0.25, 0.2
	}
	for _, m := range mods {
		m(c)
	}
	c.port = fmt.Sprint(sharedEdgePort(t, c.eastIP, c.euIP))
	c.dns = freeDNSAddr(t)
	c.dnsAdmin = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.control = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.origin = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.token = filepath.Join(c.dir, "token")
	c.stateFile = filepath.Join(c.dir, "autoscale.json")
	cdn := configtest.Minimal()
	cdn.Metadata.Name = "up-autoscale"
	cdn.Spec.Zone = "cdn.test"
	cdn.Spec.Hostnames = []string{hostname}
	cdn.Spec.Origin = config.Origin{URL: "http://" + c.origin}
	cdn.Spec.Routing = config.Routing{Policy: config.PolicyGeo, TTL: configtest.Duration(t, "1s"),
		Health: config.Health{Interval: configtest.Duration(t, "200ms"), Timeout: configtest.Duration(t, "150ms"), FailAfter: 3, PassAfter: 1},
		Geo: config.Geo{Networks: []config.GeoNetwork{
			configtest.Network("192.0.2.0/24", 40.7, -74.0),  // New York
			configtest.Network(dublin, 53.3, -6.3),           // Dublin
			configtest.Network("127.0.113.0/24", 53.3, -6.3), // Dublin's loopback twin (kubecdn load --from dublin)
		}}}
	cdn.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.Region("us-east-1", "local", c.eastIP+":"+c.port)},
		Autoscale: []config.Region{configtest.Region("eu-west-1", "local", c.euIP+":"+c.port)},
	}
	cdn.Spec.Autoscale = config.Autoscale{ScaleUpAbove: config.Rate(c.up), ScaleDownBelow: config.Rate(c.down),
		Window: config.Duration(c.window), Cooldown: config.Duration(c.cooldown)}
	c.file = configtest.Write(t, c.dir, cdn)
	c.args = []string{"up", "-f", c.file, "--dns", c.dns, "--dns-admin", c.dnsAdmin, "--control", c.control,
		"--token-file", c.token, "--autoscale-state", c.stateFile}
	if !c.ownOrigin {
		c.args = append(c.args, "--demo", "--origin-addr", c.origin)
	}
	c.euEdgeName = "kubecdn-eu-west-1-0"
	return c
}

// sharedEdgePort returns a port p free on every ip, with p+1010 (the edge's
// admin port) free too.
func sharedEdgePort(t *testing.T, ips ...string) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := freeEdgePort(t, ips[0])
		ok := true
		for _, ip := range ips[1:] {
			for _, q := range []int{p, p + 1010} {
				ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, q))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return p
		}
	}
	t.Fatal("no port free on every ip")
	return 0
}

// autoscaleView asks up's control API for the autoscaler's state.
func autoscaleView(t *testing.T, control string) local.AutoscaleView {
	t.Helper()
	resp, err := client.Get("http://" + control + "/v1/autoscale")
	if err != nil {
		t.Fatalf("GET /v1/autoscale: %v", err)
	}
	defer resp.Body.Close()
	var v local.AutoscaleView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET /v1/autoscale: %v", err)
	}
	return v
}

func phaseOf(v local.AutoscaleView, region string) string {
	for _, r := range v.State.Regions {
		if r.Name == region {
			return string(r.Phase)
		}
	}
	return ""
}

// edgesCountDemand reports whether the running edges serve the edge's
// demand endpoint (adminapi.EdgeDemandPath): the edges' displaced signal.
func edgesCountDemand(t *testing.T, c *autoscaleCDN) bool {
	t.Helper()
	tok, err := os.ReadFile(c.token)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s:%d%s", c.eastIP, atoi(t, c.port)+1010, adminapi.EdgeDemandPath), nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("asking the edge for its demand: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// answerFor asks the dns for the hostname as a resolver in network would.
func answerFor(t *testing.T, dnsAddr, network string) string {
	t.Helper()
	p := netip.MustParsePrefix(network)
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(hostname), dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()),
		Address: net.IP(p.Addr().AsSlice())})
	m.Extra = append(m.Extra, o)
	in, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, dnsAddr)
	if err != nil {
		t.Fatalf("dns: %v", err)
	}
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}

// servedLog keeps loadgen's output (a line per second) and when a line
// first named edge.
type servedLog struct {
	mu      sync.Mutex
	first   time.Time
	lines   []string
	partial string
	edge    string
}

func (s *servedLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial += string(p)
	for {
		l, rest, ok := strings.Cut(s.partial, "\n")
		if !ok {
			break
		}
		s.partial = rest
		s.lines = append(s.lines, l)
		if s.first.IsZero() && strings.Contains(l, s.edge) {
			s.first = time.Now()
		}
	}
	return len(p), nil
}

func (s *servedLog) firstServed() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first
}

// TestUpAutoscaleOpensAndClosesWithoutAFailedRequest is the end to
// end check: load from Dublin opens eu-west-1 within window + 10 s and the
// dns then answers Dublin with it; when the load stops, it drains and
// closes after window + cooldown; a resolve-and-fetch loop from Dublin
// running the whole time sees no failed request.
func TestUpAutoscaleOpensAndClosesWithoutAFailedRequest(t *testing.T) {
	c := newAutoscaleCDN(t, true)
	p := startUp(t, c.args...)
	p.WaitBanner(t, c.control)
	if !edgesCountDemand(t, c) {
		// The edges predate the demand endpoint: the dns's displaced
		// signal decides, in queries per second of resolvers.
		p.Stop(t)
		c = newAutoscaleCDN(t, false)
		p = startUp(t, c.args...)
		p.WaitBanner(t, c.control)
	}
	t.Logf("displaced signal: edges=%v; scaleUpAbove %g, scaleDownBelow %g, window %s, cooldown %s, loop %g req/s",
		c.edgeSignal, c.up, c.down, c.window, c.cooldown, c.loopRate)
	if got := answerFor(t, c.dns, dublin); got != c.eastIP {
		t.Fatalf("before any load, Dublin is answered %q, want us-east-1's %s", got, c.eastIP)
	}
	url := fmt.Sprintf("http://%s:%s/", hostname, c.port)

	// The loop: resolve-and-fetch from Dublin for the whole test.
	loopCtx, stopLoop := context.WithCancel(context.Background())
	defer stopLoop()
	loopOut := &servedLog{edge: c.euEdgeName}
	type loopResult struct {
		sum loadgen.Summary
		err error
	}
	loopDone := make(chan loopResult, 1)
	go func() {
		twin, _ := loadgen.LoopbackTwin(netip.MustParsePrefix(dublin))
		sum, err := loadgen.Run(loopCtx, loadgen.Options{URL: url, DNS: c.dns, From: netip.MustParsePrefix(dublin), Source: twin,
			Rate: c.loopRate, Duration: 3 * time.Minute, Timeout: 5 * time.Second, Seed: 2}, loopOut)
		loopDone <- loopResult{sum, err}
	}()
	// A window of complete samples before the load.
	time.Sleep(c.window + time.Second)

	// The load: `kubecdn load` from Dublin.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	loadOut := &servedLog{edge: c.euEdgeName}
	load := exec.CommandContext(ctx, binPath, "load", "--from", dublin, "--rps", fmt.Sprint(c.loadRate),
		"--duration", fmt.Sprintf("%ds", c.loadSeconds), "--url", url, "--dns", c.dns)
	var loadErr strings.Builder
	load.Stdout, load.Stderr = loadOut, &loadErr
	loadStart := time.Now()
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadExit := make(chan error, 1)
	go func() { loadExit <- load.Wait() }()

	// Open within window + 10 s of the load's start.
	var opened time.Time
	for deadline := loadStart.Add(c.window + 10*time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if phaseOf(autoscaleView(t, c.control), "eu-west-1") == "open" {
			opened = time.Now()
			break
		}
	}
	v := autoscaleView(t, c.control)
	if opened.IsZero() {
		t.Fatalf("eu-west-1 not open %s after the load started: phase %s, frozen %q, waiting %v, decisions %+v",
			c.window+10*time.Second, phaseOf(v, "eu-west-1"), v.Frozen, v.Waiting, v.State.Decisions)
	}
	if got := answerFor(t, c.dns, dublin); got != c.euIP {
		t.Errorf("eu-west-1 open, Dublin answered %q, want eu-west-1's %s", got, c.euIP)
	}
	var openDecision time.Time
	var openAction autoscale.Action
	for _, d := range v.State.Decisions {
		if d.Action.Region == "eu-west-1" && d.Action.Kind == "open" {
			openDecision, openAction = d.At, d.Action
		}
	}
	// The open says what the users gain: Dublin's users were served from
	// us-east-1, about 5,500 km further than eu-west-1 (locate.EstimateRTT:
	// about 110 ms of round trip), and the bytes they fetched.
	if openAction.RTTGainMs < 50 || openAction.RTTGainMs > 200 || openAction.BytesPerSec <= 0 {
		t.Errorf("open decision %s: rtt gain %.1f ms and %.0f B/s, want about 110 ms and some bytes", openAction, openAction.RTTGainMs, openAction.BytesPerSec)
	}
	// status shows the phase, since when and why: the open decision with
	// its inputs, Dublin's RTT gain among them. (The newest sample's
	// figures move on: once routed, eu-west-1 is served, not displaced.)
	out, err := run(t, ctx, "status", "--control", "http://"+c.control, "--interval", "0")
	if err != nil || !strings.Contains(out, "autoscale eu-west-1: open since") || !strings.Contains(out, "displaced demand above") ||
		!strings.Contains(out, "ms closer") {
		t.Errorf("status while open (err %v) lacks the autoscale line:\n%s", err, out)
	}
	metrics := getBody(t, "http://"+c.control+"/metrics")
	if !strings.Contains(metrics, `kubecdn_autoscale_region_phase{phase="open",region="eu-west-1"} 1`) ||
		!strings.Contains(metrics, `kubecdn_autoscale_demand{region="us-east-1",signal="served_requests"}`) {
		t.Errorf("control /metrics lacks eu-west-1 open:\n%s", metrics)
	}

	// The load ends; eu-west-1 drains and closes.
	if err := <-loadExit; err != nil {
		t.Errorf("kubecdn load: %v\n%s\n%s", err, tail(loadOut.String(), 30), loadErr.String())
	}
	loadEnd := time.Now()
	var closed time.Time
	limit := c.window + c.cooldown + 40*time.Second // + the drain, bounded by DrainMax (30 s)
	for deadline := loadEnd.Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if phaseOf(autoscaleView(t, c.control), "eu-west-1") == "closed" {
			closed = time.Now()
			break
		}
	}
	v = autoscaleView(t, c.control)
	if closed.IsZero() {
		t.Fatalf("eu-west-1 not closed %s after the load ended: phase %s, frozen %q, waiting %v, decisions %+v",
			limit, phaseOf(v, "eu-west-1"), v.Frozen, v.Waiting, v.State.Decisions)
	}
	var closeDecision time.Time
	for _, d := range v.State.Decisions {
		if d.Action.Region == "eu-west-1" && d.Action.Kind == "close" {
			closeDecision = d.At
		}
	}
	if closeDecision.Sub(openDecision) < c.cooldown {
		t.Errorf("closed %s after opening, within the cooldown %s", closeDecision.Sub(openDecision), c.cooldown)
	}
	if got := answerFor(t, c.dns, dublin); got != c.eastIP {
		t.Errorf("eu-west-1 closed, Dublin answered %q, want us-east-1's %s", got, c.eastIP)
	}
	// The loop keeps going a little after the close, then must have seen
	// no failure at all.
	time.Sleep(2 * time.Second)
	stopLoop()
	res := <-loopDone
	if res.sum.Failed > 0 || res.sum.Requests == 0 {
		t.Errorf("the loop saw %d failed of %d requests: %v\n%s", res.sum.Failed, res.sum.Requests, res.sum.Errors, strings.Join(loopOut.lines, "\n"))
	}
	if !strings.Contains(loadOut.String(), " 0 failed") {
		t.Errorf("kubecdn load saw failures:\n%s", tail(loadOut.String(), 5))
	}
	served := loadOut.firstServed()
	if f := loopOut.firstServed(); !f.IsZero() && (served.IsZero() || f.Before(served)) {
		served = f
	}
	// The threshold crossing is the start of the window that opened it.
	crossing := openDecision.Add(-c.window)
	t.Logf("load start → open decision %.1fs; threshold crossing → serving from eu-west-1 %.1fs; load start → serving %.1fs; "+
		"load end → closed %.1fs; loop %d requests, %d failed; load %s",
		openDecision.Sub(loadStart).Seconds(), served.Sub(crossing).Seconds(), served.Sub(loadStart).Seconds(),
		closed.Sub(loadEnd).Seconds(), res.sum.Requests, res.sum.Failed, lastLine(loadOut.String()))
	if strings.Contains(p.Stderr.String(), "autoscale decision") {
		for _, l := range strings.Split(p.Stderr.String(), "\n") {
			if strings.Contains(l, "autoscale") {
				t.Log(l)
			}
		}
	}
	p.Stop(t)
}

func (s *servedLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

func lastLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	last := ""
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return string(b)
}
