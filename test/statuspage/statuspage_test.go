// Package statuspage_test renders the status page in headless Chromium
// (Debian's `chromium`) over fake edges and a fake dns on loopback, checks
// the DOM after the server-sent events arrived, and writes a screenshot.
//
// Run with `go test ./test/statuspage/`. A missing chromium skips the test
// unless CI=true. Screenshots go to $KUBECDN_SCREENSHOT_DIR if set, else to
// the test's temporary directory; the path is logged.
package statuspage_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/opstest"
	"github.com/kubecdn/kubecdn/internal/statuspage"
	"github.com/kubecdn/kubecdn/test/e2e"
)

// fakeSource is what `kubecdn up` gives the page: its regions, and which
// region answers which client network.
type fakeSource struct {
	targets  []ops.Target
	networks []ops.NetworkRoute
}

func (f *fakeSource) Regions(context.Context) ([]ops.Target, error) { return f.targets, nil }

func (f *fakeSource) Networks(context.Context, []ops.Target) ([]ops.NetworkRoute, error) {
	return f.networks, nil
}

func TestStatusPageInChromium(t *testing.T) {
	bin := e2e.Chromium(t)
	const tok = "t"
	east1, east2, west := opstest.NewFakeEdge(t, tok), opstest.NewFakeEdge(t, tok), opstest.NewFakeEdge(t, tok)
	ap := opstest.NewFakeEdge(t, tok)
	ap.SetHealthy(false)
	for _, e := range []*opstest.FakeEdge{east1, east2} {
		e.Add("hit", 10, 0)
		e.Add("miss", 90, 300<<20)
		e.SetFill(96<<20, 1536<<20)
		// Every look sees 40 more hits and 8 more misses: a hit ratio of
		// 83.3% over any interval, 33.8% since the start before that.
		e.OnScrape(func(e *opstest.FakeEdge) { e.Add("hit", 40, 4<<20); e.Add("miss", 8, 1<<20) })
	}
	west.Add("hit", 700, 2<<30)
	west.Add("miss", 300, 512<<20)
	west.SetFill(200<<20, 800<<20)
	west.OnScrape(func(e *opstest.FakeEdge) { e.Add("hit", 3, 1<<20); e.Add("miss", 1, 1<<10) })

	d := opstest.NewFakeDNS(t, adminapi.State{Zone: "cdn.localhost", Policy: "geo", Regions: []adminapi.RegionState{
		{Name: "us-east-1", Serving: true, Healthy: true, Demand: adminapi.DemandRate{Region: "us-east-1", Total: 18230, Rate10s: 41.5, Rate1m: 39.2}},
		{Name: "us-west-2", Serving: true, Healthy: true, Demand: adminapi.DemandRate{Region: "us-west-2", Total: 2210, Rate10s: 3.1, Rate1m: 4}},
		{Name: "ap-southeast-1", Serving: true, Healthy: false, Demand: adminapi.DemandRate{Region: "ap-southeast-1", Total: 120, Rate10s: 0.2, Rate1m: 0.3}},
		{Name: "eu-west-1", Autoscale: true, Demand: adminapi.DemandRate{Region: "eu-west-1", Total: 5120, Rate10s: 12.8, Rate1m: 11.1}},
	}, Unlocated: adminapi.DemandRate{Region: "unknown", Total: 12, Rate10s: 0.1}})

	evil := `<img src=x onerror="document.body.dataset.pwned=1">`
	src := &fakeSource{
		targets: []ops.Target{
			{Region: "us-east-1", State: ops.StateOpen, Admin: []string{east1.URL(), east2.URL()}, Public: []string{"127.0.0.2:8080", "127.0.0.3:8080"}, DNSAdmin: d.URL()},
			{Region: "us-west-2", State: ops.StateOpen, Admin: []string{west.URL()}, Public: []string{"127.0.0.4:8080"}, DNSAdmin: d.URL()},
			{Region: "ap-southeast-1", State: ops.StateOpen, Admin: []string{ap.URL()}, Public: []string{"127.0.0.5:8080"}, DNSAdmin: d.URL()},
			{Region: "eu-west-1", State: ops.StateClosed, DNSAdmin: d.URL()},
		},
		networks: []ops.NetworkRoute{
			{Network: "192.0.2.0/24", Label: "New York", Region: "us-east-1", Addrs: []string{"127.0.0.2", "127.0.0.3"}},
			{Network: "198.51.100.0/24", Label: "San Francisco", Region: "us-west-2", Addrs: []string{"127.0.0.4"}},
			{Network: "203.0.113.0/24", Label: "Dublin " + evil, Region: "us-east-1", Addrs: []string{"127.0.0.2", "127.0.0.3"}},
			{Network: "2001:db8:100::/48", Label: "Singapore", Region: "us-west-2", Addrs: []string{"127.0.0.4"}},
		},
	}
	const interval = 500 * time.Millisecond
	srv := httptest.NewServer(statuspage.Handler(src, statuspage.Options{Title: "kubecdn demo " + evil, Interval: interval}))
	t.Cleanup(srv.Close) // after the browser is gone (cleanups run last first)

	// Two looks before the browser comes, so its first event has rates.
	for range 2 {
		resp, err := http.Get(srv.URL + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(interval)
	}

	ctx, cancel := context.WithTimeout(e2e.StartBrowser(t, bin), 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	// Two events over SSE: the second arrives by itself, an Interval later.
	updated := `document.body.dataset.transport === "sse" && +document.body.dataset.updates >= 2`
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](updated, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(0))); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.transport + " " + document.body.dataset.updates`))
		t.Fatalf("waiting for %s: %v (transport and updates: %s)", updated, err, state)
	}
	dom, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.documentElement.outerHTML"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`data-transport="sse"`,
		`data-region="us-east-1"`, `data-region="us-west-2"`, `data-region="ap-southeast-1"`, `data-region="eu-west-1"`,
		">83.3%<",   // us-east-1's hit ratio over the interval: only after an update
		">3.2 GiB<", // us-east-1's cache fill, 2 × (96 MiB + 1.5 GiB), from the edges' metrics
		">cdn.localhost · geo<",
		">198.51.100.0/24<", ">San Francisco<",
		">41.5 q/s<",               // demand from the dns
		`class="pill c-red">down<`, // ap-southeast-1: its edge fails /healthz, the dns marks it unhealthy
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %s", want)
		}
	}
	if strings.Contains(dom, "data-pwned") || strings.Contains(dom, `<img src="x"`) {
		t.Errorf("markup from the data was rendered as HTML")
	}
	if !strings.Contains(dom, "Dublin &lt;img src=x") {
		t.Errorf("the escaped label is missing")
	}
	if testing.Verbose() {
		t.Logf("DOM:\n%s", dom)
	}

	dir := os.Getenv("KUBECDN_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "statuspage.png")
	os.Remove(shot)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(shot)
	if err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v (size %d)", shot, err, sizeOf(st))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, st.Size())
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}
