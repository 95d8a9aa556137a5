package render

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/edge"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

const testImage = "ghcr.io/kubecdn/kubecdn:v0.0.0-test"

func loadCDN(t *testing.T) *config.CDN {
	t.Helper()
	cfg, err := config.Load("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}

// parseCDN parses the test file after edit changes its text.
func parseCDN(t *testing.T, edit func(string) string) *config.CDN {
	t.Helper()
	raw, err := os.ReadFile("../config/testdata/kubecdn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(edit(string(raw))))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

func mustRender(t *testing.T, cfg *config.CDN, o Options) map[string][]Object {
	t.Helper()
	out, err := Render(cfg, o)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

func find[T Object](t *testing.T, objs []Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.(T); ok && o.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %s", zero, name)
	return zero
}

// TestGolden keeps the manifests of the test file reviewable: run with
// -update after an intended change and read the diff.
func TestGolden(t *testing.T) {
	out := mustRender(t, loadCDN(t), Options{Image: testImage, ServiceMonitor: true})
	checkGolden(t, filepath.Join("testdata", "golden"), out)
}

// checkGolden compares out, written by WriteDir, with the golden
// directory, or rewrites that with -update.
func checkGolden(t *testing.T, golden string, out map[string][]Object) {
	t.Helper()
	if *update {
		if err := os.RemoveAll(golden); err != nil {
			t.Fatal(err)
		}
		if err := WriteDir(golden, out); err != nil {
			t.Fatal(err)
		}
	}
	got := t.TempDir()
	if err := WriteDir(got, out); err != nil {
		t.Fatal(err)
	}
	want := listFiles(t, golden)
	have := listFiles(t, got)
	if !slices.Equal(want, have) {
		t.Fatalf("files differ from golden (run go test -update):\n got %v\nwant %v", have, want)
	}
	for _, f := range want {
		w, _ := os.ReadFile(filepath.Join(golden, f))
		g, _ := os.ReadFile(filepath.Join(got, f))
		if !bytes.Equal(w, g) {
			t.Errorf("%s differs from golden (run go test -update):\n%s", f, firstDiff(string(g), string(w)))
		}
	}
}

// TestGoldenMonitoring keeps both kinds of monitoring reviewable: a
// Prometheus of its own in us-east-1, the operator's objects in us-west-2.
func TestGoldenMonitoring(t *testing.T) {
	cfg := loadCDN(t)
	out := mustRender(t, cfg, Options{Image: testImage, Monitoring: MonitoringPrometheus, Regions: []string{"us-east-1"}})
	maps.Copy(out, mustRender(t, cfg, Options{Image: testImage, Monitoring: MonitoringOperator, Regions: []string{"us-west-2"}}))
	checkGolden(t, filepath.Join("testdata", "golden-monitoring"), out)
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + a + "\nwant: " + b
		}
	}
	return ""
}

// TestRoundTrip decodes every rendered file strictly with the typed k8s
// decoder (unknown or misspelt fields fail) and checks nothing was lost.
func TestRoundTrip(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	dec := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	out := mustRender(t, loadCDN(t), Options{Image: testImage, ServiceMonitor: true})
	n := 0
	for _, region := range Regions(out) {
		for _, o := range out[region] {
			b, err := Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			name := region + "/" + FileName(o)
			if u, ok := o.(*unstructured.Unstructured); ok {
				var back map[string]any
				if err := yaml.Unmarshal(b, &back); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !equality.Semantic.DeepEqual(u.Object, back) {
					t.Errorf("%s: round trip changed the object:\n%v\n%v", name, u.Object, back)
				}
				n++
				continue
			}
			got, gvk, err := dec.Decode(b, nil, nil)
			if err != nil {
				t.Fatalf("%s: strict decode: %v\n%s", name, err, b)
			}
			if gvk.Kind != o.GetObjectKind().GroupVersionKind().Kind {
				t.Errorf("%s: decoded kind %s", name, gvk.Kind)
			}
			if !equality.Semantic.DeepEqual(o, got) {
				t.Errorf("%s: round trip changed the object:\n%#v\n%#v", name, o, got)
			}
			n++
		}
	}
	if n < 4*15 {
		t.Errorf("only %d objects checked", n)
	}
	// The decoder is strict: a misspelt field must fail, or the test above
	// proves nothing.
	if _, _, err := dec.Decode([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: None}\n"), nil, nil); err == nil {
		t.Error("strict decoder accepted a misspelt field")
	}
}

// TestEveryObject checks the promises that hold for every object.
func TestEveryObject(t *testing.T) {
	cfg := loadCDN(t)
	out := mustRender(t, cfg, Options{Image: testImage, ServiceMonitor: true, Namespace: "cdn-prod"})
	if got := Regions(out); !slices.Equal(got, []string{"eu-west-1", "onprem-paris", "us-east-1", "us-west-2"}) {
		t.Fatalf("regions %v", got)
	}
	for _, region := range Regions(out) {
		objs := out[region]
		if k := objs[0].GetObjectKind().GroupVersionKind().Kind; k != "Namespace" {
			t.Errorf("%s: first object is a %s", region, k)
		}
		seen := map[string]bool{}
		for _, o := range objs {
			name := region + "/" + FileName(o)
			if seen[FileName(o)] {
				t.Errorf("%s: two objects with one file name", name)
			}
			seen[FileName(o)] = true
			l := o.GetLabels()
			for k, v := range map[string]string{
				"app.kubernetes.io/part-of": "kubecdn", "app.kubernetes.io/managed-by": "kubecdn",
				"kubecdn.io/cdn": "demo", "kubecdn.io/region": region,
			} {
				if l[k] != v {
					t.Errorf("%s: label %s=%q, want %q", name, k, l[k], v)
				}
			}
			if l["app.kubernetes.io/name"] == "" {
				t.Errorf("%s: no app.kubernetes.io/name", name)
			}
			wantNS := "cdn-prod"
			if _, ok := o.(*corev1.Namespace); ok {
				wantNS = ""
				if o.GetName() != "cdn-prod" {
					t.Errorf("%s: namespace named %s", name, o.GetName())
				}
			}
			if o.GetNamespace() != wantNS {
				t.Errorf("%s: namespace %q, want %q", name, o.GetNamespace(), wantNS)
			}
			if spec := podSpec(o); spec != nil {
				checkPod(t, name, spec)
			}
		}
		// The always-on regions also run the autoscaler (the file has
		// autoscale regions): ServiceAccount, Role, RoleBinding,
		// ConfigMap, Deployment.
		want := 15
		if region == "us-east-1" || region == "us-west-2" {
			want += 5
		}
		if len(objs) != want {
			t.Errorf("%s: %d objects, want %d", region, len(objs), want)
		}
	}
	auto := find[*appsv1.StatefulSet](t, out["eu-west-1"], edgeName).Labels[labelAutoscale]
	always := find[*appsv1.StatefulSet](t, out["us-east-1"], edgeName).Labels[labelAutoscale]
	if auto != "true" || always != "" {
		t.Errorf("autoscale label: autoscale region %q, always-on region %q", auto, always)
	}
}

func podSpec(o Object) *corev1.PodSpec {
	switch v := o.(type) {
	case *appsv1.StatefulSet:
		return &v.Spec.Template.Spec
	case *appsv1.Deployment:
		return &v.Spec.Template.Spec
	}
	return nil
}

func checkPod(t *testing.T, name string, spec *corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod security context %+v", name, psc)
	}
	// The autoscaler alone talks to its API server (Lease, state, pods),
	// with a Role limited to that; every other pod has no token.
	if spec.ServiceAccountName != AutoscalerName && (spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken) {
		t.Errorf("%s: service account token mounted", name)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		ok := sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot &&
			sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem &&
			sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation &&
			sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0 &&
			sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
		if !ok {
			t.Errorf("%s/%s: container security context %+v", name, c.Name, sc)
		}
		if c.Image != testImage {
			t.Errorf("%s/%s: image %s", name, c.Name, c.Image)
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[res]; !ok {
				t.Errorf("%s/%s: no %s request", name, c.Name, res)
			}
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			t.Errorf("%s/%s: no memory limit", name, c.Name)
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.StrVal != "admin" {
				t.Errorf("%s/%s: probe %+v", name, c.Name, p)
			}
		}
		if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s/%s: probe paths %s %s", name, c.Name, c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
		}
	}
}

func TestEdge(t *testing.T) {
	noDisk := parseCDN(t, func(s string) string {
		return strings.Replace(s, "    disk: {path: /var/cache/kubecdn, size: 50GiB}\n", "", 1)
	})
	noMemory := parseCDN(t, func(s string) string { return strings.Replace(s, "    memory: 512MiB\n", "", 1) })
	tests := []struct {
		name       string
		cfg        *config.CDN
		opts       Options
		region     string
		wantParent string
		wantDisk   string // edge.yaml disk; "" = no disk tier
		wantClaim  string // volume claim request
		wantMemory string // container memory limit
		wantPeers  int
		wantMax    int32
	}{
		{"root region", loadCDN(t), Options{}, "us-east-1", "", "50GiB", "55Gi", "768Mi", 2, 10},
		{"shielded region", loadCDN(t), Options{}, "us-west-2", "http://us-east-1.edges.cdn.example.com", "50GiB", "55Gi", "768Mi", 2, 10},
		{"parent template", loadCDN(t), Options{ParentURL: "https://{region}-{namespace}.shield.example.net"}, "us-west-2", "https://us-east-1-kubecdn.shield.example.net", "50GiB", "55Gi", "768Mi", 2, 10},
		{"more replicas", loadCDN(t), Options{EdgeReplicas: 12}, "us-east-1", "", "50GiB", "55Gi", "768Mi", 12, 12},
		{"no disk tier", noDisk, Options{}, "us-east-1", "", "", "", "768Mi", 2, 10},
		{"default memory", noMemory, Options{EdgeReplicas: 3, MaxEdgeReplicas: 5}, "us-east-1", "", "50GiB", "55Gi", "512Mi", 3, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := mustRender(t, tt.cfg, tt.opts)[tt.region]
			cm := find[*corev1.ConfigMap](t, objs, ConfigName)
			var ef edgeFile
			if err := yaml.UnmarshalStrict([]byte(cm.Data["edge.yaml"]), &ef); err != nil {
				t.Fatal(err)
			}
			if ef.Video != config.VideoDefaults() {
				t.Errorf("edge.yaml video %+v, want the defaults %+v", ef.Video, config.VideoDefaults())
			}
			if ef.Parent != tt.wantParent || ef.Disk != tt.wantDisk || ef.Region != tt.region || ef.Origin != "https://origin.example.com" {
				t.Errorf("edge.yaml %+v", ef)
			}
			if !slices.Equal(ef.Hostnames, []string{"www.cdn.example.com", "video.cdn.example.com"}) {
				t.Errorf("hostnames %v", ef.Hostnames)
			}
			ss := find[*appsv1.StatefulSet](t, objs, edgeName)
			if ss.Spec.ServiceName != edgeName || *ss.Spec.Replicas != int32(tt.wantPeers) {
				t.Errorf("statefulset service %s replicas %d", ss.Spec.ServiceName, *ss.Spec.Replicas)
			}
			c := ss.Spec.Template.Spec.Containers[0]
			if got := c.Resources.Limits.Memory().String(); got != tt.wantMemory {
				t.Errorf("memory limit %s, want %s", got, tt.wantMemory)
			}
			args := strings.Join(c.Args, " ")
			peers := c.Args[slices.Index(c.Args, "--peers")+1]
			if n := len(strings.Split(peers, ",")); n != tt.wantPeers {
				t.Errorf("%d peers, want %d: %s", n, tt.wantPeers, peers)
			}
			if !strings.Contains(args, "--self http://$(POD_NAME).kubecdn-edge:8080") || !strings.HasPrefix(peers, "http://kubecdn-edge-0.kubecdn-edge:8080") {
				t.Errorf("args %s", args)
			}
			if tt.wantClaim == "" {
				if len(ss.Spec.VolumeClaimTemplates) != 0 || ef.CacheDir != "" {
					t.Errorf("disk tier without a disk: %v %q", ss.Spec.VolumeClaimTemplates, ef.CacheDir)
				}
			} else {
				q := ss.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests[corev1.ResourceStorage]
				if q.String() != tt.wantClaim || ef.CacheDir != "/var/cache/kubecdn" {
					t.Errorf("claim %s cacheDir %q", q.String(), ef.CacheDir)
				}
			}
			hpa := find[*autoscalingv2.HorizontalPodAutoscaler](t, objs, edgeName)
			if *hpa.Spec.MinReplicas != int32(tt.wantPeers) || hpa.Spec.MaxReplicas != tt.wantMax || hpa.Spec.ScaleTargetRef.Kind != "StatefulSet" ||
				*hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
				t.Errorf("hpa %+v", hpa.Spec)
			}
			var token, hopKey bool
			for _, e := range c.Env {
				if e.Name == "KUBECDN_ADMIN_TOKEN" && e.ValueFrom.SecretKeyRef.Name == "kubecdn-admin" && e.ValueFrom.SecretKeyRef.Key == "token" {
					token = true
				}
				if e.Name == "KUBECDN_HOP_KEY" && e.ValueFrom.SecretKeyRef.Name == "kubecdn-hop" && e.ValueFrom.SecretKeyRef.Key == "key" {
					hopKey = true
				}
			}
			if !token {
				t.Errorf("no admin token from the secret: %+v", c.Env)
			}
			if !hopKey {
				t.Errorf("no hop key from the secret: %+v", c.Env)
			}
		})
	}
}

// TestDNSAndEdgesShareTheAdminToken: the dns requires the edges' admin
// token of their rtt reports, so both read it from the same Secret key.
func TestDNSAndEdgesShareTheAdminToken(t *testing.T) {
	for _, tt := range []struct {
		opts   Options
		secret string
	}{{Options{}, DefaultAdminSecret}, {Options{AdminSecret: "cdn-token"}, "cdn-token"}} {
		objs := mustRender(t, loadCDN(t), tt.opts)["us-east-1"]
		tokenRef := func(env []corev1.EnvVar) *corev1.SecretKeySelector {
			for _, e := range env {
				if e.Name == "KUBECDN_ADMIN_TOKEN" && e.ValueFrom != nil {
					return e.ValueFrom.SecretKeyRef
				}
			}
			return nil
		}
		edgeRef := tokenRef(find[*appsv1.StatefulSet](t, objs, edgeName).Spec.Template.Spec.Containers[0].Env)
		dnsRef := tokenRef(find[*appsv1.Deployment](t, objs, dnsName).Spec.Template.Spec.Containers[0].Env)
		if edgeRef == nil || dnsRef == nil || edgeRef.Name != dnsRef.Name || edgeRef.Key != dnsRef.Key {
			t.Fatalf("secret %s: edge token %+v, dns token %+v: want the same Secret key", tt.secret, edgeRef, dnsRef)
		}
		if dnsRef.Name != tt.secret || dnsRef.Key != "token" {
			t.Errorf("dns token from %s/%s, want %s/token", dnsRef.Name, dnsRef.Key, tt.secret)
		}
	}
}

func TestServicesAndPolicies(t *testing.T) {
	objs := mustRender(t, loadCDN(t), Options{})["us-east-1"]
	headless := find[*corev1.Service](t, objs, edgeName)
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("peer service is not headless: %q", headless.Spec.ClusterIP)
	}
	pub := find[*corev1.Service](t, objs, edgePublic)
	if pub.Spec.Type != corev1.ServiceTypeLoadBalancer || pub.Spec.Ports[0].Port != 80 || pub.Spec.Ports[0].TargetPort.IntVal != 8080 {
		t.Errorf("edge load balancer %+v", pub.Spec)
	}
	dnsSvc := find[*corev1.Service](t, objs, dnsName)
	var protos []string
	for _, p := range dnsSvc.Spec.Ports {
		if p.Port != 53 {
			t.Errorf("dns port %d", p.Port)
		}
		protos = append(protos, string(p.Protocol))
	}
	if dnsSvc.Spec.Type != corev1.ServiceTypeLoadBalancer || !slices.Equal(protos, []string{"UDP", "TCP"}) {
		t.Errorf("dns load balancer %+v", dnsSvc.Spec)
	}
	dep := find[*appsv1.Deployment](t, objs, dnsName)
	if got := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " "); got != "dns -f /etc/kubecdn/kubecdn.yaml --listen :5353 --admin :9053 --region us-east-1" {
		t.Errorf("dns args %s", got)
	}
	for _, name := range []string{edgeName, dnsName} {
		pdb := find[*policyv1.PodDisruptionBudget](t, objs, name)
		if pdb.Spec.MinAvailable.IntVal != 1 {
			t.Errorf("%s pdb %+v", name, pdb.Spec)
		}
	}
	// The edge policy: 8080 open, 9090 only from the admin peers.
	np := find[*networkingv1.NetworkPolicy](t, objs, edgeName)
	for _, rule := range np.Spec.Ingress {
		port := rule.Ports[0].Port.IntVal
		switch {
		case port == edgePort && len(rule.From) != 0:
			t.Errorf("public port restricted: %+v", rule.From)
		case port == edgeAdminPort && len(rule.From) == 0:
			t.Error("admin port open to all")
		}
	}
	dnp := find[*networkingv1.NetworkPolicy](t, objs, dnsName)
	if len(dnp.Spec.Ingress[0].From) != 0 || len(dnp.Spec.Ingress[1].From) == 0 {
		t.Errorf("dns policy %+v", dnp.Spec.Ingress)
	}
	if slices.ContainsFunc(objs, func(o Object) bool { return o.GetObjectKind().GroupVersionKind().Kind == "ServiceMonitor" }) {
		t.Error("ServiceMonitor rendered without the option")
	}
}

// TestCDNFileInConfigMap: the dns reads the ConfigMap's copy, which must
// load back to the same file.
func TestCDNFileInConfigMap(t *testing.T) {
	cfg := loadCDN(t)
	cm := find[*corev1.ConfigMap](t, mustRender(t, cfg, Options{})["us-west-2"], ConfigName)
	back, err := config.Parse([]byte(cm.Data["kubecdn.yaml"]))
	if err != nil {
		t.Fatalf("the dns would refuse its file: %v\n%s", err, cm.Data["kubecdn.yaml"])
	}
	back.BaseDir = cfg.BaseDir
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("file changed on the way:\n got %+v\nwant %+v", back.Spec, cfg.Spec)
	}
}

func TestRenderErrors(t *testing.T) {
	dirOrigin := parseCDN(t, func(s string) string {
		return strings.Replace(s, "url: https://origin.example.com", "dir: ./public", 1)
	})
	tests := []struct {
		name string
		cfg  *config.CDN
		opts Options
		want string
	}{
		{"origin dir", dirOrigin, Options{}, "spec.origin.url is required"},
		{"unknown region", loadCDN(t), Options{Regions: []string{"mars-1"}}, `"mars-1" is not a region`},
		{"bad namespace", loadCDN(t), Options{Namespace: "Kube_CDN"}, "not a DNS-1123 label"},
		{"max below min", loadCDN(t), Options{EdgeReplicas: 4, MaxEdgeReplicas: 3}, "below edge replicas"},
		{"bad parent url", loadCDN(t), Options{ParentURL: "{region}.edges"}, "parent url"},
		{"image with space", loadCDN(t), Options{Image: "a b"}, "white space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.cfg, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRegionsOptionAndDeterminism(t *testing.T) {
	o := Options{Regions: []string{"us-west-2"}, ServiceMonitor: true}
	a := mustRender(t, loadCDN(t), o)
	b := mustRender(t, loadCDN(t), o)
	if got := Regions(a); !slices.Equal(got, []string{"us-west-2"}) {
		t.Fatalf("regions %v", got)
	}
	ma, err := MarshalAll(a["us-west-2"])
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := MarshalAll(b["us-west-2"])
	if !bytes.Equal(ma, mb) {
		t.Error("two renders differ")
	}
	if bytes.Contains(ma, []byte("creationTimestamp")) || bytes.Contains(ma, []byte("status:")) {
		t.Errorf("server-filled fields in the output:\n%s", ma)
	}
}

func TestWriteDirRemovesOnlyItsStaleFiles(t *testing.T) {
	dir := t.TempDir()
	with := mustRender(t, loadCDN(t), Options{Regions: []string{"us-east-1"}, ServiceMonitor: true})
	if err := WriteDir(dir, with); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "us-east-1", "99-notes.yaml")
	if err := os.WriteFile(mine, []byte("# my own file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sm := filepath.Join(dir, "us-east-1", "70-servicemonitor-kubecdn-edge.yaml")
	if _, err := os.Stat(sm); err != nil {
		t.Fatalf("no ServiceMonitor file: %v", err)
	}
	without := mustRender(t, loadCDN(t), Options{Regions: []string{"us-east-1"}})
	if err := WriteDir(dir, without); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sm); !os.IsNotExist(err) {
		t.Errorf("stale generated file kept: %v", err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the user's file was removed: %v", err)
	}
	if got := len(listFiles(t, filepath.Join(dir, "us-east-1"))); got != 19 {
		t.Errorf("%d files, want 13 objects + 5 of the autoscaler + the user's file", got)
	}
}

func TestTLSSecrets(t *testing.T) {
	objs := mustRender(t, loadCDN(t), Options{TLSSecrets: []string{"www-tls", "video-tls"}})["us-east-1"]
	sts := find[*appsv1.StatefulSet](t, objs, edgeName)
	c := sts.Spec.Template.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--tls-listen :8443 --tls-cert-dir /etc/kubecdn/tls") {
		t.Errorf("edge args %q lack the TLS listener", args)
	}
	mounted := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounted[m.Name] = m.MountPath
	}
	secrets := map[string]string{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Secret.SecretName] = mounted[v.Name]
		}
	}
	if secrets["www-tls"] != "/etc/kubecdn/tls/www-tls" || secrets["video-tls"] != "/etc/kubecdn/tls/video-tls" {
		t.Errorf("secret mounts = %v", secrets)
	}
	lb := find[*corev1.Service](t, objs, edgePublic)
	var https, h3 bool
	for _, p := range lb.Spec.Ports {
		https = https || (p.Port == 443 && p.TargetPort.IntValue() == edgeTLSPort && p.Protocol == corev1.ProtocolTCP)
		h3 = h3 || (p.Port == 443 && p.TargetPort.IntValue() == edgeTLSPort && p.Protocol == corev1.ProtocolUDP)
	}
	if !https || !h3 {
		t.Errorf("load balancer ports %v lack 443 -> 8443 over TCP (https) and UDP (HTTP/3)", lb.Spec.Ports)
	}
	var udp bool
	for _, p := range c.Ports {
		udp = udp || (p.ContainerPort == edgeTLSPort && p.Protocol == corev1.ProtocolUDP)
	}
	if !udp {
		t.Errorf("edge container ports %v lack 8443/UDP", c.Ports)
	}
	np := find[*networkingv1.NetworkPolicy](t, objs, edgeName)
	if n := len(np.Spec.Ingress[0].Ports); n != 3 {
		t.Errorf("network policy opens %d public ports, want 3 (8080, 8443 TCP and UDP)", n)
	}
}

// edgeFile is edge.yaml as render writes it, read as text: the test sees
// the values written ("50GiB"), not what the edge makes of them (that is
// edge.ParseSettings's, tested by TestRenderedEdgeSettingsRoundTrip).
type edgeFile struct {
	Listen    string   `json:"listen"`
	Admin     string   `json:"admin"`
	Origin    string   `json:"origin"`
	Hostnames []string `json:"hostnames"`
	Parent    string   `json:"parent,omitempty"`
	Memory    string   `json:"memory"`
	CacheDir  string   `json:"cacheDir,omitempty"`
	Disk      string   `json:"disk,omitempty"`
	Region    string   `json:"region"`
	RTTReport []string `json:"rttReport,omitempty"`
	// The file's regions and geo networks, for the demand counters.
	DemandRegions []edge.DemandRegion `json:"demandRegions"`
	Geo           config.Geo          `json:"geo"`
	// The video rules, defaults shown.
	Video config.Video `json:"video"`
}
