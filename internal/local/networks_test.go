package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/statuspage"
)

// demandOf reads the dns's demand per region (and "unknown").
func demandOf(t *testing.T, admin string) map[string]uint64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + adminapi.DemandPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dv adminapi.DemandView
	if err := json.NewDecoder(resp.Body).Decode(&dv); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{"unknown": dv.Unlocated.Total}
	for _, d := range dv.Regions {
		out[d.Region] = d.Total
	}
	return out
}

// TestStatusPageLookupsAreNoDemand runs up with the real status page
// collecting every 50 ms: its per-network lookups show which region answers
// each network, and the dns's demand counters do not move; a real query
// with EDNS Client Subnet from Dublin still counts for eu-west-1.
func TestStatusPageLookupsAreNoDemand(t *testing.T) {
	ipA, ipB := "127.0.0.56", "127.0.0.57"
	pa, pb := freeEdgePort(t, ipA), freeEdgePort(t, ipB)
	c := localCDN([]config.Region{configtest.Region("us-east-1", "local", fmt.Sprintf("%s:%d", ipA, pa))},
		[]config.Region{configtest.Region("eu-west-1", "local", fmt.Sprintf("%s:%d", ipB, pb))})
	newYork, dublin := configtest.Network("192.0.2.0/24", 40.7, -74.0), configtest.Network("203.0.113.0/24", 53.3, -6.3)
	newYork.Label, dublin.Label = "New York", "Dublin"
	c.Spec.Routing = config.Routing{Policy: config.PolicyGeo, Health: fastHealth(t), Geo: config.Geo{Networks: []config.GeoNetwork{newYork, dublin}}}
	u, err := New(configtest.Parse(t, c), Options{
		PlanOptions: PlanOptions{DNS: freeTCP(t, "127.0.0.1"), DNSAdmin: freeTCP(t, "127.0.0.1"),
			Control: freeTCP(t, "127.0.0.1")},
		AdminToken: "tok", TokenFile: t.TempDir() + "/token",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StatusPage: func(src Source) http.Handler {
			return statuspage.Handler(src, statuspage.Options{Interval: 50 * time.Millisecond})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- u.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitStatus(t, fmt.Sprintf("http://%s:%d/.well-known/kubecdn/health", ipA, pa), 200)
	lay := u.Layout()
	before := demandOf(t, lay.DNSAdmin)

	// The status page, polled for about a second, collects each time.
	var last statuspage.Status
	for range 20 {
		resp, err := http.Get("http://" + lay.Control + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		last = statuspage.Status{}
		err = json.NewDecoder(resp.Body).Decode(&last)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := map[string]string{}
	for _, n := range last.Networks {
		got[n.Label] = n.Region + " " + fmt.Sprint(n.Addrs) + n.Error
	}
	want := map[string]string{"New York": fmt.Sprintf("us-east-1 [%s]", ipA), "Dublin": fmt.Sprintf("us-east-1 [%s]", ipA)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status page networks = %v, want %v (eu-west-1 is closed)", got, want)
	}
	if after := demandOf(t, lay.DNSAdmin); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the status page's lookups moved the dns demand: before %v, after %v", before, after)
	}

	// A user's resolver in Dublin does count, for the closed eu-west-1.
	m := new(dns.Msg)
	m.SetQuestion("www.cdn.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	p := netip.MustParsePrefix("203.0.113.0/24")
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: p.Addr().AsSlice()})
	dc := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	if _, _, err := dc.Exchange(m, lay.DNS); err != nil {
		t.Fatal(err)
	}
	if after := demandOf(t, lay.DNSAdmin); after["eu-west-1"] != before["eu-west-1"]+1 {
		t.Errorf("a real ECS query from Dublin: eu-west-1 demand %d, want %d", after["eu-west-1"], before["eu-west-1"]+1)
	}
}
