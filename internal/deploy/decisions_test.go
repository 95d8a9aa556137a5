package deploy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

func TestReplicaBoundsClamp(t *testing.T) {
	for _, tt := range []struct {
		b          ReplicaBounds
		live, want int64
	}{
		{ReplicaBounds{2, 10}, 0, 2}, // scaled to 0 by hand: the autoscaler no longer acts
		{ReplicaBounds{2, 10}, 1, 2},
		{ReplicaBounds{2, 10}, 4, 4}, // the autoscaler's choice
		{ReplicaBounds{2, 10}, 10, 10},
		{ReplicaBounds{2, 10}, 50, 10},
		{ReplicaBounds{2, 0}, 50, 50}, // no maximum
		{ReplicaBounds{3, 2}, 0, 3},   // a maximum below the minimum: the minimum wins
	} {
		if got := tt.b.Clamp(tt.live); got != tt.want {
			t.Errorf("%+v.Clamp(%d) = %d, want %d", tt.b, tt.live, got, tt.want)
		}
	}
}

// The bounds come from render's autoscaler, whose numbers went through
// encoding/json (float64), as the apps' do.
func TestHPABoundsOfRenderedObjects(t *testing.T) {
	cfg, err := config.Load("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	region := cfg.Spec.Regions.AlwaysOn[0].Name
	out, err := render.Render(cfg, render.Options{Regions: []string{region}, EdgeReplicas: 3, MaxEdgeReplicas: 7})
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, o := range out[region] {
		u, err := render.Unstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	got := hpaBounds(objs)
	want := ReplicaBounds{Min: 3, Max: 7}
	if b, ok := got["StatefulSet/"+render.DefaultNamespace+"/"+edgeWorkload]; !ok || b != want || len(got) != 1 {
		t.Errorf("hpaBounds = %v, want the edges with %+v", got, want)
	}
}

func TestVersionAnswer(t *testing.T) {
	for _, tt := range []struct {
		name        string
		code        int
		contentType string
		body        string
		kube        bool
		found       string
	}{
		{"kubernetes", 200, "application/json", `{"major":"1","minor":"34","gitVersion":"v1.34.2"}`, true, ""},
		{"wrong token", 401, "application/json", `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`, true, "401 Unauthorized: Unauthorized"},
		{"web server 404", 404, "text/html; charset=utf-8", "<html>\n<head><title>404 Not Found</title></head>\n<body>nginx</body></html>", false, `404 Not Found, text/html "404 Not Found"`},
		{"welcome page", 200, "text/html", "<!DOCTYPE html><html><head><title>Welcome to nginx!</title>", false, `200 OK, text/html "Welcome to nginx!"`},
		{"plain text, no type", 404, "", "404 page not found\nmore", false, `404 Not Found, text/plain "404 page not found"`},
		{"other json", 200, "application/json", `{"status":"ok"}`, false, `200 OK, application/json "{\"status\":\"ok\"}"`},
		{"empty", 502, "", "", false, "502 Bad Gateway, empty"},
		{"binary", 200, "application/octet-stream", "\x00\xff\xfe", false, "200 OK, application/octet-stream"},
		{"long line", 500, "text/plain", strings.Repeat("a", 80), false, `500 Internal Server Error, text/plain "` + strings.Repeat("a", 60) + `…"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kube, found := versionAnswer(tt.code, tt.contentType, []byte(tt.body))
			if kube != tt.kube || found != tt.found {
				t.Errorf("versionAnswer = %v, %q; want %v, %q", kube, found, tt.kube, tt.found)
			}
		})
	}
}

func TestDNSLine(t *testing.T) {
	for _, tt := range []struct {
		updated int
		inDNS   []string
		dryRun  bool
		want    string
	}{
		{2, []string{"eu-west-1", "us-east-1"}, false, "2 regions' dns given new addresses (regions in DNS: eu-west-1, us-east-1)"},
		{1, []string{"us-east-1"}, false, "1 region's dns given new addresses (regions in DNS: us-east-1)"},
		{0, nil, false, "0 regions' dns given new addresses (no region in DNS)"},
		{2, []string{"eu-west-1", "us-east-1"}, true, "2 regions' dns would be given new addresses (regions that would be in DNS: eu-west-1, us-east-1)"},
		{0, nil, true, "0 regions' dns would be given new addresses (no region would be in DNS)"},
	} {
		if got := dnsLine(tt.updated, tt.inDNS, tt.dryRun); got != tt.want {
			t.Errorf("dnsLine(%d, %v, %v) = %q, want %q", tt.updated, tt.inDNS, tt.dryRun, got, tt.want)
		}
	}
}
