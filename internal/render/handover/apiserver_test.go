package handover_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/kubetest"
	"github.com/kubecdn/kubecdn/internal/render"
	"github.com/kubecdn/kubecdn/internal/render/handover"
)

// TestAPIServerAcceptsHandover installs Argo CD's Application and
// ApplicationSet CRDs (from its v3.6.2 module zip) and Karmada's and
// SIG-Multicluster's (testdata/crds) into a real kube-apiserver, then
// server-side applies, in dry run with strict field validation, the
// ApplicationSet, every Karmada template and policy, and a region's Argo CD
// cluster Secret; the ClusterProfile is applied for real, its status
// through the status subresource, and read back. A misspelt field or a
// wrong operator is turned away, so the checks can fail.
func TestAPIServerAcceptsHandover(t *testing.T) {
	crds := append(projectCRDs(t), argoCDCRDs(t)...)
	cfg, out := rendered(t)
	c := kubetest.Start(t, "handover")[0]
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := c.InstallCRDs(ctx, crds...); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{handover.ArgoCDNamespace, handover.ProfileNamespace, "kubecdn", "video"} {
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	dryRun := func(u *unstructured.Unstructured) error {
		return kubetest.Apply(ctx, c.Dynamic, mapper, u, true)
	}

	set, err := handover.ArgoCD(cfg, render.Regions(out), argoOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := dryRun(set); err != nil {
		t.Errorf("ApplicationSet rejected: %v", err)
	}
	k, err := handover.Karmada(cfg, out, []string{"eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	policies := 0
	for _, o := range k {
		u := o.(*unstructured.Unstructured)
		if u.GetKind() == "Namespace" {
			continue // created above
		}
		if err := dryRun(u); err != nil {
			t.Errorf("%s %s/%s rejected: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		if strings.HasPrefix(u.GetAPIVersion(), "policy.karmada.io/") {
			policies++
		}
	}
	t.Logf("ApplicationSet, %d Karmada objects (%d policies) accepted", len(k), policies)

	// What a user runs on the directory render writes: kubectl's own
	// server-side dry run of every file, with strict validation.
	dir := t.TempDir()
	if err := render.WriteDir(dir, map[string][]render.Object{"karmada": k}); err != nil {
		t.Fatal(err)
	}
	if msg, err := c.Kubectl(ctx, "apply", "--server-side", "--dry-run=server", "--validate=strict", "-f", filepath.Join(dir, "karmada")); err != nil {
		t.Errorf("kubectl apply --dry-run=server -f karmada/: %v\n%s", err, msg)
	} else if n := strings.Count(msg, "(server dry run)"); n != len(k) {
		t.Errorf("kubectl dry-ran %d objects, want %d:\n%s", n, len(k), msg)
	}

	// The registration of this very cluster, as infra would write it.
	exec := &clientcmdapi.ExecConfig{Command: "kubelogin", Args: []string{"get-token", "--server-id", "6dae42f8"}, APIVersion: "client.authentication.k8s.io/v1beta1"}
	reg, err := handover.Registrations("us-east-1", c.Server, c.CAData, exec)
	if err != nil {
		t.Fatal(err)
	}
	secret, profile := reg[0], reg[1]
	if err := dryRun(secret); err != nil {
		t.Errorf("cluster Secret rejected: %v", err)
	}
	if err := kubetest.Apply(ctx, c.Dynamic, mapper, profile, false); err != nil {
		t.Fatalf("ClusterProfile rejected: %v", err)
	}
	if err := kubetest.Apply(ctx, c.Dynamic, mapper, profile, false, "status"); err != nil {
		t.Fatalf("ClusterProfile status rejected: %v", err)
	}
	gvr := schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1alpha1", Resource: "clusterprofiles"}
	live, err := c.Dynamic.Resource(gvr).Namespace(handover.ProfileNamespace).Get(ctx, "us-east-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	providers, _, _ := unstructured.NestedSlice(live.Object, "status", "accessProviders")
	if len(providers) != 1 {
		t.Fatalf("stored status %v", live.Object["status"])
	}
	server, _, _ := unstructured.NestedString(providers[0].(map[string]any), "cluster", "server")
	exts, _, _ := unstructured.NestedSlice(providers[0].(map[string]any), "cluster", "extensions")
	if server != c.Server || len(exts) != 1 || exts[0].(map[string]any)["name"] != handover.ExecExtension {
		t.Errorf("stored access provider %v, want server %s and extension %s", providers[0], c.Server, handover.ExecExtension)
	}

	// The schemas are the real ones: mistakes are turned away by name.
	var op *unstructured.Unstructured
	for _, o := range k {
		if o.GetObjectKind().GroupVersionKind().Kind == "OverridePolicy" {
			op = o.(*unstructured.Unstructured).DeepCopy()
			break
		}
	}
	rules, _, _ := unstructured.NestedSlice(op.Object, "spec", "overrideRules")
	plain := rules[0].(map[string]any)["overriders"].(map[string]any)["plaintext"].([]any)
	plain[0].(map[string]any)["operator"] = "Replace"
	_ = unstructured.SetNestedSlice(op.Object, rules, "spec", "overrideRules")
	badSet := set.DeepCopy()
	_ = unstructured.SetNestedField(badSet.Object, true, "spec", "template", "spec", "syncPolicy", "automated", "prunne")
	for _, tc := range []struct {
		u    *unstructured.Unstructured
		want string
	}{
		{op, "operator"},
		{badSet, "prunne"},
	} {
		if err := dryRun(tc.u); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with a mistake: got %v, want an error naming %s", tc.u.GetKind(), err, tc.want)
		}
	}
}
