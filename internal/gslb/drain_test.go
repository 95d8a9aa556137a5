package gslb

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

// route takes region out (in false) or puts it back through the admin API
// and checks the answer.
func route(t *testing.T, admin, region string, in bool) {
	t.Helper()
	body := `{"in": false}`
	if in {
		body = `{"in": true}`
	}
	code, got := e2e.AdminDo(t, admin, http.MethodPost, adminapi.RoutePath(region), testToken, body)
	var rr adminapi.RegionRoute
	if code != http.StatusOK || json.Unmarshal([]byte(got), &rr) != nil || rr.Region != region || rr.Routed != in {
		t.Fatalf("route %s in=%v: %d %s", region, in, code, got)
	}
}

func regionState(t *testing.T, admin, name string) adminapi.RegionState {
	t.Helper()
	st := getJSON[adminapi.State](t, "http://"+admin+adminapi.StatePath)
	for _, r := range st.Regions {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("state has no region %s", name)
	return adminapi.RegionState{}
}

// TestRouteOutAndIn: a healthy region taken out leaves the answers at the
// next query, its demand is still counted, it stays out through a reload
// of the file, and comes back at the next query once put back in.
func TestRouteOutAndIn(t *testing.T) {
	ts := start(t, "geo", "1s", "500ms", Options{AdminToken: testToken})
	if got := routes(t, ts); got != honestRoutes {
		t.Fatalf("before: routes %q, want %q", got, honestRoutes)
	}
	if !regionState(t, ts.admin, "eu-west-1").Routed {
		t.Fatal("eu-west-1 not routed at start")
	}

	route(t, ts.admin, "eu-west-1", false)
	if got := routes(t, ts); got != "127.0.0.2 127.0.0.2" {
		t.Errorf("eu-west-1 out: routes %q, want Paris on us-east-1 too", got)
	}
	rs := regionState(t, ts.admin, "eu-west-1")
	if rs.Routed || !rs.Healthy {
		t.Errorf("eu-west-1 out: state routed %v healthy %v, want routed false, still healthy", rs.Routed, rs.Healthy)
	}
	if rs.Demand.Total != 2 { // one Paris query before, one after
		t.Errorf("eu-west-1 demand %d, want 2: a region out still counts its users", rs.Demand.Total)
	}
	if body := getBody(t, "http://"+ts.admin+"/metrics"); !strings.Contains(body, `kubecdn_dns_region_routed{region="eu-west-1"} 0`) ||
		!strings.Contains(body, `kubecdn_dns_region_routed{region="us-east-1"} 1`) {
		t.Errorf("metrics lack region_routed 0 for eu-west-1 and 1 for us-east-1")
	}
	// AAAA: only eu-west-1 serves IPv6, so for that family every serving
	// region is out and the dns fails open (per family, as for health).
	if got := answers(query(t, "udp", ts.udp, "www.cdn.example.com.", dns.TypeAAAA, parisNet)); len(got) != 1 || got[0] != "::1" {
		t.Errorf("AAAA with eu-west-1 out: %v, want ::1 (failing open for the family)", got)
	}

	// A reload of the same file keeps the region out.
	if err := ts.srv.Reload(configtest.Parse(t, ts.file)); err != nil {
		t.Fatal(err)
	}
	if got := routes(t, ts); got != "127.0.0.2 127.0.0.2" {
		t.Errorf("after reload: routes %q, want eu-west-1 still out", got)
	}

	route(t, ts.admin, "eu-west-1", true)
	if got := routes(t, ts); got != honestRoutes {
		t.Errorf("eu-west-1 back in: routes %q, want %q", got, honestRoutes)
	}
	if !regionState(t, ts.admin, "eu-west-1").Routed {
		t.Error("eu-west-1 back in: state routed false")
	}
}

// TestEveryRegionOutFailsOpen: with every serving region out, the dns fails
// open as when every region is down: the policy chooses among all serving
// regions, as if none were out.
func TestEveryRegionOutFailsOpen(t *testing.T) {
	ts := start(t, "geo", "1s", "500ms", Options{AdminToken: testToken})
	route(t, ts.admin, "eu-west-1", false)
	route(t, ts.admin, "us-east-1", false)
	if got := routes(t, ts); got != honestRoutes {
		t.Errorf("every region out: routes %q, want the fail-open answers %q", got, honestRoutes)
	}
	if st := getJSON[adminapi.State](t, "http://"+ts.admin+adminapi.StatePath); !st.FailOpen {
		t.Error("every region out: state failOpen false")
	}
	if body := getBody(t, "http://"+ts.admin+"/metrics"); !strings.Contains(body, "kubecdn_dns_fail_open 1") ||
		!strings.Contains(body, "kubecdn_dns_fail_open_answers_total 2") {
		t.Error("every region out: metrics lack fail_open 1 and 2 fail-open answers")
	}
	route(t, ts.admin, "us-east-1", true)
	if got := routes(t, ts); got != "127.0.0.2 127.0.0.2" {
		t.Errorf("us-east-1 back: routes %q, want every client on us-east-1", got)
	}
	if st := getJSON[adminapi.State](t, "http://"+ts.admin+adminapi.StatePath); st.FailOpen {
		t.Error("us-east-1 back: state still failOpen")
	}
}

// TestRouteRefusals: without the token, for an unknown region or without a
// clear "in", nothing changes.
func TestRouteRefusals(t *testing.T) {
	ts := start(t, "geo", "1s", "500ms", Options{AdminToken: testToken})
	tests := []struct {
		name, region, token, body string
		code                      int
	}{
		{"no token", "eu-west-1", "", `{"in": false}`, http.StatusUnauthorized},
		{"wrong token", "eu-west-1", "nope", `{"in": false}`, http.StatusUnauthorized},
		{"unknown region", "mars-1", testToken, `{"in": false}`, http.StatusNotFound},
		{"empty body", "eu-west-1", testToken, ``, http.StatusBadRequest},
		{"no in", "eu-west-1", testToken, `{}`, http.StatusBadRequest},
		{"in not a boolean", "eu-west-1", testToken, `{"in": "no"}`, http.StatusBadRequest},
		{"unknown field", "eu-west-1", testToken, `{"in": false, "region": "x"}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e2e.AdminDo(t, ts.admin, http.MethodPost, adminapi.RoutePath(tt.region), tt.token, tt.body)
			if code != tt.code {
				t.Errorf("status %d (%s), want %d", code, strings.TrimSpace(body), tt.code)
			}
			if !regionState(t, ts.admin, "eu-west-1").Routed {
				t.Fatal("eu-west-1 taken out by a refused request")
			}
		})
	}
	// A dns without a token refuses every route change.
	ts2 := start(t, "geo", "1s", "500ms", Options{})
	if code, _ := e2e.AdminDo(t, ts2.admin, http.MethodPost, adminapi.RoutePath("eu-west-1"), testToken, `{"in": false}`); code != http.StatusUnauthorized {
		t.Errorf("dns without token: status %d, want 401", code)
	}
}
