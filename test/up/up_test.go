package up_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/local/demo"
)

// query asks the dns for hostname's A records as a client of subnet
// (EDNS Client Subnet).
func query(t *testing.T, server, subnet string) []string {
	t.Helper()
	_, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(hostname), dns.TypeA)
	ones, _ := ipnet.Mask.Size()
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(ones), Address: ipnet.IP})
	m.Extra = append(m.Extra, o)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("dns query for %s: %v", subnet, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func hostOf(hp string) string {
	h, _, _ := net.SplitHostPort(hp)
	return h
}

func TestUpEndToEnd(t *testing.T) {
	c := newTestCDN(t)
	p := startUp(t, c.args...)
	p.WaitBanner(t, c.control)
	eastIP, westIP := hostOf(c.east), hostOf(c.west)

	t.Run("banner", func(t *testing.T) {
		out := p.Stdout.String()
		for _, want := range []string{
			"us-east-1   open    edge " + c.east,
			"us-west-2   open    edge " + c.west,
			"eu-west-1   closed",
			"status      http://" + c.control + "/",
			fmt.Sprintf("dig @127.0.0.1 -p %s %s +subnet=198.51.100.0/24 +short    # %s (us-west-2)", portOf(c.dns), hostname, westIP),
			fmt.Sprintf("curl -sI -H 'Host: %s' http://%s/ | grep -i cache-status", hostname, c.east),
			fmt.Sprintf("kubecdn purge --control http://%s http://%s/", c.control, hostname),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("banner lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("status page", func(t *testing.T) {
		resp, err := client.Get("http://" + c.control + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET / on the control listener: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("dns sends two networks to two regions", func(t *testing.T) {
		waitFor(t, 5*time.Second, "dns ready", func() bool {
			resp, err := client.Get("http://" + c.dnsAdmin + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		for _, tc := range []struct{ subnet, want string }{
			{"192.0.2.0/24", eastIP}, {"198.51.100.0/24", westIP},
			{"203.0.113.0/24", eastIP}, // nearest is eu-west-1, closed: the next nearest open region
		} {
			if got := query(t, c.dns, tc.subnet); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("%s: answer %v, want [%s]", tc.subnet, got, tc.want)
			}
		}
		dig, err := exec.LookPath("dig")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("dig not found and CI=true: install Debian's bind9-dnsutils")
			}
			t.Log("dig not found: skipping the dig half (install bind9-dnsutils)")
			return
		}
		for _, tc := range []struct{ subnet, want string }{{"192.0.2.0/24", eastIP}, {"198.51.100.0/24", westIP}} {
			out, err := exec.Command(dig, "@127.0.0.1", "-p", portOf(c.dns), hostname, "+subnet="+tc.subnet, "+short", "+time=2", "+tries=1").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != tc.want {
				t.Errorf("dig +subnet=%s: %q (%v), want %s", tc.subnet, out, err, tc.want)
			}
		}
	})

	t.Run("each region's edge misses then hits", func(t *testing.T) {
		for _, edge := range []string{c.east, c.west} {
			resp, body := get(t, edge, "/")
			if resp.StatusCode != 200 || !bytes.Contains(body, []byte("kubecdn demo")) {
				t.Fatalf("%s: first GET / = %d %q", edge, resp.StatusCode, body[:min(len(body), 80)])
			}
			if s := ownStatus(resp); !strings.Contains(s, "fwd=") {
				t.Errorf("%s: first GET Cache-Status %q, want a miss (fwd=)", edge, s)
			}
			resp, _ = get(t, edge, "/")
			if s := ownStatus(resp); !strings.Contains(s, "hit") {
				t.Errorf("%s: second GET Cache-Status %q, want a hit", edge, s)
			}
		}
		// The parent region served us-west-2's miss: the east entry says hit.
		resp, _ := get(t, c.west, "/assets/style.css")
		resp, _ = get(t, c.east, "/assets/style.css")
		if s := ownStatus(resp); !strings.Contains(s, "hit") {
			t.Errorf("us-east-1 after us-west-2's miss: %q, want a hit (us-east-1 is us-west-2's parent)", s)
		}
	})

	t.Run("range of the large file", func(t *testing.T) {
		for _, edge := range []string{c.west, c.east} {
			resp, body := get(t, edge, demo.LargePath, "Range", "bytes=40000000-40000999")
			want := make([]byte, 1000)
			demo.FillLarge(want, 40000000)
			if resp.StatusCode != 206 || !bytes.Equal(body, want) {
				t.Errorf("%s: range = %d, %d bytes, equal=%v", edge, resp.StatusCode, len(body), bytes.Equal(body, want))
			}
			if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes 40000000-40000999/%d", 64<<20) {
				t.Errorf("%s: Content-Range %q", edge, cr)
			}
		}
	})

	t.Run("purge with the control API's token", func(t *testing.T) {
		resp, err := client.Get("http://" + c.control + "/v1/token")
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		token := strings.TrimSpace(string(tok))
		if resp.StatusCode != 200 || len(token) < 16 {
			t.Fatalf("/v1/token: %d %q", resp.StatusCode, tok)
		}
		for _, admin := range regionAdmins(t, c.control) {
			req, _ := http.NewRequest("POST", admin+"/v1/purge", strings.NewReader(`{"urls":["http://`+hostname+`/"]}`))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("purge at %s: %d %s", admin, resp.StatusCode, body)
			}
		}
		for _, edge := range []string{c.east, c.west} {
			resp, _ := get(t, edge, "/")
			if s := ownStatus(resp); !strings.Contains(s, "fwd=") {
				t.Errorf("%s after purge: Cache-Status %q, want a miss", edge, s)
			}
		}
	})

	t.Run("region down leaves the dns within the health window", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		out, err := run(t, ctx, "region", "down", "us-west-2", "--control", "http://"+c.control)
		if err != nil || !strings.Contains(out, "region us-west-2: down") {
			t.Fatalf("region down: %v\n%s", err, out)
		}
		if _, err := net.DialTimeout("tcp", c.west, time.Second); err == nil {
			t.Error("us-west-2's edge still accepts connections after region down")
		}
		waitFor(t, 6*time.Second, "the dns to answer 198.51.100.0/24 with us-east-1", func() bool {
			return slices.Equal(query(t, c.dns, "198.51.100.0/24"), []string{eastIP})
		})
		t.Logf("dns dropped us-west-2 %v after region down", time.Since(start).Round(100*time.Millisecond))
		var ts []struct{ Region, State string }
		getJSON(t, "http://"+c.control+"/v1/regions", &ts)
		if len(ts) != 3 || ts[1].Region != "us-west-2" || ts[1].State != "down" {
			t.Errorf("/v1/regions after down: %+v", ts)
		}

		out, err = run(t, ctx, "region", "up", "us-west-2", "--control", "http://"+c.control)
		if err != nil {
			t.Fatalf("region up: %v\n%s", err, out)
		}
		waitFor(t, 6*time.Second, "the dns to answer 198.51.100.0/24 with us-west-2 again", func() bool {
			return slices.Equal(query(t, c.dns, "198.51.100.0/24"), []string{westIP})
		})
		out, err = run(t, ctx, "region", "down", "nowhere", "--control", "http://"+c.control)
		if err == nil || !strings.Contains(out, `unknown region "nowhere"`) {
			t.Errorf("region down nowhere: %v\n%s", err, out)
		}
	})

	t.Run("ctrl-c frees every port", func(t *testing.T) {
		p.Stop(t)
		checkFree(t, c.addrs())
		if !strings.Contains(p.Stderr.String(), "every port freed") {
			t.Errorf("no goodbye line in stderr:\n%s", tail(p.Stderr.String(), 5))
		}
	})
}

func TestPortInUseStartsNothing(t *testing.T) {
	c := newTestCDN(t)
	busy, err := net.Listen("tcp", c.dnsAdmin)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := startUp(t, c.args...)
	select {
	case <-p.Done:
	case <-time.After(15 * time.Second):
		t.Fatal("up kept running with its dns admin address taken")
	}
	if p.Err == nil {
		t.Fatal("up exited 0 with an address in use")
	}
	want := c.dnsAdmin + "/tcp (dns admin): bind: address already in use"
	if !strings.Contains(p.Stderr.String(), want) || !strings.Contains(p.Stderr.String(), "nothing was started") {
		t.Errorf("stderr does not say %q and nothing was started:\n%s", want, p.Stderr)
	}
	if strings.Contains(p.Stdout.String(), "Try:") {
		t.Errorf("banner printed although nothing started:\n%s", p.Stdout)
	}
	as := c.addrs()
	checkFree(t, slices.DeleteFunc(as, func(a addr) bool { return a.hostport == c.dnsAdmin }))
}

func regionAdmins(t *testing.T, control string) []string {
	t.Helper()
	var ts []struct {
		Region, State string
		Admin         []string
	}
	getJSON(t, "http://"+control+"/v1/regions", &ts)
	var out []string
	for _, r := range ts {
		if r.State == "open" {
			out = append(out, r.Admin...)
		}
	}
	if len(out) != 2 {
		t.Fatalf("open regions' admins = %v, want 2", out)
	}
	return out
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func portOf(hp string) string {
	_, p, _ := net.SplitHostPort(hp)
	return p
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waited %v for %s", limit, what)
}
