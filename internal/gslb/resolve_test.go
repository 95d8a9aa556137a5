package gslb

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/test/e2e"
)

func resolveVia(t *testing.T, admin, token string, q url.Values) (int, adminapi.Resolution) {
	t.Helper()
	code, body := e2e.AdminDo(t, admin, http.MethodGet, adminapi.ResolvePath+"?"+q.Encode(), token, "")
	var r adminapi.Resolution
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("resolve: %v in %s", err, body)
		}
	}
	return code, r
}

// countersOf is every demand, answer and query counter of the metrics page:
// what a lookup that is no user's must leave alone.
func countersOf(t *testing.T, admin string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^kubecdn_dns_(demand_queries_total|answers_total|queries_total|fail_open_answers_total)\b.*$`)
	return strings.Join(re.FindAllString(getBody(t, "http://"+admin+"/metrics"), -1), "\n")
}

// TestResolveCountsNoDemand: the admin lookup answers as a real ECS query
// from the network would, and moves no demand, answer or query counter;
// the same lookup as a real query does.
func TestResolveCountsNoDemand(t *testing.T) {
	ts := start(t, "geo", "1s", "500ms", Options{AdminToken: testToken})
	tests := []struct {
		network, qtype string
		addrs          []string
		regions        []string
		nearest        string
	}{
		{parisNet, "A", []string{"127.0.0.3"}, []string{"eu-west-1"}, "eu-west-1"},
		{newYorkNet, "", []string{"127.0.0.2"}, []string{"us-east-1"}, "us-east-1"},
		{"198.51.100.7", "A", []string{"127.0.0.2"}, []string{"us-east-1"}, "us-east-1"},
		{"192.0.2.0/24", "A", []string{"127.0.0.3"}, []string{"eu-west-1"}, "ap-southeast-1"}, // Singapore: nearest is closed
		{"2001:db8:1::/56", "AAAA", []string{"::1"}, []string{"eu-west-1"}, "eu-west-1"},
		{"100.64.0.0/24", "A", []string{"127.0.0.2", "127.0.0.3"}, []string{"us-east-1", "eu-west-1"}, ""}, // unplaced: every healthy region
	}
	before, demandBefore := countersOf(t, ts.admin), demandTotal(t, ts.admin)
	for range 3 {
		for _, tt := range tests {
			code, r := resolveVia(t, ts.admin, testToken, url.Values{"name": {"www.cdn.example.com"}, "network": {tt.network}, "type": {tt.qtype}})
			if code != http.StatusOK || r.Rcode != "NOERROR" || !slices.Equal(r.Addrs, tt.addrs) || !slices.Equal(r.Regions, tt.regions) || r.Nearest != tt.nearest {
				t.Errorf("resolve %s %s: %d %+v, want %v from %v, nearest %q", tt.network, tt.qtype, code, r, tt.addrs, tt.regions, tt.nearest)
			}
		}
	}
	if after := countersOf(t, ts.admin); after != before {
		t.Errorf("resolve moved counters:\nbefore %s\nafter  %s", before, after)
	}
	if d := demandTotal(t, ts.admin); d != demandBefore {
		t.Errorf("resolve moved /v1/demand from %d to %d", demandBefore, d)
	}

	// The same question as a real ECS query answers the same and counts.
	r := query(t, "udp", ts.udp, "www.cdn.example.com.", dns.TypeA, "192.0.2.0/24")
	if got := answers(r); !slices.Equal(got, []string{"127.0.0.3"}) {
		t.Errorf("real query: %v", got)
	}
	if d := demandTotal(t, ts.admin); d != demandBefore+1 {
		t.Errorf("a real ECS query moved demand from %d to %d, want +1", demandBefore, d)
	}
	if !strings.Contains(getBody(t, "http://"+ts.admin+"/metrics"), `kubecdn_dns_demand_queries_total{region="ap-southeast-1"} 1`) {
		t.Error("a real ECS query from Singapore did not count for ap-southeast-1")
	}

	// Names that are not routed go through the same code: a CNAME in the
	// zone is followed, a name outside is refused, a missing one NXDOMAIN.
	for _, tt := range []struct{ name, rcode, addrs string }{
		{"docs.cdn.example.com.", "NOERROR", "127.0.0.3"},
		{"www.example.org", "REFUSED", ""},
		{"nope.cdn.example.com", "NXDOMAIN", ""},
		{"mail.cdn.example.com", "NOERROR", "192.0.2.25"},
	} {
		code, r := resolveVia(t, ts.admin, testToken, url.Values{"name": {tt.name}, "network": {parisNet}})
		if code != http.StatusOK || r.Rcode != tt.rcode || strings.Join(r.Addrs, ",") != tt.addrs {
			t.Errorf("resolve %s: %d %+v, want %s %s", tt.name, code, r, tt.rcode, tt.addrs)
		}
	}
}

// TestResolveShowsRouting: the lookup follows the drain switch and the
// fail-open state as queries do.
func TestResolveShowsRouting(t *testing.T) {
	ts := start(t, "geo", "1s", "500ms", Options{AdminToken: testToken})
	q := url.Values{"name": {"www.cdn.example.com"}, "network": {parisNet}}
	route(t, ts.admin, "eu-west-1", false)
	if _, r := resolveVia(t, ts.admin, testToken, q); !slices.Equal(r.Regions, []string{"us-east-1"}) || r.FailOpen {
		t.Errorf("eu-west-1 out: %+v, want us-east-1, not failing open", r)
	}
	route(t, ts.admin, "us-east-1", false)
	if _, r := resolveVia(t, ts.admin, testToken, q); !slices.Equal(r.Regions, []string{"eu-west-1"}) || !r.FailOpen {
		t.Errorf("every region out: %+v, want eu-west-1 failing open", r)
	}
}

func TestResolveRefusals(t *testing.T) {
	ts := start(t, "geo", "1s", "500ms", Options{AdminToken: testToken})
	for _, tt := range []struct {
		name  string
		token string
		q     url.Values
		code  int
	}{
		{"no token", "", url.Values{"name": {"www.cdn.example.com"}, "network": {parisNet}}, http.StatusUnauthorized},
		{"wrong token", "x", url.Values{"name": {"www.cdn.example.com"}, "network": {parisNet}}, http.StatusUnauthorized},
		{"no name", testToken, url.Values{"network": {parisNet}}, http.StatusBadRequest},
		{"bad network", testToken, url.Values{"name": {"www.cdn.example.com"}, "network": {"paris"}}, http.StatusBadRequest},
		{"no network", testToken, url.Values{"name": {"www.cdn.example.com"}}, http.StatusBadRequest},
		{"bad type", testToken, url.Values{"name": {"www.cdn.example.com"}, "network": {parisNet}, "type": {"MX"}}, http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, _ := resolveVia(t, ts.admin, tt.token, tt.q); code != tt.code {
				t.Errorf("status %d, want %d", code, tt.code)
			}
		})
	}
}
