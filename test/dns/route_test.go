package dns_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

func (e *env) route(t *testing.T, region string, in bool) {
	t.Helper()
	code, body := e2e.AdminDo(t, e.admin, http.MethodPost, adminapi.RoutePath(region), dnsToken, fmt.Sprintf(`{"in": %v}`, in))
	if code != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"routed": %v`, in)) {
		t.Fatalf("route %s in=%v: %d %s", region, in, code, body)
	}
}

func (e *env) routed(t *testing.T, region string) bool {
	t.Helper()
	_, body := e2e.AdminDo(t, e.admin, http.MethodGet, adminapi.StatePath, "", "")
	var st adminapi.State
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Regions {
		if r.Name == region {
			return r.Routed
		}
	}
	t.Fatalf("state has no region %s", region)
	return false
}

// TestRouteOutThroughReloads: `kubecdn dns` takes a healthy region out of
// its answers at the next query after POST /v1/regions/NAME/route
// {"in": false}, keeps it out through a SIGHUP reload and a reload on a
// file change, and answers with it at the next query once it is back in.
func TestRouteOutThroughReloads(t *testing.T) {
	dig := tool(t, "dig", "bind9-dnsutils")
	e := startDNS(t)
	const paris, newYork = "203.0.113.0/24", "198.51.100.0/24"
	answers := func() string {
		return strings.Join(answerA(t, dig, e.port, paris), ",") + " " + strings.Join(answerA(t, dig, e.port, newYork), ",")
	}
	if got := answers(); got != "127.0.0.3 127.0.0.2" {
		t.Fatalf("before: %q", got)
	}
	if code, _ := e2e.AdminDo(t, e.admin, http.MethodPost, adminapi.RoutePath("eu-west-1"), "", `{"in": false}`); code != http.StatusUnauthorized {
		t.Fatalf("route without the token: %d, want 401", code)
	}

	e.route(t, "eu-west-1", false)
	if got := answers(); got != "127.0.0.2 127.0.0.2" {
		t.Errorf("eu-west-1 out: %q, want every client on us-east-1 at the next query", got)
	}
	if e.routed(t, "eu-west-1") {
		t.Error("eu-west-1 out: state says routed")
	}

	const ok = `kubecdn_dns_reloads_total{result="ok"}`
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(t, ok, "1", "SIGHUP")
	if got := answers(); got != "127.0.0.2 127.0.0.2" {
		t.Errorf("after SIGHUP: %q, want eu-west-1 still out", got)
	}
	changed := configtest.YAML(t, cdnFile("geo", `"changed"`, e.usAddr, e.euAddr))
	if err := os.WriteFile(e.file, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitMetric(t, ok, "2", "a file change")
	if got := answers(); got != "127.0.0.2 127.0.0.2" || e.routed(t, "eu-west-1") {
		t.Errorf("after a file change: %q, want eu-west-1 still out", got)
	}

	e.route(t, "eu-west-1", true)
	if got := answers(); got != "127.0.0.3 127.0.0.2" {
		t.Errorf("eu-west-1 back in: %q, want Paris on eu-west-1 at the next query", got)
	}
}

// TestResolveMatchesDigAndCountsNothing: /v1/resolve gives what dig gets
// for the same client network, and only dig's query counts as demand.
func TestResolveMatchesDigAndCountsNothing(t *testing.T) {
	dig := tool(t, "dig", "bind9-dnsutils")
	e := startDNS(t)
	const demand = `kubecdn_dns_demand_queries_total{region="eu-west-1"}`
	for range 5 {
		q := url.Values{"name": {"www.cdn.example.com"}, "network": {"203.0.113.0/24"}}
		code, body := e2e.AdminDo(t, e.admin, http.MethodGet, adminapi.ResolvePath+"?"+q.Encode(), dnsToken, "")
		var r adminapi.Resolution
		if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || strings.Join(r.Addrs, ",") != "127.0.0.3" {
			t.Fatalf("resolve: %d %s", code, body)
		}
	}
	if got := e.metric(t, demand); got != demand+" 0" {
		t.Errorf("after 5 resolves: %q, want 0", got)
	}
	if got := strings.Join(answerA(t, dig, e.port, "203.0.113.0/24"), ","); got != "127.0.0.3" {
		t.Errorf("dig: %q, want what resolve said", got)
	}
	if got := e.metric(t, demand); got != demand+" 1" {
		t.Errorf("after one dig: %q, want 1", got)
	}
}
