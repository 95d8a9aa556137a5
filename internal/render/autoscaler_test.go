package render

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kubecdn/kubecdn/internal/config"
)

// TestAutoscalerRendered: the autoscaler goes into the always-on regions of
// a file with autoscale regions only, with leader-electing replicas, the
// Role the brief of its own region needs and no more, the user's kubeconfig
// Secret mounted optionally, and a file without deploy's addresses.
func TestAutoscalerRendered(t *testing.T) {
	cfg := loadCDN(t)
	out := mustRender(t, cfg, Options{Namespace: "cdn"})
	for _, r := range cfg.AllRegions() {
		has := slices.ContainsFunc(out[r.Name], func(o Object) bool { return o.GetName() == AutoscalerName })
		if has == r.Autoscale {
			t.Errorf("region %s (autoscale %v): autoscaler rendered %v", r.Name, r.Autoscale, has)
		}
	}
	objs := out["us-east-1"]
	dep := find[*appsv1.Deployment](t, objs, AutoscalerName)
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.ServiceAccountName != AutoscalerName {
		t.Errorf("deployment: %d replicas, account %q", *dep.Spec.Replicas, dep.Spec.Template.Spec.ServiceAccountName)
	}
	args := dep.Spec.Template.Spec.Containers[0].Args
	if i := slices.Index(args, "--in-cluster"); i < 0 || args[i+1] != "us-east-1" {
		t.Errorf("args %v: want --in-cluster us-east-1", args)
	}
	var secret *corev1.SecretVolumeSource
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secret = v.Secret
		}
	}
	if secret == nil || secret.SecretName != AutoscalerKubeconfigSecret || secret.Optional == nil || !*secret.Optional {
		t.Errorf("kubeconfig volume = %+v, want the optional Secret %s", secret, AutoscalerKubeconfigSecret)
	}
	role := find[*rbacv1.Role](t, objs, AutoscalerName)
	got := map[string][]string{}
	for _, rule := range role.Rules {
		for _, res := range rule.Resources {
			got[res] = rule.Verbs
		}
		if slices.Contains(rule.Resources, "secrets") && !slices.Equal(rule.ResourceNames, []string{DefaultAdminSecret}) {
			t.Errorf("secrets rule names %v, want only %s", rule.ResourceNames, DefaultAdminSecret)
		}
	}
	want := map[string][]string{"leases": {"get", "create", "update"}, "configmaps": {"get", "create", "update"},
		"pods": {"get", "list"}, "pods/proxy": {"get", "create"}, "secrets": {"get"}}
	for res, verbs := range want {
		if !slices.Equal(got[res], verbs) {
			t.Errorf("role on %s: %v, want %v", res, got[res], verbs)
		}
	}
	if len(got) != len(want) {
		t.Errorf("role covers %v, want exactly %v", got, want)
	}
	rb := find[*rbacv1.RoleBinding](t, objs, AutoscalerName)
	if rb.Subjects[0].Namespace != "cdn" || rb.RoleRef.Name != AutoscalerName {
		t.Errorf("role binding %+v", rb)
	}
	cm := find[*corev1.ConfigMap](t, objs, AutoscalerName)
	file, err := config.Parse([]byte(cm.Data["kubecdn.yaml"]))
	if err != nil {
		t.Fatalf("the autoscaler's file does not load: %v", err)
	}
	for _, r := range file.AllRegions() {
		if len(r.Edges) > 0 || r.DNS != "" {
			t.Errorf("the autoscaler's file keeps %s's addresses %v %q", r.Name, r.Edges, r.DNS)
		}
	}

	none := parseCDN(t, func(s string) string { return s })
	none.Spec.Regions.Autoscale = nil
	for region, objs := range mustRender(t, none, Options{}) {
		if slices.ContainsFunc(objs, func(o Object) bool { return o.GetName() == AutoscalerName }) {
			t.Errorf("%s: autoscaler rendered for a file without autoscale regions", region)
		}
	}
}

// TestNoInClusterAutoscalerInColdMode: cold mode needs tofu and the clouds'
// credentials, which the pod has not, so no region gets the autoscaler.
func TestNoInClusterAutoscalerInColdMode(t *testing.T) {
	cfg := loadCDN(t)
	cfg.Spec.Autoscale.Mode = config.ModeCold
	for region, objs := range mustRender(t, cfg, Options{Namespace: "cdn"}) {
		if slices.ContainsFunc(objs, func(o Object) bool { return o.GetName() == AutoscalerName }) {
			t.Errorf("region %s: the in-cluster autoscaler was rendered in cold mode", region)
		}
	}
}
