package local

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

// TestUpUringHitsFeedRTT: under up, the connections the edge serves from
// its io_uring loop feed round-trip times to the dns like the others. (The
// loop has no net.Conn: before the edge took one observer for every tier,
// up wired the net/http and goroutine hook and not the loop's, so the
// latency policy learnt nothing from most hits.) The hits come from
// 127.0.2.1, a client network nothing else uses: the dns's count of known
// networks grows by one exactly when a hit served by the loop was
// observed.
func TestUpUringHitsFeedRTT(t *testing.T) {
	edgeAddr := fmt.Sprintf("127.0.0.56:%d", freeEdgePort(t, "127.0.0.56"))
	u, dnsAdmin := startLatencyUp(t, edgeAddr, 50*time.Millisecond)
	waitStatus(t, "http://"+edgeAddr+"/.well-known/kubecdn/health", 200)

	// The object into the memory tier, from another network (the miss
	// leaves the loop for the goroutine path).
	warm := dialFrom(t, "127.0.1.1", edgeAddr)
	for i := 0; i < 2; i++ {
		get(t, warm, "/assets/style.css")
	}
	warm.Close()
	// Every network seen so far has been reported: the count stays put.
	base := stableNetworks(t, dnsAdmin)

	hit := dialFrom(t, "127.0.2.1", edgeAddr)
	defer hit.Close()
	if cs := get(t, hit, "/assets/style.css"); !strings.Contains(cs, "hit") {
		t.Fatalf("Cache-Status %q, want a hit", cs)
	}
	// The connection sent only a hit, so it is still the loop's if the
	// loop serves at all.
	edgeAdmin := u.Layout().Regions[0].Edges[0].Admin
	if n := metric(t, "http://"+edgeAdmin+"/metrics", "kubecdn_edge_uring_connections"); n < 1 {
		t.Skip("the edge does not serve from io_uring on this machine (kernel or seccomp); nothing to check")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := metric(t, "http://"+dnsAdmin+"/metrics", "kubecdn_dns_rtt_networks")
		if n == base+1 {
			break
		}
		if n > base+1 || time.Now().After(deadline) {
			t.Fatalf("the dns knows %v client networks, want %v: the hit served from io_uring (127.0.2.0/24) was not observed", n, base+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startLatencyUp runs up with the demo origin and one region, us-east-1,
// whose one edge listens on edgeAddr, under the latency policy; the edges
// report round-trip times every interval (zero: the default). It returns
// up and its dns's admin address; up stops when the test ends.
func startLatencyUp(t *testing.T, edgeAddr string, interval time.Duration) (*Up, string) {
	t.Helper()
	c := localCDN([]config.Region{configtest.Region("us-east-1", "local", edgeAddr)}, nil)
	c.Spec.Routing = config.Routing{Policy: config.PolicyLatency, Health: fastHealth(t)}
	dnsAdmin := freeTCP(t, "127.0.0.1")
	u, err := New(configtest.Parse(t, c), Options{
		PlanOptions: PlanOptions{Demo: true, DNS: freeTCP(t, "127.0.0.1"), DNSAdmin: dnsAdmin,
			Control: freeTCP(t, "127.0.0.1"), OriginAddr: freeTCP(t, "127.0.0.1")},
		DemoLargeSize: 1 << 20, TokenFile: t.TempDir() + "/token",
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		RestartBackoff:    10 * time.Millisecond,
		RTTReportInterval: interval,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return u, dnsAdmin
}

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	return c
}

// get sends one GET on c, reads the whole response and returns its
// Cache-Status.
func get(t *testing.T, c net.Conn, path string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: www.cdn.test\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
	}
	return resp.Header.Get("Cache-Status")
}

// stableNetworks waits until the dns's count of client networks holds for
// several report intervals, and returns it.
func stableNetworks(t *testing.T, dnsAdmin string) float64 {
	t.Helper()
	last, same := -1.0, 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := metric(t, "http://"+dnsAdmin+"/metrics", "kubecdn_dns_rtt_networks")
		if n == last {
			if same++; same == 6 {
				return n
			}
			continue
		}
		last, same = n, 0
	}
	t.Fatal("the dns's count of client networks never settled")
	return 0
}

// metric reads one unlabelled sample from a Prometheus text page.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no %s", url, name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
