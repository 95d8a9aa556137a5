// Package up_test runs `kubecdn up` end to end: the test builds the binary
// once, starts `up` with a file on free loopback addresses (127.0.0.6x and
// free ports, so a `kubecdn up` on the default ports keeps running beside
// it), and checks what a newcomer sees: the dns sends two client networks to
// two regions, each region's edge caches (miss, then hit), a purge makes the
// next request a miss, a region taken down leaves the dns answers within the
// health window, and Ctrl-C frees every port.
//
// Set KUBECDN_BIN=/path/to/kubecdn to test a binary built elsewhere, and
// CI=true to make a missing dig a failure instead of a skip.
package up_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

// binPath is the kubecdn binary built by TestMain (set once, read only).
var binPath string

func TestMain(m *testing.M) { e2e.Main(m, &binPath) }

// addr is one address up binds in a test.
type addr struct {
	hostport string
	udp      bool
}

// freePort returns a port free on ip a moment ago.
func freePort(t *testing.T, ip string) int {
	t.Helper()
	// Loopback IPs beyond 127.0.0.1 must work without setup on Linux.
	return e2e.FreePort(t, ip)
}

// freeEdgePort returns a port p free on ip with p+1010 (the edge's admin
// port as up assigns it) free too.
func freeEdgePort(t *testing.T, ip string) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := freePort(t, ip)
		if p+1010 > 65535 {
			continue
		}
		if ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, p+1010)); err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

// freeDNSAddr returns 127.0.0.1:p with p free for UDP and TCP.
func freeDNSAddr(t *testing.T) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := freePort(t, "127.0.0.1")
		a := fmt.Sprintf("127.0.0.1:%d", p)
		if c, err := net.ListenPacket("udp", a); err == nil {
			c.Close()
			return a
		}
	}
	t.Fatal("no free dns port")
	return ""
}

// testCDN is one `up` run: its file, flags and addresses.
type testCDN struct {
	dir                    string
	file                   string
	east, west             string // edge public addresses
	eastAdmin, westAdmin   string
	dns, dnsAdmin, control string
	origin                 string
	args                   []string
}

const hostname = "www.cdn.test"

func newTestCDN(t *testing.T) *testCDN {
	t.Helper()
	c := &testCDN{dir: t.TempDir()}
	pe, pw := freeEdgePort(t, "127.0.0.62"), freeEdgePort(t, "127.0.0.63")
	c.east, c.eastAdmin = fmt.Sprintf("127.0.0.62:%d", pe), fmt.Sprintf("127.0.0.62:%d", pe+1010)
	c.west, c.westAdmin = fmt.Sprintf("127.0.0.63:%d", pw), fmt.Sprintf("127.0.0.63:%d", pw+1010)
	c.dns = freeDNSAddr(t)
	c.dnsAdmin = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.control = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.origin = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	pc := freeEdgePort(t, "127.0.0.64")
	cdn := configtest.Minimal()
	cdn.Metadata.Name = "up-e2e"
	cdn.Spec.Zone = "cdn.test"
	cdn.Spec.Hostnames = []string{hostname}
	cdn.Spec.Origin = config.Origin{URL: "http://" + c.origin}
	cdn.Spec.Routing = config.Routing{Policy: config.PolicyGeo, TTL: configtest.Duration(t, "5s"), Geo: config.Geo{Networks: []config.GeoNetwork{
		configtest.Network("192.0.2.0/24", 40.7, -74.0),     // New York
		configtest.Network("198.51.100.0/24", 37.8, -122.4), // San Francisco
		configtest.Network("203.0.113.0/24", 53.3, -6.3),    // Dublin
	}}}
	west := configtest.Region("us-west-2", "local", c.west)
	west.Parent = "us-east-1"
	cdn.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.Region("us-east-1", "local", c.east), west},
		Autoscale: []config.Region{configtest.Region("eu-west-1", "local", fmt.Sprintf("127.0.0.64:%d", pc))},
	}
	c.file = configtest.Write(t, c.dir, cdn)
	c.args = []string{"up", "-f", c.file, "--demo", "--dns", c.dns, "--dns-admin", c.dnsAdmin,
		"--control", c.control, "--origin-addr", c.origin}
	return c
}

// addrs are every address the run binds while all its open regions run.
func (c *testCDN) addrs() []addr {
	return []addr{{c.east, false}, {c.eastAdmin, false}, {c.west, false}, {c.westAdmin, false},
		{c.dns, true}, {c.dns, false}, {c.dnsAdmin, false}, {c.control, false}, {c.origin, false}}
}

// upProc is a running `kubecdn up`.
type upProc = e2e.UpProc

func startUp(t *testing.T, args ...string) *upProc {
	t.Helper()
	return e2e.StartUp(t, binPath, args...)
}

func tail(s string, n int) string { return e2e.Tail(s, n) }

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// get fetches path through an edge with the CDN's Host.
func get(t *testing.T, edge, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+edge+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = hostname
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", edge, path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading %s%s: %v", edge, path, err)
	}
	return resp, body
}

// ownStatus is this edge's entry of Cache-Status: the last one (RFC 9211:
// each cache appends its own).
func ownStatus(resp *http.Response) string {
	v := strings.Join(resp.Header.Values("Cache-Status"), ", ")
	parts := strings.Split(v, ",")
	return strings.TrimSpace(parts[len(parts)-1])
}

// checkFree binds every address again: nothing of up may hold one.
func checkFree(t *testing.T, as []addr) {
	t.Helper()
	for _, a := range as {
		if a.udp {
			c, err := net.ListenPacket("udp", a.hostport)
			if err != nil {
				t.Errorf("%s/udp still bound: %v", a.hostport, err)
				continue
			}
			c.Close()
			continue
		}
		ln, err := net.Listen("tcp", a.hostport)
		if err != nil {
			t.Errorf("%s/tcp still bound: %v", a.hostport, err)
			continue
		}
		ln.Close()
	}
}

// run runs the kubecdn binary and returns its combined output.
func run(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	return string(out), err
}
