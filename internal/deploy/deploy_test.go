package deploy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/test/e2e"
)

const appDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: rtmp, namespace: video}
spec:
  replicas: 1
  selector: {matchLabels: {app: rtmp}}
  template:
    metadata: {labels: {app: rtmp}}
    spec:
      nodeSelector: {beta.kubernetes.io/os: linux}
      containers:
        - {name: rtmp, image: example.com/rtmp:1, ports: [{containerPort: 1935}]}
---
apiVersion: v1
kind: Service
metadata: {name: rtmp, namespace: video}
spec:
  type: LoadBalancer
  selector: {app: rtmp}
  ports: [{name: rtmp, port: 1935, targetPort: 1935}]
`

type env struct {
	t          *testing.T
	dir        string
	kubeconfig string
	clusters   map[string]*kubetest.Cluster
	out        *e2e.SyncBuffer
	held       atomic.Bool
	// heldEdges names the region whose edges' rollout is held (none if nil).
	heldEdges atomic.Value
}

func newEnv(t *testing.T) *env {
	cs := kubetest.Start(t, "us-east-1", "us-west-2")
	e := &env{t: t, dir: t.TempDir(), clusters: map[string]*kubetest.Cluster{}, out: &e2e.SyncBuffer{}}
	e.kubeconfig = filepath.Join(e.dir, "kubeconfig")
	kubetest.WriteKubeconfig(t, e.kubeconfig, cs...)
	// A context whose API server is not there: a region that cannot be reached.
	kc, err := clientcmd.LoadFromFile(e.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", InsecureSkipTLSVerify: true}
	kc.Contexts["nowhere"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: kc.Contexts["us-east-1"].AuthInfo}
	if err := clientcmd.WriteToFile(*kc, e.kubeconfig); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		e.clusters[c.Name] = c
		c.StartControllers(t, kubetest.Controllers{
			Interval: 50 * time.Millisecond,
			LoadBalancer: func(ns, name string) string {
				switch name {
				case "kubecdn-edge-public":
					return fmt.Sprintf("192.0.2.%d", i+1)
				case "kubecdn-dns":
					return fmt.Sprintf("192.0.2.%d", i+53)
				case "rtmp":
					return fmt.Sprintf("198.51.100.%d", i+1)
				}
				return ""
			},
			Hold: func(kind, ns, name string) bool {
				return e.held.Load() && kind == "Deployment" && name == "kubecdn-dns" ||
					e.heldEdges.Load() == c.Name && kind == "StatefulSet" && name == "kubecdn-edge"
			},
		})
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "video"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "video", "rtmp.yaml"), []byte(appDeployment), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// file writes a CDN file and loads it; regions maps a region to its
// context, app adds the video app (manifests in e.dir/video).
func (e *env) file(regions [][2]string, app bool) *config.CDN {
	e.t.Helper()
	c := configtest.Minimal()
	c.Spec.Routing = config.Routing{Policy: config.PolicyLatency, TTL: configtest.Duration(e.t, "1s")}
	c.Spec.Regions.AlwaysOn = nil
	for _, r := range regions {
		c.Spec.Regions.AlwaysOn = append(c.Spec.Regions.AlwaysOn, configtest.ClusterRegion(r[0], "aws", e.kubeconfig, r[1]))
	}
	if app {
		c.Spec.Apps = []config.App{{Name: "video", Manifests: "video", Services: []config.AppService{
			{Service: "rtmp", Hostname: "live.cdn.example.com"},
		}}}
	}
	return configtest.Load(e.t, e.dir, c)
}

func (e *env) deploy(cfg *config.CDN, edit func(*deploy.Options)) deploy.Result {
	e.t.Helper()
	o := deploy.Options{Poll: 50 * time.Millisecond, Timeout: 30 * time.Second, Drain: 300 * time.Millisecond, Out: e.out}
	o.Render.Image = "example.com/kubecdn:test"
	if edit != nil {
		edit(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := deploy.Run(ctx, cfg, o)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) client(region string) kubernetes.Interface { return e.clusters[region].Client }

// dnsFile is the CDN file the region's dns reads, from its ConfigMap.
func (e *env) dnsFile(region string) *config.CDN {
	e.t.Helper()
	cm, err := e.client(region).CoreV1().ConfigMaps("kubecdn").Get(context.Background(), "kubecdn-config", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(cm.Data["kubecdn.yaml"]))
	if err != nil {
		e.t.Fatalf("%s: the dns's file does not load: %v", region, err)
	}
	return cfg
}

func edgesOf(cfg *config.CDN) map[string][]string {
	out := map[string][]string{}
	for _, r := range cfg.AllRegions() {
		if len(r.Edges) > 0 {
			out[r.Name] = r.Edges
		}
	}
	return out
}

// hopKey is the region's hop key Secret's value and labels; "" when it has none.
func hopKey(t *testing.T, c kubernetes.Interface) (string, map[string]string) {
	t.Helper()
	sec, err := c.CoreV1().Secrets("kubecdn").Get(context.Background(), "kubecdn-hop", metav1.GetOptions{})
	if errors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(sec.Data["key"]), sec.Labels
}

func changes(res deploy.Result) []string {
	var out []string
	for _, r := range res.Regions {
		for _, c := range r.Changes {
			out = append(out, r.Region+" "+c.Action+" "+c.Ref.String())
		}
	}
	return out
}

func TestDeploy(t *testing.T) {
	e := newEnv(t)
	both := [][2]string{{"us-east-1", "us-east-1"}, {"us-west-2", "us-west-2"}}
	ctx := context.Background()

	// First deploy: everything created, rollouts waited for (the dns is
	// held back for a moment), addresses read and given to every dns.
	e.held.Store(true)
	go func() { // release the dns once deploy has said it waits for it
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(e.out.String(), "deployment/kubecdn/kubecdn-dns 0/2 ready") {
				break
			}
		}
		e.held.Store(false)
	}()
	cfg := e.file(both, true)
	res := e.deploy(cfg, nil)
	if err := res.Err(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.out)
	}
	if !strings.Contains(e.out.String(), "deployment/kubecdn/kubecdn-dns 0/2 ready") {
		t.Errorf("no progress line for the held rollout:\n%s", e.out)
	}
	// The API server's warnings (the app's deprecated node selector) are
	// the region's lines, once each.
	if w := "us-west-2      warning from the API server: spec.template.spec.nodeSelector[beta.kubernetes.io/os]: deprecated"; strings.Count(e.out.String(), w) != 1 {
		t.Errorf("want one line %q:\n%s", w, e.out)
	}
	// The Secrets the pods read at start (optional there) come before
	// the pods, so none starts without them.
	got := changes(res)
	for _, sec := range []string{"kubecdn-hop", "kubecdn-admin"} {
		i := slices.Index(got, "us-east-1 created secret/kubecdn/"+sec)
		j := slices.Index(got, "us-east-1 created statefulset/kubecdn/kubecdn-edge")
		if i < 0 || j < 0 || i > j {
			t.Errorf("%s not created before the edges: %v", sec, got)
		}
	}
	for _, region := range []string{"us-east-1", "us-west-2"} {
		want := map[string][]string{"us-east-1": {"192.0.2.1:80"}, "us-west-2": {"192.0.2.2:80"}}
		if got := edgesOf(e.dnsFile(region)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the dns's edges = %v, want %v", region, got, want)
		}
		f := e.dnsFile(region)
		if got := f.Spec.Regions.AlwaysOn[1].Endpoints["live.cdn.example.com"]; !slices.Equal(got, []string{"198.51.100.2:1935"}) {
			t.Errorf("%s: app endpoints of us-west-2 = %v", region, got)
		}
		sts, err := e.client(region).AppsV1().StatefulSets("kubecdn").Get(ctx, "kubecdn-edge", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sts.Labels["app.kubernetes.io/managed-by"] != "kubecdn" || sts.Labels["kubecdn.io/region"] != region {
			t.Errorf("%s: labels %v", region, sts.Labels)
		}
		if m := sts.ManagedFields; len(m) == 0 || m[0].Manager != deploy.FieldManager || m[0].Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("%s: managed fields %+v, want server-side apply by %q", region, m, deploy.FieldManager)
		}
		// The edges' admin token, made once.
		sec, err := e.client(region).CoreV1().Secrets("kubecdn").Get(ctx, "kubecdn-admin", metav1.GetOptions{})
		if err != nil || len(sec.Data["token"]) != 64 {
			t.Errorf("%s: admin secret: %v, token %q", region, err, sec.Data["token"])
		}
		// The hop key: one for both regions (checked below the loop),
		// kubecdn's.
		key, labels := hopKey(t, e.client(region))
		if len(key) != 64 || labels["kubecdn.io/cdn"] != "demo" || labels["kubecdn.io/region"] != region {
			t.Errorf("%s: hop key %q, labels %v", region, key, labels)
		}
		// The app, labelled as kubecdn's too, read with kubectl.
		out, err := e.clusters[region].Kubectl(ctx, "-n", "video", "get", "deployment", "rtmp", "-o", "jsonpath={.metadata.labels.kubecdn\\.io/app}")
		if err != nil || out != "video" {
			t.Errorf("%s: kubectl get deployment rtmp: %q %v", region, out, err)
		}
	}

	hop, _ := hopKey(t, e.client("us-east-1"))
	if west, _ := hopKey(t, e.client("us-west-2")); west != hop {
		t.Errorf("hop keys differ: us-east-1 %q, us-west-2 %q", hop, west)
	}

	// A second run changes nothing, the hop key included (nor prunes it),
	// and says so with counts that add up.
	e.out = &e2e.SyncBuffer{}
	res = e.deploy(cfg, nil)
	if err := res.Err(); err != nil || len(changes(res)) != 0 {
		t.Fatalf("re-run: %v, changes %v", err, changes(res))
	}
	checkCounts(t, e.out.String(), 2)
	for _, region := range []string{"us-east-1", "us-west-2"} {
		if got, _ := hopKey(t, e.client(region)); got != hop {
			t.Errorf("%s: hop key changed by a re-run: %q, was %q", region, got, hop)
		}
	}

	// Regions whose hop keys disagree are reported, and neither changed.
	setHop := func(v string) {
		t.Helper()
		sec, err := e.client("us-west-2").CoreV1().Secrets("kubecdn").Get(ctx, "kubecdn-hop", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Data["key"] = []byte(v)
		if _, err := e.client("us-west-2").CoreV1().Secrets("kubecdn").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	other := strings.Repeat("7", 64)
	setHop(other)
	res = e.deploy(cfg, nil)
	if err := res.HopErr; err == nil || !strings.Contains(err.Error(), "us-east-1 signs with a key not held by us-west-2") || res.Failed() != 0 {
		t.Errorf("disagreeing hop keys: hop error %v, %d regions failed", err, res.Failed())
	}
	east, _ := hopKey(t, e.client("us-east-1"))
	west, _ := hopKey(t, e.client("us-west-2"))
	if east != hop || west != other {
		t.Errorf("disagreeing hop keys changed: us-east-1 %q, us-west-2 %q", east, west)
	}
	setHop(hop)

	// Dry run of a change: reported, not made.
	res = e.deploy(cfg, func(o *deploy.Options) { o.DryRun = true; o.Render.DNSReplicas = 3 })
	if got := changes(res); !slices.Contains(got, "us-east-1 configured deployment/kubecdn/kubecdn-dns") || len(got) != 2 {
		t.Errorf("dry run changes = %v", got)
	}
	d, _ := e.client("us-east-1").AppsV1().Deployments("kubecdn").Get(ctx, "kubecdn-dns", metav1.GetOptions{})
	if *d.Spec.Replicas != 2 {
		t.Errorf("dry run changed replicas to %d", *d.Spec.Replicas)
	}

	// Drift: someone scales the dns by hand and the HPA scales the edges;
	// the dns is put back, the HPA's choice is left alone.
	scale := func(kind, name string, n int32) {
		t.Helper()
		p := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n)
		var err error
		if kind == "Deployment" {
			_, err = e.client("us-east-1").AppsV1().Deployments("kubecdn").Patch(ctx, name, "application/merge-patch+json", p, metav1.PatchOptions{FieldManager: "kubectl-edit"})
		} else {
			_, err = e.client("us-east-1").AppsV1().StatefulSets("kubecdn").Patch(ctx, name, "application/merge-patch+json", p, metav1.PatchOptions{FieldManager: "horizontal-pod-autoscaler"})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	scale("Deployment", "kubecdn-dns", 5)
	scale("StatefulSet", "kubecdn-edge", 4)
	res = e.deploy(cfg, nil)
	if got := changes(res); !slices.Equal(got, []string{"us-east-1 configured deployment/kubecdn/kubecdn-dns"}) {
		t.Errorf("drift changes = %v", got)
	}
	d, _ = e.client("us-east-1").AppsV1().Deployments("kubecdn").Get(ctx, "kubecdn-dns", metav1.GetOptions{})
	sts, _ := e.client("us-east-1").AppsV1().StatefulSets("kubecdn").Get(ctx, "kubecdn-edge", metav1.GetOptions{})
	if *d.Spec.Replicas != 2 || *sts.Spec.Replicas != 4 {
		t.Errorf("after drift: dns replicas %d (want 2), edge replicas %d (want the HPA's 4)", *d.Spec.Replicas, *sts.Spec.Replicas)
	}

	// Edges scaled to 0 by hand are scaled back to the autoscaler's
	// minimum (at 0 it would never scale them again); while none is ready
	// the region is out of DNS, not kept there on its last addresses.
	if _, err := e.clusters["us-west-2"].Kubectl(ctx, "-n", "kubecdn", "scale", "statefulset", "kubecdn-edge", "--replicas=0"); err != nil {
		t.Fatal(err)
	}
	waitReady := time.Now().Add(10 * time.Second) // the controllers see 0 of 0 ready
	for {
		sts, err := e.client("us-west-2").AppsV1().StatefulSets("kubecdn").Get(ctx, "kubecdn-edge", metav1.GetOptions{})
		if err == nil && sts.Status.ObservedGeneration == sts.Generation && sts.Status.ReadyReplicas == 0 {
			break
		}
		if time.Now().After(waitReady) {
			t.Fatalf("the controllers did not scale the edges to 0: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.heldEdges.Store("us-west-2") // no edge comes back ready
	res = e.deploy(cfg, func(o *deploy.Options) { o.Timeout = 2 * time.Second })
	if got := changes(res); !slices.Equal(got, []string{"us-west-2 configured statefulset/kubecdn/kubecdn-edge"}) {
		t.Errorf("edges at 0: changes = %v", got)
	}
	if sts, err := e.client("us-west-2").AppsV1().StatefulSets("kubecdn").Get(ctx, "kubecdn-edge", metav1.GetOptions{}); err != nil || *sts.Spec.Replicas != 2 {
		t.Errorf("edges scaled to 0 by hand: %v, %d replicas, want the autoscaler's minimum 2\n%s", err, *sts.Spec.Replicas, e.out)
	}
	if res.Regions[1].Err == nil || !res.Regions[1].EdgesDown {
		t.Errorf("no edge ready: us-west-2's result %+v, want its rollout failed and its edges down", res.Regions[1])
	}
	for _, region := range []string{"us-east-1", "us-west-2"} {
		if got := edgesOf(e.dnsFile(region)); fmt.Sprint(got) != fmt.Sprint(map[string][]string{"us-east-1": {"192.0.2.1:80"}}) {
			t.Errorf("%s: with no edge of us-west-2 ready, the dns's edges = %v", region, got)
		}
	}
	e.heldEdges.Store("")
	res = e.deploy(cfg, nil)
	if err := res.Err(); err != nil {
		t.Fatalf("edges back: %v", err)
	}
	if got := edgesOf(e.dnsFile("us-east-1"))["us-west-2"]; !slices.Equal(got, []string{"192.0.2.2:80"}) {
		t.Errorf("us-west-2's edges back in DNS = %v", got)
	}

	// A region that cannot be reached fails alone; DNS keeps its last
	// known addresses.
	cfgBroken := e.file([][2]string{{"us-east-1", "us-east-1"}, {"us-west-2", "nowhere"}}, true)
	res = e.deploy(cfgBroken, func(o *deploy.Options) { o.Timeout = 5 * time.Second })
	if res.Failed() != 1 || res.Regions[1].Err == nil || res.Regions[0].Err != nil {
		t.Fatalf("one unreachable region: failed %d, results %+v", res.Failed(), res.Regions)
	}
	if got := edgesOf(e.dnsFile("us-east-1"))["us-west-2"]; !slices.Equal(got, []string{"192.0.2.2:80"}) {
		t.Errorf("unreachable region's edges in DNS = %v, want the last known", got)
	}

	// The app leaves the file: its objects are pruned.
	cfg = e.file(both, false)
	res = e.deploy(cfg, nil)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if got := changes(res); !slices.Contains(got, "us-east-1 pruned deployment/video/rtmp") || !slices.Contains(got, "us-west-2 pruned service/video/rtmp") {
		t.Errorf("prune changes = %v", got)
	}
	if _, err := e.client("us-west-2").AppsV1().Deployments("video").Get(ctx, "rtmp", metav1.GetOptions{}); !errors.IsNotFound(err) {
		t.Errorf("pruned deployment still there: %v", err)
	}

	// A region leaves the file: out of DNS first, torn down after the TTL.
	e.out = &e2e.SyncBuffer{}
	cfg = e.file(both[:1], false)
	res = e.deploy(cfg, nil)
	if err := res.Err(); err != nil {
		t.Fatalf("remove region: %v\n%s", err, e.out)
	}
	if got := edgesOf(e.dnsFile("us-east-1")); len(got) != 1 {
		t.Errorf("after removal the dns still has %v", got)
	}
	out := e.out.String()
	dnsAt, downAt := strings.Index(out, "dns "), strings.Index(out, "torn down")
	if dnsAt < 0 || downAt < 0 || downAt < dnsAt {
		t.Errorf("want the DNS line before the teardown line:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.client("us-west-2").CoreV1().Namespaces().Get(ctx, "kubecdn", metav1.GetOptions{})
		if errors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed region's namespace still there: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And the next run does not try again.
	res = e.deploy(cfg, nil)
	if err := res.Err(); err != nil || len(res.Regions) != 1 {
		t.Errorf("after removal: %v, %d regions", err, len(res.Regions))
	}
}

// An autoscale region is deployed once opened, stays open in later runs,
// and leaves DNS and is torn down when closed.
func TestOpenAndCloseAutoscaleRegion(t *testing.T) {
	cs := kubetest.Start(t, "us-east-1", "eu-west-1")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubetest.WriteKubeconfig(t, kubeconfig, cs...)
	for i, c := range cs {
		c.StartControllers(t, kubetest.Controllers{Interval: 50 * time.Millisecond, LoadBalancer: func(ns, name string) string {
			return fmt.Sprintf("192.0.2.%d", 10*i+len(name)%10)
		}})
	}
	c := configtest.Minimal()
	c.Spec.Routing.TTL = configtest.Duration(t, "1s")
	c.Spec.Regions = config.Regions{
		AlwaysOn:  []config.Region{configtest.ClusterRegion("us-east-1", "aws", kubeconfig, "us-east-1")},
		Autoscale: []config.Region{configtest.ClusterRegion("eu-west-1", "gcp", kubeconfig, "eu-west-1")},
	}
	cfg := configtest.Load(t, dir, c)
	ctx := context.Background()
	run := func(edit func(*deploy.Options)) deploy.Result {
		t.Helper()
		o := deploy.Options{Poll: 50 * time.Millisecond, Timeout: 30 * time.Second, Drain: 200 * time.Millisecond}
		if edit != nil {
			edit(&o)
		}
		res, err := deploy.Run(ctx, cfg, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		return res
	}
	euDeployed := func() bool {
		_, err := cs[1].Client.CoreV1().Namespaces().Get(ctx, "kubecdn", metav1.GetOptions{})
		return err == nil
	}
	if res := run(nil); len(res.Regions) != 1 || euDeployed() {
		t.Fatalf("a closed autoscale region was deployed: %+v", res.Regions)
	}
	if _, err := deploy.Run(ctx, cfg, deploy.Options{Open: []string{"us-east-1"}}); err == nil {
		t.Error("opening an always-on region was accepted")
	}
	hop, _ := hopKey(t, cs[0].Client)
	if len(hop) != 64 {
		t.Fatalf("us-east-1's hop key = %q", hop)
	}
	// A dry run would give the region the hop key, and creates nothing.
	res := run(func(o *deploy.Options) { o.Open = []string{"eu-west-1"}; o.DryRun = true })
	if got := changes(res); !slices.Contains(got, "eu-west-1 created secret/kubecdn/kubecdn-hop") || euDeployed() {
		t.Errorf("dry run of the opening: changes %v, deployed %v", got, euDeployed())
	}
	run(func(o *deploy.Options) { o.Open = []string{"eu-west-1"} })
	if !euDeployed() {
		t.Fatal("opened region not deployed")
	}
	// The region that had a hop key gave it to the new one.
	if got, _ := hopKey(t, cs[1].Client); got != hop {
		t.Errorf("opened region's hop key = %q, want us-east-1's %q", got, hop)
	}
	if res := run(nil); len(res.Regions) != 2 || len(changes(res)) != 0 {
		t.Fatalf("the opened region did not stay open unchanged: %+v", changes(res))
	}
	res = run(func(o *deploy.Options) { o.Close = []string{"eu-west-1"} })
	if len(res.Regions) != 2 || !res.Regions[1].Removed {
		t.Fatalf("close: %+v", res.Regions)
	}
	deadline := time.Now().Add(10 * time.Second)
	for euDeployed() {
		if time.Now().After(deadline) {
			t.Fatal("closed region not torn down")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res := run(nil); len(res.Regions) != 1 {
		t.Fatalf("the closed region came back: %+v", res.Regions)
	}
}

var countsLine = regexp.MustCompile(`(?m)^(\S+) +applied (\d+) objects: (\d+) created, (\d+) configured, (\d+) unchanged, (\d+) pruned$`)

// checkCounts checks that out has a count line for each of n regions and
// that in each, the objects applied are those created, configured or
// unchanged (pruned ones are no longer applied).
func checkCounts(t *testing.T, out string, n int) {
	t.Helper()
	lines := countsLine.FindAllStringSubmatch(out, -1)
	if len(lines) != n {
		t.Errorf("%d count lines, want %d:\n%s", len(lines), n, out)
	}
	for _, m := range lines {
		var v [5]int
		for i := range v {
			v[i], _ = strconv.Atoi(m[i+2])
		}
		if v[0] != v[1]+v[2]+v[3] {
			t.Errorf("%s: counts do not add up: %q", m[1], m[0])
		}
	}
}
