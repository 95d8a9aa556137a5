package dns_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
)

// rtmpListener is a stand-in for a video server's RTMP port: a TCP
// listener that accepts and closes connections until closed.
func rtmpListener(t *testing.T, ip string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", ip+":1935")
	if err != nil { // taken: any free port does
		if l, err = net.Listen("tcp", ip+":0"); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l
}

// appsCDNFile is a CDN of two regions, each with one edge and an endpoint
// of the video app's rtmp service, routed by geo (New York and Paris).
func appsCDNFile(usEdge, usLive, euEdge, euLive string) *config.CDN {
	c := configtest.Minimal()
	c.Metadata.Name = "e2e-apps"
	c.Spec.Origin = config.Origin{Dir: "./public"}
	c.Spec.Routing.Policy = config.PolicyGeo
	c.Spec.Routing.Geo.Networks = []config.GeoNetwork{
		configtest.Network("198.51.100.0/24", 40.7, -74.0),
		configtest.Network("203.0.113.0/24", 48.9, 2.4),
	}
	c.Spec.DNS.Nameservers = []config.Nameserver{{Name: "ns1.cdn.example.com", Addresses: []string{"192.0.2.53"}}}
	c.Spec.Apps = []config.App{{Name: "video", Manifests: "./video", Services: []config.AppService{
		{Service: "rtmp", Hostname: "live.cdn.example.com", Port: 1935, Health: config.AppHealth{Protocol: "tcp"}},
	}}}
	us := configtest.Region("us-east-1", "aws", usEdge)
	us.Endpoints = map[string][]string{"live.cdn.example.com": {usLive}}
	eu := configtest.Region("eu-west-1", "aws", euEdge)
	eu.Parent = "us-east-1"
	eu.Endpoints = map[string][]string{"live.cdn.example.com": {euLive}}
	c.Spec.Regions.AlwaysOn = []config.Region{us, eu}
	return c
}

var anyAddrRe = regexp.MustCompile(`(?m)^\S+\s+\d+\s+IN\s+(?:A|AAAA)\s+(\S+)$`)

func digAddrs(t *testing.T, bin, port string, args ...string) string {
	t.Helper()
	out := run(t, bin, append([]string{"@127.0.0.1", "-p", port, "+noall", "+answer", "+tries=1", "+time=1"}, args...)...)
	var ips []string
	for _, m := range anyAddrRe.FindAllStringSubmatch(out, -1) {
		ips = append(ips, m[1])
	}
	return strings.Join(ips, ",")
}

// TestAppServiceAndRegionNames runs `kubecdn dns` with an app service (a
// fake RTMP server on TCP) in two regions: the nearest healthy region's
// endpoint is answered, a closed listener takes its region out of the
// answers within seconds, and "<region>.edges.<zone>" answers the region's
// edges.
func TestAppServiceAndRegionNames(t *testing.T) {
	dig := tool(t, "dig", "bind9-dnsutils")
	bin := buildKubecdn(t)
	dir := t.TempDir()
	for _, d := range []string{"public", "video"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, usEdge := startEdge(t, "127.0.0.2")
	_, euEdge := startEdge(t, "127.0.0.3")
	usLive, euLive := rtmpListener(t, "127.0.0.12"), rtmpListener(t, "127.0.0.13")
	file := configtest.Write(t, dir, appsCDNFile(usEdge, usLive.Addr().String(), euEdge, euLive.Addr().String()))
	port := fmt.Sprint(freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "dns", "-f", file, "--listen", "127.0.0.1:"+port, "--admin", admin)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("kubecdn dns log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubecdn dns not ready after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	const paris, ny = "+subnet=203.0.113.0/24", "+subnet=198.51.100.0/24"
	checks := []struct {
		name string
		args []string
		want string
	}{
		{"live from paris", []string{"live.cdn.example.com", "A", paris}, "127.0.0.13"},
		{"live from new york over tcp", []string{"live.cdn.example.com", "A", ny, "+tcp"}, "127.0.0.12"},
		{"www from new york", []string{"www.cdn.example.com", "A", ny}, "127.0.0.2"},
		{"parent region name", []string{"us-east-1.edges.cdn.example.com", "A", paris}, "127.0.0.2"},
		{"region name", []string{"eu-west-1.edges.cdn.example.com", "A", ny}, "127.0.0.3"},
		{"region name aaaa is nodata", []string{"eu-west-1.edges.cdn.example.com", "AAAA"}, ""},
	}
	for _, c := range checks {
		if got := digAddrs(t, dig, port, c.args...); got != c.want {
			t.Errorf("dig %s: %q, want %q", c.name, got, c.want)
		}
	}
	full := run(t, dig, "@127.0.0.1", "-p", port, "live.cdn.example.com", "A", "+norec", paris)
	for _, w := range []string{"status: NOERROR", "flags: qr aa;", "CLIENT-SUBNET: 203.0.113.0/24/24"} {
		if !strings.Contains(full, w) {
			t.Errorf("dig live lacks %q:\n%s", w, full)
		}
	}
	if out := run(t, dig, "@127.0.0.1", "-p", port, "ap-southeast-1.edges.cdn.example.com", "A"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("a region not in the file: %s", out)
	}
	if kdig, err := exec.LookPath("kdig"); err == nil {
		out := run(t, kdig, "@127.0.0.1", "-p", port, "+tcp", "us-east-1.edges.cdn.example.com", "A")
		if !strings.Contains(out, "IN\tA\t127.0.0.2") || !strings.Contains(out, "status: NOERROR") {
			t.Errorf("kdig region name:\n%s", out)
		}
		out = run(t, kdig, "@127.0.0.1", "-p", port, "live.cdn.example.com", "A", paris)
		if !strings.Contains(out, "IN\tA\t127.0.0.13") || !strings.Contains(out, "CLIENT-SUBNET: 203.0.113.0/24/24") {
			t.Errorf("kdig live:\n%s", out)
		}
	}

	// the RTMP server of eu-west-1 stops: Paris is sent to us-east-1
	euLive.Close()
	took := timeFailover(t, "eu-west-1's RTMP listener closed", func() string { return digAddrs(t, dig, port, "live.cdn.example.com", "A", paris) }, "127.0.0.12")
	t.Logf("eu-west-1 left the live answers %v after its RTMP listener closed (target about 3.5s)", took.Round(time.Millisecond))
	// the edges are untouched: www and the region name still name eu-west-1
	if got := digAddrs(t, dig, port, "www.cdn.example.com", "A", paris); got != "127.0.0.3" {
		t.Errorf("www from paris after the app failed over: %q", got)
	}
	if got := digAddrs(t, dig, port, "eu-west-1.edges.cdn.example.com", "A"); got != "127.0.0.3" {
		t.Errorf("region name after the app failed over: %q", got)
	}

	resp, err := http.Get("http://" + admin + "/v1/state")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Services []struct {
			Hostname string
			Regions  []struct {
				Name      string
				Healthy   bool
				Endpoints []struct {
					Addr      string
					Healthy   bool
					LastError string
				}
			}
		}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 1 || st.Services[0].Hostname != "live.cdn.example.com" || len(st.Services[0].Regions) != 2 ||
		!st.Services[0].Regions[0].Healthy || st.Services[0].Regions[1].Healthy || st.Services[0].Regions[1].Endpoints[0].LastError == "" {
		t.Errorf("state services:\n%s", b)
	}
	resp, err = http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{
		`kubecdn_dns_service_healthy{region="eu-west-1",service="live.cdn.example.com"} 0`,
		`kubecdn_dns_service_transitions_total{region="eu-west-1",service="live.cdn.example.com",state="down"} 1`,
	} {
		if !strings.Contains(string(b), w) {
			t.Errorf("metrics lack %q", w)
		}
	}
}
