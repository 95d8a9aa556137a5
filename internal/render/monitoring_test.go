package render

import (
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// parseRules checks a rule file as `promtool check rules` does: the
// structure, every expression and every template.
func parseRules(t *testing.T, content []byte) []error {
	t.Helper()
	_, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	return errs
}

// TestAlertRulesParse validates the rule file of the rendered Prometheus and
// the PrometheusRule's groups with Prometheus's own rule parser, and shows
// that the check can fail.
func TestAlertRulesParse(t *testing.T) {
	file, err := rulesFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range parseRules(t, []byte(file)) {
		t.Errorf("rule file: %v", err)
	}
	var alerts []string
	for _, g := range alertGroups() {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
				if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("%s: severity, summary and description are what a receiver shows: %+v", r.Alert, r)
				}
			}
		}
	}
	for _, want := range []string{
		"KubecdnRegionDown", "KubecdnHitRatioDropping", "KubecdnOriginErrors", "KubecdnCertificateExpiringSoon",
		"KubecdnDNSReloadRefused", "KubecdnDNSFailOpen",
	} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s among %v", want, alerts)
		}
	}

	// The operator's PrometheusRule carries the same groups.
	out := mustRender(t, loadCDN(t), Options{Monitoring: MonitoringOperator, Regions: []string{"us-east-1"}})
	var pr *unstructured.Unstructured
	for _, o := range out["us-east-1"] {
		if u, ok := o.(*unstructured.Unstructured); ok && u.GetKind() == "PrometheusRule" {
			pr = u
		}
	}
	if pr == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	spec, err := yaml.Marshal(pr.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if string(spec) != file {
		t.Errorf("PrometheusRule spec differs from the rule file:\n%s", firstDiff(string(spec), file))
	}

	for _, bad := range []struct{ name, file string }{
		{"broken expression", "groups: [{name: g, rules: [{alert: A, expr: 'sum by (x (up)'}]}]"},
		{"broken template", "groups: [{name: g, rules: [{alert: A, expr: up == 0, annotations: {summary: '{{ $labels.x '}}]}]"},
		{"unknown field", "groups: [{name: g, rules: [{alert: A, expr: up == 0, fro: 5m}]}]"},
	} {
		if errs := parseRules(t, []byte(bad.file)); len(errs) == 0 {
			t.Errorf("%s: accepted", bad.name)
		}
	}
}

// exportedMetrics are the metric names internal/edge and internal/gslb
// register: a "Name:" of their Opts (with the namespace and subsystem) or
// a full name in a string literal (a Desc, a gauge helper).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	optsName := regexp.MustCompile(`Name:\s*"([a-z_]+)"`)
	gaugeName := regexp.MustCompile(`gauge\("([a-z_]+)"`)
	full := regexp.MustCompile(`"(kubecdn_(?:edge|dns)_[a-z_]+)"`)
	for sub, dir := range map[string]string{"edge": "../edge", "dns": "../gslb"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("sources of %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, re := range []*regexp.Regexp{optsName, gaugeName} {
				for _, m := range re.FindAllStringSubmatch(string(b), -1) {
					names["kubecdn_"+sub+"_"+m[1]] = true
				}
			}
			for _, m := range full.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
		}
	}
	return names
}

// TestAlertMetricsExist: every kubecdn metric an alert reads is one the
// edge or the dns exports, and every recorded series is recorded.
func TestAlertMetricsExist(t *testing.T) {
	exported := exportedMetrics(t)
	recorded := map[string]bool{}
	for _, g := range alertGroups() {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	metric := regexp.MustCompile(`\b(?:kubecdn_io_region:)?kubecdn_(?:edge|dns)_[a-z_:0-9]+`)
	n := 0
	for _, g := range alertGroups() {
		for _, r := range g.Rules {
			for _, m := range metric.FindAllString(r.Expr, -1) {
				n++
				if strings.Contains(m, ":") {
					if !recorded[m] {
						t.Errorf("%s%s: %s is recorded by no rule", r.Alert, r.Record, m)
					}
					continue
				}
				if !exported[m] {
					t.Errorf("%s%s: %s is not exported by the edge or the dns", r.Alert, r.Record, m)
				}
			}
		}
	}
	if n < 10 || !exported["kubecdn_dns_fail_open"] || exported["kubecdn_edge_no_such_metric"] {
		t.Errorf("%d metric references; the source scan finds %d names", n, len(exported))
	}
}

// TestPrometheus checks the rendered Prometheus: pod discovery confined to
// the CDN's namespace by both its configuration and its Role, the rule
// file where the configuration looks for it, and a pod the edges' and the
// dns's NetworkPolicies let in.
func TestPrometheus(t *testing.T) {
	cfg := loadCDN(t)
	out := mustRender(t, cfg, Options{Monitoring: MonitoringPrometheus, Namespace: "cdn-prod", StorageClass: "fast"})
	for _, region := range Regions(out) {
		objs := out[region]
		cm := find[*corev1.ConfigMap](t, objs, promName)
		var pc struct {
			Global struct {
				ExternalLabels map[string]string `json:"external_labels"`
			} `json:"global"`
			RuleFiles     []string `json:"rule_files"`
			ScrapeConfigs []struct {
				JobName string `json:"job_name"`
				SD      []struct {
					Role       string `json:"role"`
					Namespaces struct {
						Names []string `json:"names"`
					} `json:"namespaces"`
				} `json:"kubernetes_sd_configs"`
				Relabel []map[string]any `json:"relabel_configs"`
			} `json:"scrape_configs"`
		}
		if err := yaml.Unmarshal([]byte(cm.Data["prometheus.yml"]), &pc); err != nil {
			t.Fatalf("%s: prometheus.yml: %v", region, err)
		}
		if pc.Global.ExternalLabels[regionLabel] != region {
			t.Errorf("%s: external labels %v", region, pc.Global.ExternalLabels)
		}
		var jobs []string
		for _, sc := range pc.ScrapeConfigs {
			jobs = append(jobs, sc.JobName)
			if len(sc.SD) != 1 || sc.SD[0].Role != "pod" || !slices.Equal(sc.SD[0].Namespaces.Names, []string{"cdn-prod"}) {
				t.Errorf("%s: job %s discovers %+v, want pods of cdn-prod only", region, sc.JobName, sc.SD)
			}
			if !strings.Contains(cm.Data["prometheus.yml"], "regex: __meta_kubernetes_pod_label_(kubecdn_io_region|kubecdn_io_cdn)") {
				t.Errorf("%s: no labelmap of the region label", region)
			}
		}
		if !slices.Equal(jobs, []string{"kubecdn-edge", "kubecdn-dns"}) {
			t.Errorf("%s: jobs %v", region, jobs)
		}
		if len(pc.RuleFiles) != 1 || pc.RuleFiles[0] != promConfDir+"/kubecdn-rules.yml" || cm.Data["kubecdn-rules.yml"] == "" {
			t.Errorf("%s: rule files %v, keys %v", region, pc.RuleFiles, slices.Sorted(func(yield func(string) bool) {
				for k := range cm.Data {
					if !yield(k) {
						return
					}
				}
			}))
		}

		role := find[*rbacv1.Role](t, objs, promName)
		if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"pods"}) ||
			!slices.Equal(role.Rules[0].Verbs, []string{"get", "list", "watch"}) || role.Namespace != "cdn-prod" {
			t.Errorf("%s: role %+v", region, role)
		}
		rb := find[*rbacv1.RoleBinding](t, objs, promName)
		if rb.RoleRef.Name != promName || len(rb.Subjects) != 1 || rb.Subjects[0].Name != promName || rb.Subjects[0].Namespace != "cdn-prod" {
			t.Errorf("%s: role binding %+v", region, rb)
		}

		ss := find[*appsv1.StatefulSet](t, objs, promName)
		pod := ss.Spec.Template
		if pod.Labels[LabelAdminAccess] != "true" || pod.Spec.ServiceAccountName != promName || !*pod.Spec.AutomountServiceAccountToken {
			t.Errorf("%s: prometheus pod labels %v, service account %q", region, pod.Labels, pod.Spec.ServiceAccountName)
		}
		c := pod.Spec.Containers[0]
		if c.Image != DefaultPrometheusImage || !slices.Contains(c.Args, "--config.file="+promConfDir+"/prometheus.yml") {
			t.Errorf("%s: prometheus container %s %v", region, c.Image, c.Args)
		}
		if sc := ss.Spec.VolumeClaimTemplates[0].Spec.StorageClassName; sc == nil || *sc != "fast" {
			t.Errorf("%s: storage class %v", region, sc)
		}
		if pod.Annotations[AnnotationConfigHash] != hash(cm.Data["prometheus.yml"]+cm.Data["kubecdn-rules.yml"]) {
			t.Errorf("%s: the config hash does not follow the ConfigMap", region)
		}
	}
}

func TestMonitoringOptions(t *testing.T) {
	cfg := loadCDN(t)
	kinds := func(o Options) []string {
		var out []string
		for _, ob := range mustRender(t, cfg, o)["us-east-1"] {
			if l := ob.GetLabels()["app.kubernetes.io/component"]; l == "monitoring" || ob.GetObjectKind().GroupVersionKind().Kind == "ServiceMonitor" {
				out = append(out, ob.GetObjectKind().GroupVersionKind().Kind)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name string
		opts Options
		want []string
	}{
		{"none", Options{}, nil},
		{"service monitors alone, as before", Options{ServiceMonitor: true}, []string{"ServiceMonitor", "ServiceMonitor"}},
		{"operator", Options{Monitoring: MonitoringOperator}, []string{"PrometheusRule", "ServiceMonitor", "ServiceMonitor"}},
		{"prometheus", Options{Monitoring: MonitoringPrometheus}, []string{"ConfigMap", "NetworkPolicy", "Role", "RoleBinding", "Service", "ServiceAccount", "StatefulSet"}},
	} {
		tc.opts.Regions = []string{"us-east-1"}
		if got := kinds(tc.opts); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Monitoring: "grafana"}, `monitoring: "grafana"`},
		{Options{Monitoring: MonitoringPrometheus, ServiceMonitor: true}, "choose one"},
		{Options{Monitoring: MonitoringPrometheus, PrometheusImage: "prom/prometheus :v3"}, "prometheus image"},
	} {
		if _, err := Render(cfg, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.opts, err, tc.want)
		}
	}
}
