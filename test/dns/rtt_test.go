package dns_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/rtt"
	"github.com/kubecdn/kubecdn/test/edgetest"
)

// postRTT POSTs body to the dns's /v1/rtt with token (none if empty) and
// returns the status.
func postRTT(t *testing.T, admin, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+admin+"/v1/rtt", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// rssKiB is the resident set of pid (VmRSS of /proc/PID/status).
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kib, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kib
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// report is a report for us-east-1 of n distinct IPv4 /24 networks from
// first.0.0.0/24 on.
func report(first, n int) string {
	var b strings.Builder
	b.WriteString(`{"region":"us-east-1","samples":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"net":"%d.%d.%d.0/24","rtt_ms":%d.25,"count":1000000}`, first+(i>>16), (i>>8)&255, i&255, 10+i%200)
	}
	b.WriteString(`]}`)
	return b.String()
}

var rttNetworksRe = regexp.MustCompile(`(?m)^kubecdn_dns_rtt_networks (\d+)$`)

func rttNetworks(t *testing.T, admin string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := rttNetworksRe.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no kubecdn_dns_rtt_networks in the metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestRTTFeedIsAuthenticatedAndBounded runs the attacks of the security
// probe against the dns binary: an unauthenticated report, three reports of
// 100,000 networks, then authenticated reports at the cap until the table
// is full. Nothing unauthenticated or oversized is taken, the table stops
// at its bound while new networks are still admitted, and the resident
// memory of the dns grows by tens of MiB, not hundreds.
func TestRTTFeedIsAuthenticatedAndBounded(t *testing.T) {
	e := startDNS(t)
	pid := e.cmd.Process.Pid
	one := `{"region":"us-east-1","samples":[{"net":"203.0.113.0/24","rtt_ms":1,"count":1000000000}]}`
	if code := postRTT(t, e.admin, "", one); code != http.StatusUnauthorized {
		t.Errorf("unauthenticated report: %d, want 401", code)
	}
	if code := postRTT(t, e.admin, "wrong", one); code != http.StatusUnauthorized {
		t.Errorf("report with a wrong token: %d, want 401", code)
	}
	if code := postRTT(t, e.admin, dnsToken, one); code != http.StatusBadRequest {
		t.Errorf("count 1e9: %d, want 400", code)
	}

	before := rssKiB(t, pid)
	for i := range 3 {
		if code := postRTT(t, e.admin, dnsToken, report(100+i, 100_000)); code/100 != 4 {
			t.Errorf("report %d of 100,000 networks: %d, want refused", i, code)
		}
	}
	afterRefused := rssKiB(t, pid)
	// Past the table's bound: 6 reports at the per-report cap, 393,216
	// networks for a table of 262,144.
	const reports = 6
	for i := range reports {
		if code := postRTT(t, e.admin, dnsToken, report(20+i, rtt.MaxReportSamples)); code != http.StatusNoContent {
			t.Fatalf("report %d at the cap: %d, want 204", i, code)
		}
	}
	full := rttNetworks(t, e.admin)
	// a new honest network is still learnt
	honest := `{"region":"us-east-1","samples":[{"net":"198.51.100.0/24","rtt_ms":12,"count":3}]}`
	if code := postRTT(t, e.admin, dnsToken, honest); code != http.StatusNoContent {
		t.Fatalf("honest report: %d", code)
	}
	after := rssKiB(t, pid)
	t.Logf("dns RSS: %d MiB at start, %d MiB after 3 refused reports of 100,000 networks, %d MiB after %d reports of %d networks (table %d networks): +%d MiB",
		before>>10, afterRefused>>10, after>>10, reports, rtt.MaxReportSamples, full, (after-before)>>10)
	if full != 1<<18 || rttNetworks(t, e.admin) != 1<<18 {
		t.Errorf("table holds %d networks, want its bound %d", full, 1<<18)
	}
	if grow := (after - before) >> 10; grow > 120 {
		t.Errorf("dns grew by %d MiB filling the rtt table, want at most 120", grow)
	}
	if grow := (afterRefused - before) >> 10; grow > 40 {
		t.Errorf("dns grew by %d MiB on refused reports, want at most 40", grow)
	}
}

// TestEdgeReportsToTheDNSWithTheToken runs an edge binary and the dns binary
// with the same KUBECDN_ADMIN_TOKEN: the edge's report (the last one, sent
// when it stops) is taken. With another token it is refused.
func TestEdgeReportsToTheDNSWithTheToken(t *testing.T) {
	for _, tt := range []struct {
		name, token string
		wantOK      bool
	}{{"same token", dnsToken, true}, {"other token", "not-the-dns-token", false}} {
		t.Run(tt.name, func(t *testing.T) {
			e := startDNS(t)
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
			defer origin.Close()
			edge := edgetest.Binary{Path: e.bin}.Start(t, edgetest.Options{Origin: origin.URL,
				Args: []string{"--region", "us-east-1", "--rtt-report", "http://" + e.admin + "/v1/rtt"},
				Env:  []string{"KUBECDN_ADMIN_TOKEN=" + tt.token}})
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, err := http.Get(edge.URL() + "/page")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("edge not serving after 10s: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			edge.Stop(10 * time.Second)
			got := func() string {
				resp, err := http.Get("http://" + e.admin + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b)
			}()
			ok := strings.Contains(got, `kubecdn_dns_rtt_reports_total{result="ok"} 1`)
			refused := strings.Contains(got, `kubecdn_dns_rtt_reports_total{result="unauthorized"} 1`)
			if ok != tt.wantOK || refused == tt.wantOK {
				t.Errorf("report taken %v refused %v, want taken %v", ok, refused, tt.wantOK)
			}
			if !tt.wantOK && !strings.Contains(edge.Output(), "admin token") {
				t.Errorf("the edge's log does not say its report was refused for the token:\n%s", edge.Output())
			}
		})
	}
}
