package deploy

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/publish"
)

func ref(kind, ns, name string) Ref {
	g, v := "", "v1"
	switch kind {
	case "Deployment", "StatefulSet":
		g = "apps"
	case "HorizontalPodAutoscaler":
		g, v = "autoscaling", "v2"
	}
	return Ref{Group: g, Version: v, Kind: kind, Namespace: ns, Name: name}
}

func TestPrune(t *testing.T) {
	ns := ref("Namespace", "", "kubecdn")
	cm := ref("ConfigMap", "kubecdn", "kubecdn-config")
	svc := ref("Service", "kubecdn", "old")
	dep := ref("Deployment", "video", "rtmp")
	depOtherVersion := dep
	depOtherVersion.Version = "v1beta2"
	for _, tc := range []struct {
		name       string
		inv, want  []Ref
		wantPruned []Ref
	}{
		{"nothing before", nil, []Ref{ns, cm}, nil},
		{"same set", []Ref{ns, cm}, []Ref{ns, cm}, nil},
		{"one dropped", []Ref{ns, cm, svc}, []Ref{ns, cm}, []Ref{svc}},
		{"all dropped, namespace last", []Ref{ns, cm, svc, dep}, nil, []Ref{dep, svc, cm, ns}},
		{"another API version is the same object", []Ref{depOtherVersion}, []Ref{dep}, nil},
		{"inventory duplicates pruned once", []Ref{svc, svc}, nil, []Ref{svc}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Prune(tc.inv, tc.want)
			if !slices.Equal(got, tc.wantPruned) {
				t.Errorf("Prune = %v, want %v", got, tc.wantPruned)
			}
		})
	}
}

func obj(m map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: m} }

func TestRolloutOf(t *testing.T) {
	sts := func(gen, observed, replicas, ready, updated, statusReplicas int64, cur, upd string) *unstructured.Unstructured {
		return obj(map[string]any{
			"apiVersion": "apps/v1", "kind": "StatefulSet",
			"metadata": map[string]any{"name": "e", "generation": gen},
			"spec":     map[string]any{"replicas": replicas},
			"status": map[string]any{"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated,
				"replicas": statusReplicas, "currentRevision": cur, "updateRevision": upd},
		})
	}
	for _, tc := range []struct {
		name string
		u    *unstructured.Unstructured
		done bool
		msg  string
	}{
		{"done", sts(2, 2, 2, 2, 2, 2, "r2", "r2"), true, ""},
		{"controller behind", sts(3, 2, 2, 2, 2, 2, "r2", "r2"), false, "waiting for the controller"},
		{"updating", sts(2, 2, 2, 2, 1, 2, "r1", "r2"), false, "1 of 2 updated"},
		{"not ready", sts(2, 2, 2, 1, 2, 2, "r2", "r2"), false, "1 of 2 ready"},
		{"old replicas", sts(2, 2, 2, 2, 2, 3, "r2", "r2"), false, "1 old replicas"},
		{"revision not current", sts(2, 2, 2, 2, 2, 2, "r1", "r2"), false, "revision r2"},
		{"deployment without replicas means 1", obj(map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d", "generation": int64(1)},
			"status": map[string]any{"observedGeneration": int64(1), "readyReplicas": int64(1), "updatedReplicas": int64(1), "replicas": int64(1), "availableReplicas": int64(1)},
		}), true, ""},
		{"deployment not available", obj(map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d", "generation": int64(1)},
			"spec":   map[string]any{"replicas": int64(2)},
			"status": map[string]any{"observedGeneration": int64(1), "readyReplicas": int64(2), "updatedReplicas": int64(2), "replicas": int64(2), "availableReplicas": int64(1)},
		}), false, "1 of 2 available"},
		{"daemonset", obj(map[string]any{
			"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": map[string]any{"name": "d", "generation": int64(1)},
			"status": map[string]any{"observedGeneration": int64(1), "desiredNumberScheduled": int64(3), "updatedNumberScheduled": int64(3), "numberReady": int64(2)},
		}), false, "2 of 3 ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := RolloutOf(tc.u)
			if r.Done != tc.done || !strings.Contains(r.Message, tc.msg) {
				t.Errorf("RolloutOf = %+v, want done=%v message containing %q", r, tc.done, tc.msg)
			}
		})
	}
}

func TestSameIgnoresServerFields(t *testing.T) {
	a := obj(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "c", "resourceVersion": "1", "uid": "u", "managedFields": []any{"x"}},
		"data":     map[string]any{"k": "v"}})
	b := a.DeepCopy()
	b.SetResourceVersion("2")
	b.SetManagedFields(nil)
	if !Same(a, b) {
		t.Error("server-kept fields made two equal objects differ")
	}
	b.Object["data"] = map[string]any{"k": "w"}
	if Same(a, b) {
		t.Error("a data change went unseen")
	}
	if Same(a, nil) || !Same(nil, nil) {
		t.Error("nil handling")
	}
}

func TestScaledByHPA(t *testing.T) {
	hpa := obj(map[string]any{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
		"metadata": map[string]any{"name": "h", "namespace": "kubecdn"},
		"spec":     map[string]any{"scaleTargetRef": map[string]any{"kind": "StatefulSet", "name": "kubecdn-edge"}}})
	got := ScaledByHPA([]*unstructured.Unstructured{hpa})
	if !got.Has("StatefulSet/kubecdn/kubecdn-edge") || got.Len() != 1 {
		t.Errorf("ScaledByHPA = %v", got.UnsortedList())
	}
}

func TestSortForApply(t *testing.T) {
	mk := func(kind, name string) *unstructured.Unstructured {
		u := obj(map[string]any{"apiVersion": "v1", "kind": kind, "metadata": map[string]any{"name": name}})
		return u
	}
	objs := []*unstructured.Unstructured{mk("Deployment", "d"), mk("Service", "s"), mk("Namespace", "n"), mk("HorizontalPodAutoscaler", "h"), mk("ConfigMap", "c")}
	SortForApply(objs)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	want := []string{"Namespace", "ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler"}
	if !slices.Equal(kinds, want) {
		t.Errorf("order %v, want %v", kinds, want)
	}
}

// testCDN is a CDN of two always-on regions (us-west-2 shielded by
// us-east-1) and an autoscale region, routed by failover with us-west-2
// first.
func testCDN(t *testing.T) *config.CDN {
	c := configtest.Minimal()
	c.Spec.Routing = config.Routing{
		Policy:   config.PolicyFailover,
		TTL:      configtest.Duration(t, "20s"),
		Failover: []string{"us-west-2"},
		Weights:  map[string]int{"us-east-1": 3},
	}
	west := configtest.Region("us-west-2", "aws")
	west.Parent = "us-east-1"
	c.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.Region("us-east-1", "aws"), west},
		Autoscale: []config.Region{configtest.Region("eu-west-1", "gcp")},
	}
	return c
}

func TestDesired(t *testing.T) {
	cfg := configtest.Parse(t, testCDN(t))
	addrs := map[string]RegionState{
		"us-east-1": {Edges: []Address{{IP: "192.0.2.1", Port: 80}, {IP: "2001:db8::1", Port: 80}}},
		"us-west-2": {Edges: []Address{{Hostname: "lb-123.elb.amazonaws.com", Port: 80}}},
	}
	d := Desired(cfg, addrs)
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if d.Owner != "demo" || d.Zone != "cdn.example.com" {
		t.Errorf("owner/zone = %q/%q", d.Owner, d.Zone)
	}
	var names []string
	for _, n := range d.Names {
		names = append(names, n.FQDN)
	}
	wantNames := []string{"www.cdn.example.com", "us-east-1.edges.cdn.example.com", "us-west-2.edges.cdn.example.com"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("names %v, want %v", names, wantNames)
	}
	www := d.Names[0]
	if www.Policy != config.PolicyFailover || www.TTL.String() != "20s" || len(www.Targets) != 2 {
		t.Fatalf("www = %+v", www)
	}
	east, west := www.Targets[0], www.Targets[1]
	if east.Region != "us-east-1" || east.Weight != 3 || east.Order != 1 || len(east.Addresses) != 2 || east.Addresses[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("east = %+v", east)
	}
	if west.Hostname != "lb-123.elb.amazonaws.com" || west.Addresses != nil || west.Order != 0 || west.Weight != 1 {
		t.Errorf("west = %+v", west)
	}
	if east.Health != (publish.Health{Protocol: "http", Port: 80, Path: config.HealthPath, Host: "www.cdn.example.com"}) {
		t.Errorf("health = %+v", east.Health)
	}
	if east.Location == nil {
		t.Error("no location for a built-in region")
	}
	if r := d.Names[1]; r.Policy != config.PolicyAll || len(r.Targets) != 1 || r.Targets[0].Region != "us-east-1" {
		t.Errorf("region name = %+v", r)
	}
}

func TestDesiredApps(t *testing.T) {
	dir := t.TempDir()
	c := testCDN(t)
	c.Spec.Apps = []config.App{{Name: "video", Manifests: dir, Regions: []string{"us-east-1"}, Services: []config.AppService{
		{Service: "rtmp", Hostname: "live.cdn.example.com", Port: 1935},
		{Service: "web", Hostname: "tv.cdn.example.com", Health: config.AppHealth{Protocol: "http", Path: "/ok"}},
	}}}
	cfg := configtest.Parse(t, c)
	addrs := map[string]RegionState{
		"us-east-1": {Edges: []Address{{IP: "192.0.2.1"}}, Endpoints: map[string][]Address{
			"live.cdn.example.com": {{IP: "192.0.2.9", Port: 1935}},
			"tv.cdn.example.com":   {{IP: "192.0.2.10", Port: 8080}},
		}},
		// An app endpoint of a region the app does not run in is ignored.
		"us-west-2": {Edges: []Address{{IP: "192.0.2.2"}}, Endpoints: map[string][]Address{"live.cdn.example.com": {{IP: "192.0.2.99", Port: 1935}}}},
	}
	d := Desired(cfg, addrs)
	byName := map[string]publish.Name{}
	for _, n := range d.Names {
		byName[n.FQDN] = n
	}
	live := byName["live.cdn.example.com"]
	if len(live.Targets) != 1 || live.Targets[0].Addresses[0] != netip.MustParseAddr("192.0.2.9") || live.Targets[0].Health != (publish.Health{Protocol: "tcp", Port: 1935, Host: "live.cdn.example.com"}) {
		t.Errorf("live = %+v", live)
	}
	tv := byName["tv.cdn.example.com"]
	if len(tv.Targets) != 1 || tv.Targets[0].Health.Protocol != "http" || tv.Targets[0].Health.Path != "/ok" || tv.Targets[0].Health.Port != 8080 {
		t.Errorf("tv = %+v", tv)
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &lookupError{host}
}

type lookupError struct{ host string }

func (e *lookupError) Error() string { return "no such host " + e.host }

func TestWithAddresses(t *testing.T) {
	cfg := configtest.Parse(t, testCDN(t))
	addrs := map[string]RegionState{
		"us-east-1": {Edges: []Address{{IP: "192.0.2.1", Port: 80}}, DNS: []Address{{IP: "192.0.2.53", Port: 53}}},
		"us-west-2": {Edges: []Address{{Hostname: "lb.example.net", Port: 80}, {Hostname: "gone.example.net"}}},
	}
	res := fakeResolver{"lb.example.net": {netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")}}
	got, errs := WithAddresses(context.Background(), cfg, addrs, res)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "gone.example.net") {
		t.Errorf("errors %v, want one naming gone.example.net", errs)
	}
	east, west, eu := got.Spec.Regions.AlwaysOn[0], got.Spec.Regions.AlwaysOn[1], got.Spec.Regions.Autoscale[0]
	if !slices.Equal(east.Edges, []string{"192.0.2.1:80"}) || east.DNS != "192.0.2.53:53" {
		t.Errorf("east = %v %q", east.Edges, east.DNS)
	}
	if !slices.Equal(west.Edges, []string{"198.51.100.7:80", "[2001:db8::7]:80"}) {
		t.Errorf("west = %v", west.Edges)
	}
	if eu.Edges != nil {
		t.Errorf("closed region got edges %v", eu.Edges)
	}
	if cfg.Spec.Regions.AlwaysOn[0].Edges != nil {
		t.Error("WithAddresses changed its input")
	}
	// The result is still a valid file: the dns will load it.
	if err := got.Validate(); err != nil {
		t.Errorf("the file with addresses does not validate: %v", err)
	}
}

func TestUnion(t *testing.T) {
	a, b, c := ref("ConfigMap", "x", "a"), ref("ConfigMap", "x", "b"), ref("Service", "x", "c")
	if got := union([]Ref{a, b}, []Ref{b, c, c}); !slices.Equal(got, []Ref{a, b, c}) {
		t.Errorf("union = %v", got)
	}
}
