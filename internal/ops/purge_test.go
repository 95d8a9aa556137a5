package ops_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/opstest"
)

func TestPurgeParallelPerRegion(t *testing.T) {
	const delay = 300 * time.Millisecond
	var edges []*opstest.FakeEdge
	for range 4 {
		e := opstest.NewFakeEdge(t, "tok")
		e.SetPurgeDelay(delay)
		edges = append(edges, e)
	}
	wrong := opstest.NewFakeEdge(t, "other-token")
	targets := []ops.Target{
		{Region: "us-east-1", State: ops.StateOpen, Admin: []string{edges[0].URL(), edges[1].URL()}},
		{Region: "us-west-2", State: ops.StateOpen, Admin: []string{edges[2].URL(), edges[3].URL()}},
		{Region: "ap-south-1", State: ops.StateOpen, Admin: []string{wrong.URL()}},
		{Region: "eu-west-1", State: ops.StateClosed},
		{Region: "sa-east-1", State: ops.StateOpen},
	}
	req := adminapi.PurgeRequest{URLs: []string{"http://www.cdn.localhost/a"}, Tags: []string{"t1"}, Soft: true}
	start := time.Now()
	res := ops.Purge(context.Background(), targets, "tok", req)
	took := time.Since(start)
	if took >= 4*delay {
		t.Errorf("purge took %v: not parallel (4 edges of %v each)", took, delay)
	}
	if len(res) != len(targets) {
		t.Fatalf("results = %d, want %d", len(res), len(targets))
	}
	for i, r := range res[:2] {
		if r.Err != nil || r.Purged != 4 || r.Edges != 2 || r.Region != targets[i].Region || r.Duration < delay {
			t.Errorf("%s: %+v", targets[i].Region, r)
		}
	}
	for _, e := range edges {
		p := e.Purges()
		if len(p) != 1 || !p[0].Soft || p[0].Tags[0] != "t1" || p[0].URLs[0] != "http://www.cdn.localhost/a" {
			t.Errorf("edge %s got %+v", e.URL(), p)
		}
	}
	if r := res[2]; r.Err == nil || !strings.Contains(r.Err.Error(), "401") || !strings.Contains(r.Err.Error(), wrong.URL()) {
		t.Errorf("wrong token: err %v, want a 401 naming %s", r.Err, wrong.URL())
	}
	if r := res[3]; !r.Skipped || r.Err != nil {
		t.Errorf("closed region: %+v, want skipped", r)
	}
	if r := res[4]; r.Err == nil {
		t.Errorf("open region without admin URL: no error")
	}
}

func TestPurgeUnreachableNamesTheEdge(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	res := ops.Purge(context.Background(), []ops.Target{{Region: "r", State: ops.StateOpen, Admin: []string{url}}}, "t",
		adminapi.PurgeRequest{Prefixes: []string{"http://h/"}})
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), strings.TrimPrefix(url, "http://")) {
		t.Errorf("err = %v, want one naming %s", res[0].Err, url)
	}
}

func TestPurgeRealEdge(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "body of "+r.URL.Path)
	}))
	defer origin.Close()
	pub, admin := startEdge(t, origin.URL, "secret")
	pub2, admin2 := startEdge(t, origin.URL, "secret")
	for _, p := range []string{pub, pub2} {
		get(t, p+"/x.css")
		if cs := get(t, p+"/x.css"); !strings.Contains(cs, "hit") {
			t.Fatalf("second GET not a hit: Cache-Status %q", cs)
		}
	}
	targets := []ops.Target{
		{Region: "one", State: ops.StateOpen, Admin: []string{admin}},
		{Region: "two", State: ops.StateOpen, Admin: []string{admin2}},
	}
	// The edge keys by the Host the client sent: the test server's address.
	res := ops.Purge(context.Background(), targets, "secret", adminapi.PurgeRequest{URLs: []string{pub + "/x.css", pub2 + "/x.css"}})
	for _, r := range res {
		if r.Err != nil || r.Purged != 1 {
			t.Errorf("%s: purged %d, err %v; want 1", r.Region, r.Purged, r.Err)
		}
	}
	for _, p := range []string{pub, pub2} {
		if cs := get(t, p+"/x.css"); !strings.Contains(cs, "miss") {
			t.Errorf("after the purge: Cache-Status %q, want a miss", cs)
		}
	}
	bad := ops.Purge(context.Background(), targets[:1], "wrong", adminapi.PurgeRequest{Tags: []string{"x"}})
	if bad[0].Err == nil || !strings.Contains(bad[0].Err.Error(), "401") {
		t.Errorf("wrong token: %v", bad[0].Err)
	}
}
