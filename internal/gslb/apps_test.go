package gslb

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/rtt"
)

// tcpService is a plain TCP listener (a stand-in for an RTMP server) that
// accepts and closes connections until Close.
type tcpService struct {
	l    net.Listener
	addr string
	once sync.Once
}

func startTCPService(t *testing.T, ip string) *tcpService {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	s := &tcpService{l: l, addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *tcpService) Close() { s.once.Do(func() { s.l.Close() }) }

// httpService answers GET /ready with the status it is set to, only for
// Host app.cdn.example.com, and counts the requests.
type httpService struct {
	srv    *httptest.Server
	addr   string
	status atomic.Int32
	hits   atomic.Int32
}

func startHTTPService(t *testing.T, ip string) *httpService {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	h := &httpService{addr: l.Addr().String()}
	h.status.Store(200)
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		switch {
		case r.Host != "app.cdn.example.com":
			http.Error(w, "wrong host "+r.Host, http.StatusMisdirectedRequest)
		case r.URL.Path == "/ready":
			w.WriteHeader(int(h.status.Load()))
		case r.URL.Path == "/moved":
			http.Redirect(w, r, "/broken", http.StatusFound)
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	h.srv.Listener.Close()
	h.srv.Listener = l
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

func TestProbeOnce(t *testing.T) {
	s := &Server{probeClient: http.DefaultClient, appClient: noRedirects(http.DefaultClient)}

	tcp := startTCPService(t, "127.0.0.1")
	closed := startTCPService(t, "127.0.0.1")
	closed.Close()
	web := startHTTPService(t, "127.0.0.1")
	ap := func(a string) netip.AddrPort { return netip.MustParseAddrPort(a) }
	tests := []struct {
		name   string
		p      probeSpec
		status int32
		ok     bool
	}{
		{"tcp listener", probeSpec{kind: probeTCP, addr: ap(tcp.addr)}, 0, true},
		{"tcp closed listener", probeSpec{kind: probeTCP, addr: ap(closed.addr)}, 0, false},
		{"http 200", probeSpec{kind: probeHTTP, addr: ap(web.addr), host: "app.cdn.example.com", path: "/ready"}, 200, true},
		{"http 204", probeSpec{kind: probeHTTP, addr: ap(web.addr), host: "app.cdn.example.com", path: "/ready"}, 204, true},
		{"http 301 is healthy", probeSpec{kind: probeHTTP, addr: ap(web.addr), host: "app.cdn.example.com", path: "/ready"}, 301, true},
		{"http redirect not followed", probeSpec{kind: probeHTTP, addr: ap(web.addr), host: "app.cdn.example.com", path: "/moved"}, 200, true},
		{"http 404", probeSpec{kind: probeHTTP, addr: ap(web.addr), host: "app.cdn.example.com", path: "/nope"}, 200, false},
		{"http 503", probeSpec{kind: probeHTTP, addr: ap(web.addr), host: "app.cdn.example.com", path: "/ready"}, 503, false},
		{"http host header", probeSpec{kind: probeHTTP, addr: ap(web.addr), host: "other.example.com", path: "/ready"}, 200, false},
		{"http closed", probeSpec{kind: probeHTTP, addr: ap(closed.addr), host: "app.cdn.example.com", path: "/ready"}, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			web.status.Store(tt.status)
			err := s.probeOnce(context.Background(), tt.p, time.Second)
			if (err == nil) != tt.ok {
				t.Errorf("probe: %v, want ok=%v", err, tt.ok)
			}
		})
	}

	// a cancelled context fails at once
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.probeOnce(ctx, probeSpec{kind: probeTCP, addr: ap(tcp.addr)}, time.Second); err == nil {
		t.Error("probe with a cancelled context succeeded")
	}
}

// appsFile is the CDN the apps tests run: the video app's three services
// (rtmp on a tcp check, web on an http check, idle with no endpoints) in
// two regions, probed every 100ms.
func (a *appsSetup) appsFile(t *testing.T, policy string) *config.CDN {
	c := configtest.Minimal()
	c.Metadata.Name = "apps"
	c.Spec.Origin = config.Origin{URL: "http://127.0.0.1:1"}
	c.Spec.Routing = config.Routing{
		Policy:   config.Policy(policy),
		TTL:      configtest.Duration(t, "30s"),
		Health:   config.Health{Interval: configtest.Duration(t, "100ms"), Timeout: configtest.Duration(t, "100ms"), FailAfter: 2, PassAfter: 1},
		Weights:  map[string]int{"us-east-1": 3, "eu-west-1": 1},
		Failover: []string{"eu-west-1", "us-east-1"},
		Geo: config.Geo{Networks: []config.GeoNetwork{
			configtest.Network("198.51.100.0/24", 40.7, -74.0), // New York
			configtest.Network("203.0.113.0/24", 48.9, 2.4),    // Paris
			configtest.Network("127.0.0.0/8", 48.9, 2.4),       // the tests' resolver: Paris
		}},
	}
	c.Spec.DNS.Nameservers = []config.Nameserver{{Name: "ns1.cdn.example.com", Addresses: []string{"192.0.2.53"}}}
	c.Spec.Apps = []config.App{{Name: "video", Manifests: ".", Services: []config.AppService{
		{Service: "rtmp", Hostname: "live.cdn.example.com", Port: 1935, Health: config.AppHealth{Protocol: "tcp"}},
		{Service: "web", Hostname: "app.cdn.example.com", Health: config.AppHealth{Protocol: "http", Path: "/ready"}},
		{Service: "idle", Hostname: "idle.cdn.example.com"},
	}}}
	us := configtest.Region("us-east-1", "aws", a.usEdges[0].addr, a.usEdges[1].addr)
	us.Endpoints = map[string][]string{"live.cdn.example.com": {a.usLive.addr}}
	eu := configtest.Region("eu-west-1", "aws", a.euEdge.addr, a.euEdg6.addr)
	eu.Endpoints = map[string][]string{
		"live.cdn.example.com": {a.euLive.addr, a.euLiv6.addr},
		"app.cdn.example.com":  {a.euApp.addr},
	}
	c.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{us, eu},
		Autoscale: []config.Region{configtest.Region("ap-southeast-1", "aws")},
	}
	return c
}

type appsSetup struct {
	srv            *Server
	udp, admin     string
	cfgPath        string
	usEdges        [2]*testEdge
	euEdge, euEdg6 *testEdge
	usLive         *tcpService
	euLive, euLiv6 *tcpService
	euApp          *httpService
}

func (a *appsSetup) write(t *testing.T, policy string, edits ...func(*config.CDN)) {
	t.Helper()
	c := a.appsFile(t, policy)
	for _, e := range edits {
		e(c)
	}
	if err := os.WriteFile(a.cfgPath, configtest.YAML(t, c), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (a *appsSetup) load(t *testing.T) *config.CDN {
	t.Helper()
	cfg, err := config.Load(a.cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// startApps runs a server over two regions with edges and app endpoints
// (us-east-1: 127.0.0.2, .4 edges, live on .12; eu-west-1: 127.0.0.3 and
// ::1 edges, live on .13 and ::1, app on .23), probing every 100ms.
func startApps(t *testing.T, policy string, o Options, edits ...func(*config.CDN)) *appsSetup {
	t.Helper()
	a := &appsSetup{
		usEdges: [2]*testEdge{startEdge(t, "127.0.0.2"), startEdge(t, "127.0.0.4")},
		euEdge:  startEdge(t, "127.0.0.3"), euEdg6: startEdge(t, "[::1]"),
		usLive: startTCPService(t, "127.0.0.12"), euLive: startTCPService(t, "127.0.0.13"), euLiv6: startTCPService(t, "[::1]"),
		euApp:   startHTTPService(t, "127.0.0.23"),
		cfgPath: filepath.Join(t.TempDir(), "kubecdn.yaml"),
	}
	a.write(t, policy, edits...)
	cfg := a.load(t)
	a.srv, _, _ = runServer(t, cfg, o)
	a.udp, a.admin = a.srv.UDPAddr().String(), a.srv.AdminAddr().String()
	waitReady(t, a.admin)
	return a
}

// eventually polls cond every 20ms until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 5s", what)
	return 0
}

func joined(r *dns.Msg) string { return strings.Join(answers(r), ",") }

func TestAppServiceRoutingByPolicy(t *testing.T) {
	const ny, paris = "198.51.100.0/24", "203.0.113.0/24"
	tests := []struct {
		policy string
		rand   float64
		qname  string
		qtype  uint16
		ecs    string
		want   string
		scope  int
	}{
		{"geo", 0, "live.cdn.example.com.", dns.TypeA, paris, "127.0.0.13", 24},
		{"geo", 0, "live.cdn.example.com.", dns.TypeA, ny, "127.0.0.12", 24},
		{"geo", 0, "live.cdn.example.com.", dns.TypeAAAA, ny, "::1", 24},    // only eu-west-1 has IPv6
		{"geo", 0, "app.cdn.example.com.", dns.TypeA, ny, "127.0.0.23", 24}, // only eu-west-1 lists it
		{"geo", 0, "www.cdn.example.com.", dns.TypeA, ny, "127.0.0.2,127.0.0.4", 24},
		{"latency", 0, "live.cdn.example.com.", dns.TypeA, paris, "127.0.0.13", 24},
		{"latency", 0, "live.cdn.example.com.", dns.TypeA, ny, "127.0.0.12", 24},
		{"failover", 0, "live.cdn.example.com.", dns.TypeA, ny, "127.0.0.13", 0},
		{"weighted", 0.5, "live.cdn.example.com.", dns.TypeA, paris, "127.0.0.12", 0}, // 3:1, below .75 us-east-1
		{"weighted", 0.9, "live.cdn.example.com.", dns.TypeA, ny, "127.0.0.13", 0},
		{"all", 0, "live.cdn.example.com.", dns.TypeA, ny, "127.0.0.12,127.0.0.13", 0},
		{"all", 0, "app.cdn.example.com.", dns.TypeA, ny, "127.0.0.23", 0},
	}
	servers := map[string]*appsSetup{}
	var rnd atomic.Uint64
	for _, tt := range tests {
		a := servers[tt.policy]
		if a == nil {
			a = startApps(t, tt.policy, Options{Rand: func() float64 { return float64(rnd.Load()) / 1e6 }})
			servers[tt.policy] = a
		}
		t.Run(fmt.Sprintf("%s/%s/%s/%s", tt.policy, tt.qname, dns.TypeToString[tt.qtype], tt.ecs), func(t *testing.T) {
			rnd.Store(uint64(tt.rand * 1e6))
			for _, proto := range []string{"udp", "tcp"} {
				addr := a.udp
				if proto == "tcp" {
					addr = a.srv.TCPAddr().String()
				}
				r := query(t, proto, addr, tt.qname, tt.qtype, tt.ecs)
				if r.Rcode != dns.RcodeSuccess || !r.Authoritative || joined(r) != tt.want || scope(r) != tt.scope {
					t.Errorf("%s: %s aa=%v %v scope %d, want %s scope %d", proto, dns.RcodeToString[r.Rcode], r.Authoritative, answers(r), scope(r), tt.want, tt.scope)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != 30 || rr.Header().Name != tt.qname {
						t.Errorf("answer %v: want ttl 30 and owner %s", rr, tt.qname)
					}
				}
			}
		})
	}
}

func TestAppServiceHealth(t *testing.T) {
	a := startApps(t, "geo", Options{})
	const paris = "203.0.113.0/24"
	live := func() string { return joined(query(t, "udp", a.udp, "live.cdn.example.com.", dns.TypeA, paris)) }
	app := func() string { return joined(query(t, "udp", a.udp, "app.cdn.example.com.", dns.TypeA, paris)) }
	if got := live(); got != "127.0.0.13" {
		t.Fatalf("before: %s", got)
	}
	// eu-west-1's IPv4 listener dies, its IPv6 one lives: the region is
	// healthy for AAAA only, so A goes to us-east-1
	a.euLive.Close()
	took := eventually(t, "eu-west-1 leaves the live A answers", func() bool { return live() == "127.0.0.12" })
	t.Logf("a dead endpoint left the answers after %v (interval 100ms, failAfter 2)", took.Round(time.Millisecond))
	if got := joined(query(t, "udp", a.udp, "live.cdn.example.com.", dns.TypeAAAA, paris)); got != "::1" {
		t.Errorf("AAAA after eu's IPv4 endpoint died: %s, want ::1", got)
	}
	st := a.srv.State()
	if len(st.Services) != 3 {
		t.Fatalf("state services = %+v", st.Services)
	}
	ls := st.Services[0]
	if ls.Hostname != "live.cdn.example.com" || ls.App != "video" || ls.Service != "rtmp" || ls.Health != "tcp" || len(ls.Regions) != 2 {
		t.Fatalf("live state = %+v", ls)
	}
	eu := ls.Regions[1]
	if eu.Name != "eu-west-1" || !eu.Healthy || len(eu.Endpoints) != 2 || eu.Endpoints[0].Healthy || !eu.Endpoints[0].Probed || eu.Endpoints[0].LastError == "" || !eu.Endpoints[1].Healthy {
		t.Errorf("eu-west-1 live state = %+v", eu)
	}
	if idle := st.Services[2]; idle.Hostname != "idle.cdn.example.com" || len(idle.Regions) != 0 || idle.FailOpen {
		t.Errorf("idle state = %+v", idle)
	}
	// the CDN hostnames are untouched
	if got := joined(query(t, "udp", a.udp, "www.cdn.example.com.", dns.TypeA, paris)); got != "127.0.0.3" {
		t.Errorf("www after an app endpoint died: %s", got)
	}

	// us-east-1's listener dies too: no IPv4 endpoint is healthy, so A
	// fails open (geo: the nearest of the regions that list one), while
	// eu-west-1 stays healthy for AAAA
	a.usLive.Close()
	eventually(t, "live A fails open", func() bool { return live() == "127.0.0.13" })
	if st := a.srv.State().Services[0]; st.FailOpen || st.Regions[0].Healthy || !st.Regions[1].Healthy {
		t.Errorf("live state = %+v", st)
	}

	// http: the app's endpoint answers 503, then 200 again
	if got := app(); got != "127.0.0.23" {
		t.Fatalf("app before: %s", got)
	}
	a.euApp.status.Store(503)
	eventually(t, "app region goes down", func() bool { return !a.srv.State().Services[1].Regions[0].Healthy })
	if got := app(); got != "127.0.0.23" {
		t.Errorf("app with its only region down: %s, want fail open", got)
	}
	a.euApp.status.Store(200)
	eventually(t, "app region comes back", func() bool { return a.srv.State().Services[1].Regions[0].Healthy })
	if a.euApp.hits.Load() < 3 {
		t.Errorf("app endpoint probed %d times", a.euApp.hits.Load())
	}

	body := getBody(t, "http://"+a.admin+"/metrics")
	for _, want := range []string{
		`kubecdn_dns_service_healthy{region="eu-west-1",service="live.cdn.example.com"} 1`,
		`kubecdn_dns_service_healthy{region="us-east-1",service="live.cdn.example.com"} 0`,
		`kubecdn_dns_service_endpoint_healthy{endpoint="` + a.euLive.addr + `",region="eu-west-1",service="live.cdn.example.com"} 0`,
		`kubecdn_dns_service_transitions_total{region="us-east-1",service="live.cdn.example.com",state="down"} 1`,
		`kubecdn_dns_service_transitions_total{region="eu-west-1",service="app.cdn.example.com",state="up"} 1`,
		`kubecdn_dns_service_answers_total{region="us-east-1",service="live.cdn.example.com"}`,
		`kubecdn_dns_region_healthy{region="eu-west-1"} 1`,
		`kubecdn_dns_fail_open 0`, // the CDN hostnames do not fail open
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `service="idle.cdn.example.com"`) {
		t.Error("metrics have series for a service no region lists")
	}
}

func TestAppServiceNames(t *testing.T) {
	a := startApps(t, "failover", Options{})
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer string
		soa    bool
	}{
		{"service mx is nodata", "live.cdn.example.com.", dns.TypeMX, dns.RcodeSuccess, "", true},
		{"below a service is nxdomain", "x.live.cdn.example.com.", dns.TypeA, dns.RcodeNameError, "", true},
		{"service without endpoints is nodata", "idle.cdn.example.com.", dns.TypeA, dns.RcodeSuccess, "", true},
		{"service aaaa where no region has ipv6", "app.cdn.example.com.", dns.TypeAAAA, dns.RcodeSuccess, "", true},
		{"region name, whatever the policy", "us-east-1.edges.cdn.example.com.", dns.TypeA, dns.RcodeSuccess, "127.0.0.2,127.0.0.4", false},
		{"region name case preserved", "EU-West-1.Edges.cdn.example.com.", dns.TypeA, dns.RcodeSuccess, "127.0.0.3", false},
		{"region name aaaa", "eu-west-1.edges.cdn.example.com.", dns.TypeAAAA, dns.RcodeSuccess, "::1", false},
		{"region name aaaa without ipv6 edges", "us-east-1.edges.cdn.example.com.", dns.TypeAAAA, dns.RcodeSuccess, "", true},
		{"region name txt is nodata", "us-east-1.edges.cdn.example.com.", dns.TypeTXT, dns.RcodeSuccess, "", true},
		{"region without edges is nxdomain", "ap-southeast-1.edges.cdn.example.com.", dns.TypeA, dns.RcodeNameError, "", true},
		{"unknown region is nxdomain", "mars-1.edges.cdn.example.com.", dns.TypeA, dns.RcodeNameError, "", true},
		{"edges. is an empty non-terminal", "edges.cdn.example.com.", dns.TypeA, dns.RcodeSuccess, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := query(t, "udp", a.udp, tt.qname, tt.qtype, "203.0.113.0/24")
			if r.Rcode != tt.rcode || !r.Authoritative || joined(r) != tt.answer {
				t.Errorf("%s aa=%v %v, want %s %q", dns.RcodeToString[r.Rcode], r.Authoritative, answers(r), dns.RcodeToString[tt.rcode], tt.answer)
			}
			if got := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA; got != tt.soa {
				t.Errorf("authority %v, want SOA %v", r.Ns, tt.soa)
			}
			if scope(r) != 0 {
				t.Errorf("scope %d, want 0 (failover and region names do not depend on the client)", scope(r))
			}
		})
	}
	st := a.srv.State()
	if st.Regions[0].EdgesName != "us-east-1.edges.cdn.example.com." || st.Regions[2].EdgesName != "" {
		t.Errorf("edges names = %q, %q", st.Regions[0].EdgesName, st.Regions[2].EdgesName)
	}

	// region names: only the healthy edges, all of them when none is
	a.usEdges[0].srv.Close()
	eventually(t, "a dead us edge leaves its region name", func() bool {
		return joined(query(t, "udp", a.udp, "us-east-1.edges.cdn.example.com.", dns.TypeA, "")) == "127.0.0.4"
	})
	a.usEdges[1].srv.Close()
	eventually(t, "us-east-1 is down", func() bool { return !a.srv.State().Regions[0].Healthy })
	if got := joined(query(t, "udp", a.udp, "us-east-1.edges.cdn.example.com.", dns.TypeA, "")); got != "127.0.0.2,127.0.0.4" {
		t.Errorf("region name with every edge down: %s, want both (fail open)", got)
	}

	// demand counts the app services, not the region names
	before := demandTotal(t, a.admin)
	query(t, "udp", a.udp, "live.cdn.example.com.", dns.TypeA, "203.0.113.0/24")
	query(t, "udp", a.udp, "eu-west-1.edges.cdn.example.com.", dns.TypeA, "203.0.113.0/24")
	if got := demandTotal(t, a.admin); got != before+1 {
		t.Errorf("demand %d -> %d, want +1 (the app service query only)", before, got)
	}
}

func demandTotal(t *testing.T, admin string) uint64 {
	t.Helper()
	dv := getJSON[adminapi.DemandView](t, "http://"+admin+"/v1/demand")
	n := dv.Unlocated.Total
	for _, d := range dv.Regions {
		n += d.Total
	}
	return n
}

func TestReloadKeepsEndpointHealth(t *testing.T) {
	a := startApps(t, "geo", Options{})
	a.usLive.Close()
	eventually(t, "us live endpoint down", func() bool { return !a.srv.State().Services[0].Regions[0].Healthy })
	before := a.srv.State().Services[0].Regions[0].Endpoints[0]
	// the same endpoints, another policy, and a new endpoint in us-east-1
	extra := startTCPService(t, "127.0.0.14")
	a.write(t, "all", func(c *config.CDN) {
		c.Spec.Regions.AlwaysOn[0].Endpoints["live.cdn.example.com"] = []string{a.usLive.addr, extra.addr}
	})
	if err := a.srv.Reload(a.load(t)); err != nil {
		t.Fatal(err)
	}
	st := a.srv.State()
	us := st.Services[0].Regions[0]
	if st.Policy != "all" || len(us.Endpoints) != 2 {
		t.Fatalf("after reload: %+v", st)
	}
	if got := us.Endpoints[0]; got.Healthy || !got.Probed || !got.Since.Equal(before.Since) {
		t.Errorf("kept endpoint after reload = %+v, want %+v (state kept)", got, before)
	}
	// until the new endpoint's first probe it counts as up; then it is up
	eventually(t, "new endpoint probed", func() bool { return a.srv.State().Services[0].Regions[0].Endpoints[1].Probed })
	if got := joined(query(t, "udp", a.udp, "live.cdn.example.com.", dns.TypeA, "")); got != "127.0.0.14,127.0.0.13" {
		t.Errorf("after reload (all): %s", got)
	}
	// a changed check is a new state
	a.write(t, "all", func(c *config.CDN) {
		c.Spec.Apps[0].Services[0].Health = config.AppHealth{Protocol: "http", Path: "/"}
	})
	if err := a.srv.Reload(a.load(t)); err != nil {
		t.Fatal(err)
	}
	if got := a.srv.State().Services[0].Regions[0].Endpoints[0]; got.Probed && got.Since.Equal(before.Since) {
		t.Errorf("endpoint state kept across a change of its check: %+v", got)
	}
	// removed endpoints leave the metrics
	a.write(t, "all", func(c *config.CDN) {
		c.Spec.Regions.AlwaysOn[1].Endpoints["live.cdn.example.com"] = []string{a.euLive.addr}
	})
	if err := a.srv.Reload(a.load(t)); err != nil {
		t.Fatal(err)
	}
	if body := getBody(t, "http://"+a.admin+"/metrics"); strings.Contains(body, `endpoint="`+a.euLiv6.addr+`"`) {
		t.Errorf("metrics keep a removed endpoint")
	}
}

func TestRebuildReusesUnchangedTargets(t *testing.T) {
	a := startApps(t, "geo", Options{})
	v := a.srv.view.Load()
	a.euApp.status.Store(500)
	eventually(t, "app down", func() bool { return !a.srv.State().Services[1].Regions[0].Healthy })
	nv := a.srv.view.Load()
	if nv == v || nv.targetView != v.targetView || nv.services[0] != v.services[0] || nv.services[1] == v.services[1] {
		t.Error("an app endpoint's change should rebuild that service's answers only")
	}
}

func TestAppServiceLatencyFeed(t *testing.T) {
	a := startApps(t, "latency", Options{})
	const paris = "203.0.113.0/24"
	live := func() string { return joined(query(t, "udp", a.udp, "live.cdn.example.com.", dns.TypeA, paris)) }
	if got := live(); got != "127.0.0.13" {
		t.Fatalf("by distance estimate: %s, want eu-west-1", got)
	}
	// the edges measure Paris closer to us-east-1: the cached app answer
	// for Paris is dropped with the hostnames'
	nw := netip.MustParsePrefix(paris)
	edge := netip.MustParseAddr("127.0.0.1")
	if err := a.srv.AddRTT(edge, "us-east-1", []rtt.ParsedSample{{Net: nw, RTTMs: 20, Count: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.AddRTT(edge, "eu-west-1", []rtt.ParsedSample{{Net: nw, RTTMs: 80, Count: 5}}); err != nil {
		t.Fatal(err)
	}
	if got := live(); got != "127.0.0.12" {
		t.Errorf("after rtt reports: %s, want us-east-1 (measured faster)", got)
	}
}
