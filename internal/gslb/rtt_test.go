package gslb

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/rtt"
)

const testToken = "test-admin-token"

// postReport POSTs body to the admin listener's /v1/rtt with token (none
// if empty) and returns the response, its body read and closed.
func postReport(t *testing.T, c *http.Client, admin, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+admin+"/v1/rtt", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// clientFrom is an HTTP client whose connections come from ip (any
// 127.0.0.0/8 address on loopback): a reporter of its own.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func reportJSON(t *testing.T, region string, samples ...rtt.Sample) string {
	t.Helper()
	b, err := json.Marshal(rtt.Report{Region: region, Samples: samples})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	parisNet   = "203.0.113.0/24"  // nearest eu-west-1 (127.0.0.3)
	newYorkNet = "198.51.100.0/24" // nearest us-east-1 (127.0.0.2)
)

// routes answers which edge Paris and New York are sent to.
func routes(t *testing.T, ts *testSetup) string {
	t.Helper()
	return strings.Join(answers(query(t, "udp", ts.udp, "www.cdn.example.com.", dns.TypeA, parisNet)), ",") + " " +
		strings.Join(answers(query(t, "udp", ts.udp, "www.cdn.example.com.", dns.TypeA, newYorkNet)), ",")
}

const (
	honestRoutes  = "127.0.0.3 127.0.0.2" // Paris to eu-west-1, New York to us-east-1
	swappedRoutes = "127.0.0.2 127.0.0.3"
)

// TestRTTReportsNeedTheToken: without the admin bearer token (none, a wrong
// one, or a dns that has none) a report is refused with 401 and changes
// nothing.
func TestRTTReportsNeedTheToken(t *testing.T) {
	for _, tt := range []struct {
		name, serverToken, clientToken string
		want                           int
	}{
		{"no token", testToken, "", http.StatusUnauthorized},
		{"wrong token", testToken, "guess", http.StatusUnauthorized},
		{"dns without a token refuses all", "", "anything", http.StatusUnauthorized},
		{"the token", testToken, testToken, http.StatusNoContent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, "latency", "1s", "500ms", Options{AdminToken: tt.serverToken})
			if got := routes(t, ts); got != honestRoutes {
				t.Fatalf("before any report: %s, want %s", got, honestRoutes)
			}
			for _, region := range []string{"us-east-1", "eu-west-1"} {
				ms := map[string]float64{"us-east-1": 1, "eu-west-1": 5000}[region]
				body := reportJSON(t, region, rtt.Sample{Net: parisNet, RTTMs: ms, Count: 1}, rtt.Sample{Net: newYorkNet, RTTMs: 5000 + 1 - ms, Count: 1})
				resp := postReport(t, http.DefaultClient, ts.admin, tt.clientToken, body)
				if resp.StatusCode != tt.want {
					t.Fatalf("POST /v1/rtt: %d, want %d", resp.StatusCode, tt.want)
				}
				if tt.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
				}
			}
			want := honestRoutes
			if tt.want == http.StatusNoContent {
				want = swappedRoutes // the one reporter is believed: it is all the dns has
			}
			if got := routes(t, ts); got != want {
				t.Errorf("after the reports: %s, want %s", got, want)
			}
			if n := ts.srv.rtt.size(); (n > 0) != (tt.want == http.StatusNoContent) {
				t.Errorf("rtt table holds %d networks", n)
			}
		})
	}
}

// TestForgedRTTReportsOutvoted performs the steering attack with the token:
// a forger claims, with the largest counts a report may carry and far more
// often than the edges report, that Paris is near us-east-1 and New York
// near eu-west-1. Alone it is believed; once the honest edges (two per
// region, from their own addresses) report, the answers swap back and stay
// back while the forger keeps at it.
func TestForgedRTTReportsOutvoted(t *testing.T) {
	ts := start(t, "latency", "1s", "500ms", Options{AdminToken: testToken})
	forger := clientFrom("127.0.0.66")
	forge := func() {
		t.Helper()
		for _, r := range []struct {
			region         string
			paris, newYork float64
		}{{"us-east-1", 1, 5000}, {"eu-west-1", 5000, 1}} {
			body := reportJSON(t, r.region, rtt.Sample{Net: parisNet, RTTMs: r.paris, Count: rtt.MaxSampleCount},
				rtt.Sample{Net: newYorkNet, RTTMs: r.newYork, Count: rtt.MaxSampleCount})
			if resp := postReport(t, forger, ts.admin, testToken, body); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("forged report: %d", resp.StatusCode)
			}
		}
	}
	// a count past the cap is refused outright
	huge := reportJSON(t, "us-east-1", rtt.Sample{Net: parisNet, RTTMs: 1, Count: 1e9})
	if resp := postReport(t, forger, ts.admin, testToken, huge); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("count 1e9: %d, want 400", resp.StatusCode)
	}
	forge()
	forge()
	if got := routes(t, ts); got != swappedRoutes {
		t.Fatalf("after the forger alone: %s, want the swap %s (the attack)", got, swappedRoutes)
	}

	edges := []struct {
		ip, region     string
		paris, newYork float64
	}{
		{"127.0.0.21", "us-east-1", 80, 12},
		{"127.0.0.22", "us-east-1", 84, 10},
		{"127.0.0.23", "eu-west-1", 11, 78},
		{"127.0.0.24", "eu-west-1", 9, 83},
	}
	honest := func() {
		t.Helper()
		for _, e := range edges {
			body := reportJSON(t, e.region, rtt.Sample{Net: parisNet, RTTMs: e.paris, Count: 3}, rtt.Sample{Net: newYorkNet, RTTMs: e.newYork, Count: 2})
			if resp := postReport(t, clientFrom(e.ip), ts.admin, testToken, body); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("honest report from %s: %d", e.ip, resp.StatusCode)
			}
		}
	}
	honest()
	if got := routes(t, ts); got != honestRoutes {
		t.Fatalf("after one honest round: %s, want %s", got, honestRoutes)
	}
	// The forger reports 20 times for every honest round, for 5 rounds.
	for round := 0; round < 5; round++ {
		for i := 0; i < 20; i++ {
			forge()
		}
		if got := routes(t, ts); got != honestRoutes {
			t.Fatalf("round %d, after the forger's flood: %s, want %s", round, got, honestRoutes)
		}
		honest()
	}
	for _, tt := range []struct {
		net, region string
		lo, hi      float64
	}{{parisNet, "us-east-1", 80, 84}, {parisNet, "eu-west-1", 9, 11}, {newYorkNet, "us-east-1", 10, 12}, {newYorkNet, "eu-west-1", 78, 83}} {
		ms, ok := ts.srv.rtt.lookup(netip.MustParsePrefix(tt.net), tt.region)
		if !ok || ms < tt.lo || ms > tt.hi {
			t.Errorf("estimate %s from %s: %v %v, want within the honest %v..%v", tt.net, tt.region, ms, ok, tt.lo, tt.hi)
		}
	}
}

// TestRTTReportBounds: counts, networks and bytes past the caps are
// refused before they reach the table.
func TestRTTReportBounds(t *testing.T) {
	ts := start(t, "latency", "1s", "500ms", Options{AdminToken: testToken})
	many := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"region":"us-east-1","samples":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"net":"10.%d.%d.0/24","rtt_ms":1,"count":1}`, i>>8&255, i&255)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	for _, tt := range []struct {
		name string
		body string
		want int
	}{
		{"count 1e9", `{"region":"us-east-1","samples":[{"net":"203.0.113.0/24","rtt_ms":1,"count":1000000000}]}`, http.StatusBadRequest},
		{"count 0", `{"region":"us-east-1","samples":[{"net":"203.0.113.0/24","rtt_ms":1,"count":0}]}`, http.StatusBadRequest},
		{"one network past the cap", many(rtt.MaxReportSamples + 1), http.StatusBadRequest},
		{"a body past the cap", `{"region":"us-east-1","samples":[],"pad":"` + strings.Repeat("x", rtt.MaxReportBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"unknown region", `{"region":"mars-1","samples":[{"net":"203.0.113.0/24","rtt_ms":1,"count":1}]}`, http.StatusUnprocessableEntity},
		{"at the cap", many(rtt.MaxReportSamples), http.StatusNoContent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if resp := postReport(t, http.DefaultClient, ts.admin, testToken, tt.body); resp.StatusCode != tt.want {
				t.Errorf("POST: %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if n := ts.srv.rtt.size(); n != rtt.MaxReportSamples {
		t.Errorf("table holds %d networks, want %d (only the report at the cap)", n, rtt.MaxReportSamples)
	}
	body := getBody(t, "http://"+ts.admin+"/metrics")
	for _, want := range []string{`kubecdn_dns_rtt_reports_total{result="refused"} 5`, `kubecdn_dns_rtt_reports_total{result="ok"} 1`, fmt.Sprintf("kubecdn_dns_rtt_networks %d", rtt.MaxReportSamples)} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestRTTExpiryThroughServer: with an injected clock, an estimate nobody
// confirms for rttMaxAge stops steering, and the sweep drops the cached
// answer built from it.
func TestRTTExpiryThroughServer(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := start(t, "latency", "1s", "500ms", Options{AdminToken: testToken, Now: clock})
	for _, r := range []struct {
		region         string
		paris, newYork float64
	}{{"us-east-1", 1, 5000}, {"eu-west-1", 5000, 1}} {
		body := reportJSON(t, r.region, rtt.Sample{Net: parisNet, RTTMs: r.paris, Count: 1}, rtt.Sample{Net: newYorkNet, RTTMs: r.newYork, Count: 1})
		if resp := postReport(t, http.DefaultClient, ts.admin, testToken, body); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("report: %d", resp.StatusCode)
		}
	}
	if got := routes(t, ts); got != swappedRoutes {
		t.Fatalf("after the reports: %s, want %s", got, swappedRoutes)
	}
	mu.Lock()
	now = now.Add(rttMaxAge - time.Second)
	mu.Unlock()
	ts.srv.expireRTT()
	if got, n := routes(t, ts), ts.srv.rtt.size(); got != swappedRoutes || n != 2 {
		t.Fatalf("within the max age: %s with %d networks, want %s with 2", got, n, swappedRoutes)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	ts.srv.expireRTT()
	if got, n := routes(t, ts), ts.srv.rtt.size(); got != honestRoutes || n != 0 {
		t.Errorf("past the max age: %s with %d networks, want %s (distance) with 0", got, n, honestRoutes)
	}
}

func ps(nets ...string) []rtt.ParsedSample {
	var out []rtt.ParsedSample
	for _, n := range nets {
		out = append(out, rtt.ParsedSample{Net: netip.MustParsePrefix(n), RTTMs: 10, Count: 1})
	}
	return out
}

// TestRTTTableExpiry: estimates expire at maxAge, lazily on lookup and for
// good on sweep or the next update; a reporter gone quiet stops voting
// while the others still report.
func TestRTTTableExpiry(t *testing.T) {
	now := testNow
	tb := newRTTTable(func() time.Time { return now }, time.Minute, 100)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	n1 := netip.MustParsePrefix("203.0.113.0/24")
	tb.update(a, "r", []rtt.ParsedSample{{Net: n1, RTTMs: 100, Count: 1}})
	now = now.Add(40 * time.Second)
	tb.update(b, "r", []rtt.ParsedSample{{Net: n1, RTTMs: 10, Count: 1}})
	tb.update(b, "r", ps("198.51.100.0/24"))
	if ms, ok := tb.lookup(n1, "r"); !ok || ms != 55 {
		t.Errorf("two live reporters: %v %v, want their median 55", ms, ok)
	}
	now = now.Add(21 * time.Second) // a's slot is 61s old, b's 21s
	if ms, ok := tb.lookup(n1, "r"); !ok || ms != 10 {
		t.Errorf("after a's slot expired: %v %v, want b's 10", ms, ok)
	}
	now = now.Add(40 * time.Second) // everything is past a minute
	if _, ok := tb.lookup(n1, "r"); ok {
		t.Error("an expired estimate is still answered")
	}
	if tb.size() != 2 {
		t.Errorf("size %d before the sweep, want 2", tb.size())
	}
	gone := tb.sweep()
	if len(gone) != 2 || tb.size() != 0 || tb.newest != nil || tb.oldest != nil {
		t.Errorf("sweep: gone %v, size %d, list %p %p; want both networks gone", gone, tb.size(), tb.newest, tb.oldest)
	}
	// an update also expires what is due
	tb.update(a, "r", ps("192.0.2.0/24"))
	now = now.Add(2 * time.Minute)
	if gone := tb.update(a, "r", ps("2001:db8:1::/48")); len(gone) != 1 || gone[0].String() != "192.0.2.0/24" || tb.size() != 1 {
		t.Errorf("update past the max age: gone %v size %d", gone, tb.size())
	}
}

// TestRTTTableFullAdmitsNew: a full table makes room for a new network by
// dropping the one reported longest ago, so honest networks are still
// learnt after a flood, and a network reported again is kept.
func TestRTTTableFullAdmitsNew(t *testing.T) {
	now := testNow
	tb := newRTTTable(func() time.Time { return now }, time.Hour, 3)
	edge := netip.MustParseAddr("10.0.0.1")
	tick := func() { now = now.Add(time.Second) }
	tb.update(edge, "r", ps("10.0.1.0/24"))
	tick()
	tb.update(edge, "r", ps("10.0.2.0/24"))
	tick()
	tb.update(edge, "r", ps("10.0.3.0/24"))
	tick()
	tb.update(edge, "r", ps("10.0.1.0/24")) // reported again: now the newest
	tick()
	gone := tb.update(edge, "r", ps("203.0.113.0/24"))
	if len(gone) != 1 || gone[0].String() != "10.0.2.0/24" {
		t.Errorf("evicted %v, want the one reported longest ago, 10.0.2.0/24", gone)
	}
	for _, n := range []string{"10.0.1.0/24", "10.0.3.0/24", "203.0.113.0/24"} {
		if _, ok := tb.lookup(netip.MustParsePrefix(n), "r"); !ok {
			t.Errorf("%s is not in the table", n)
		}
	}
	// a flood of new networks from a forger, then the honest edge reports
	forger := netip.MustParseAddr("10.0.0.66")
	var flood []string
	for i := range 50 {
		flood = append(flood, fmt.Sprintf("172.16.%d.0/24", i))
	}
	tick()
	tb.update(forger, "r", ps(flood...))
	tick()
	tb.update(edge, "r", ps("198.51.100.0/24"))
	if _, ok := tb.lookup(netip.MustParsePrefix("198.51.100.0/24"), "r"); !ok || tb.size() != 3 {
		t.Errorf("after a flood, a new honest network: present %v, size %d (want 3)", ok, tb.size())
	}
	// the list and the map agree
	n := 0
	for e := tb.newest; e != nil; e = e.older {
		if tb.m[e.key] != e {
			t.Errorf("list entry %v not in the map", e.key.prefix())
		}
		n++
	}
	if n != len(tb.m) {
		t.Errorf("list has %d entries, map %d", n, len(tb.m))
	}
}

// TestRTTTableMedian: the estimate is the median of one vote per reporter;
// counts and the number of reports do not add weight.
func TestRTTTableMedian(t *testing.T) {
	nw := netip.MustParsePrefix("203.0.113.0/24")
	type rep struct {
		from  string
		ms    float64
		count int
		times int
	}
	for _, tt := range []struct {
		name string
		reps []rep
		want float64
	}{
		{"one reporter", []rep{{"10.0.0.1", 20, 1, 1}}, 20},
		{"its running mean", []rep{{"10.0.0.1", 20, 1, 1}, {"10.0.0.1", 40, 1, 1}}, 30},
		{"a count weighs nothing", []rep{{"10.0.0.1", 20, 1, 1}, {"10.0.0.1", 40, rtt.MaxSampleCount, 1}}, 30},
		{"liar outvoted by two", []rep{{"10.0.0.9", 5000, rtt.MaxSampleCount, 100}, {"10.0.0.1", 20, 1, 1}, {"10.0.0.2", 22, 1, 1}}, 22},
		{"liar against one: their mean", []rep{{"10.0.0.9", 1000, 1, 1}, {"10.0.0.1", 20, 1, 1}}, 510},
		{"an IPv6 /64 is one reporter", []rep{{"2001:db8::1", 5000, 1, 1}, {"2001:db8::2", 5000, 1, 1}, {"2001:db8::3", 5000, 1, 1}, {"10.0.0.1", 20, 1, 1}, {"10.0.0.2", 22, 1, 1}}, 22},
		{"IPv4-mapped is the IPv4 reporter", []rep{{"::ffff:10.0.0.1", 20, 1, 1}, {"10.0.0.1", 20, 1, 1}, {"10.0.0.2", 100, 1, 1}}, 60},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := testNow
			tb := newRTTTable(func() time.Time { return now }, time.Hour, 10)
			for _, r := range tt.reps {
				for range r.times {
					now = now.Add(time.Second)
					tb.update(netip.MustParseAddr(r.from), "r", []rtt.ParsedSample{{Net: nw, RTTMs: r.ms, Count: r.count}})
				}
			}
			if got, ok := tb.lookup(nw, "r"); !ok || got != tt.want {
				t.Errorf("estimate %v %v, want %v", got, ok, tt.want)
			}
		})
	}
	// beyond rttMaxReporters, a new reporter takes the stalest slot
	now := testNow
	tb := newRTTTable(func() time.Time { return now }, time.Hour, 10)
	for i := range rttMaxReporters + 1 {
		now = now.Add(time.Second)
		tb.update(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), "r", []rtt.ParsedSample{{Net: nw, RTTMs: float64(i), Count: 1}})
	}
	if slots := tb.m[mustKey(t, nw)].regions[0].slots; len(slots) != rttMaxReporters || hasReporter(slots, "10.0.0.1") {
		t.Errorf("slots %+v: want %d without the first reporter", slots, rttMaxReporters)
	}
}

func hasReporter(slots []rttSlot, addr string) bool {
	for _, s := range slots {
		if s.from == reporterOf(netip.MustParseAddr(addr)) {
			return true
		}
	}
	return false
}

func mustKey(t *testing.T, p netip.Prefix) netKey {
	t.Helper()
	k, ok := netKeyOf(p)
	if !ok {
		t.Fatalf("no key for %s", p)
	}
	return k
}

func TestNetKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"203.0.113.0/24", "0.0.0.0/24", "255.255.255.0/24", "2001:db8:1::/48", "::/48", "ffff:ffff:ffff::/48"} {
		p := netip.MustParsePrefix(s)
		k, ok := netKeyOf(p)
		if !ok || k.prefix() != p {
			t.Errorf("%s: key %x ok %v, back %s", s, uint64(k), ok, k.prefix())
		}
	}
	for _, s := range []string{"203.0.113.0/16", "2001:db8::/64", "::ffff:203.0.113.0/120"} {
		if _, ok := netKeyOf(netip.MustParsePrefix(s)); ok {
			t.Errorf("%s has a key: only /24 and /48 networks do", s)
		}
	}
	// IPv4 and IPv6 never share a key
	k4, _ := netKeyOf(netip.MustParsePrefix("0.0.0.0/24"))
	k6, _ := netKeyOf(netip.MustParsePrefix("::/48"))
	if k4 == k6 {
		t.Error("0.0.0.0/24 and ::/48 share a key")
	}
}
