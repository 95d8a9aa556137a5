package kubetest_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecdn/kubecdn/internal/kubetest"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTwoClustersOneKubeconfig: two clusters start at once, are distinct,
// and both are reachable through one kubeconfig file, from client-go and
// from kubectl, each by its context name.
func TestTwoClustersOneKubeconfig(t *testing.T) {
	start := time.Now()
	cs := kubetest.Start(t, "east", "west")
	t.Logf("Start of 2 clusters: %v", time.Since(start).Round(time.Millisecond))
	ctx := testContext(t)

	if cs[0].Server == cs[1].Server {
		t.Fatalf("both clusters serve at %s", cs[0].Server)
	}
	for _, c := range cs {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "where", Namespace: "default"},
			Data:       map[string]string{"region": c.Name},
		}
		if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: create: %v", c.Name, err)
		}
	}
	only := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "only-east"}}
	if _, err := cs[0].Client.CoreV1().ConfigMaps("default").Create(ctx, only, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	shared := filepath.Join(t.TempDir(), "kubeconfig")
	kubetest.WriteKubeconfig(t, shared, cs...)
	for _, c := range cs {
		// kubectl through the shared file and the context name.
		out, err := c.Kubectl(ctx, "--kubeconfig="+shared, "--context="+c.Name, "get", "configmap", "where", "-n", "default", "-o", "jsonpath={.data.region}")
		if err != nil {
			t.Fatal(err)
		}
		if out != c.Name {
			t.Errorf("kubectl --context=%s: region %q, want %q", c.Name, out, c.Name)
		}
		// client-go through the shared file, as a CDN file's
		// cluster: {kubeconfig, context} is read.
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: shared}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Name}).ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.CoreV1().ConfigMaps("default").Get(ctx, "only-east", metav1.GetOptions{})
		if c.Name == "east" && err != nil {
			t.Errorf("east: %v", err)
		}
		if c.Name == "west" && !apierrors.IsNotFound(err) {
			t.Errorf("west: only-east: got %v, want not found (the clusters share state?)", err)
		}
	}
	// The cluster's own kubeconfig has its context current.
	out, err := cs[1].Kubectl(ctx, "config", "current-context")
	if err != nil || strings.TrimSpace(out) != "west" {
		t.Errorf("own kubeconfig: current context %q, %v; want west", out, err)
	}
	// The admin is authorized by RBAC as a member of system:masters.
	out, err = cs[0].Kubectl(ctx, "auth", "can-i", "create", "clusterroles")
	if err != nil || strings.TrimSpace(out) != "yes" {
		t.Errorf("auth can-i: %q, %v; want yes", out, err)
	}
}

func deployment(ns, name string, n int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/app:1"}}},
			},
		},
	}
}

func statefulSet(ns, name string, n int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &n,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/db:1"}}},
			},
		},
	}
}

func service(ns, name string, typ corev1.ServiceType) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

func mustCreate[T any](t *testing.T, create func(context.Context, T, metav1.CreateOptions) (T, error), obj T) {
	t.Helper()
	if _, err := create(testContext(t), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createNamespace(t *testing.T, c *kubetest.Cluster, name string) {
	t.Helper()
	mustCreate(t, c.Client.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// rolledOut asks kubectl rollout status, which waits up to timeout.
func rolledOut(t *testing.T, c *kubetest.Cluster, ns, obj, timeout string) bool {
	t.Helper()
	_, err := c.Kubectl(testContext(t), "rollout", "status", "-n", ns, obj, "--timeout="+timeout)
	return err == nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ingress(t *testing.T, c *kubetest.Cluster, ns, name string) []corev1.LoadBalancerIngress {
	t.Helper()
	s, err := c.Client.CoreV1().Services(ns).Get(testContext(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.Status.LoadBalancer.Ingress
}

func namespaceGone(t *testing.T, c *kubetest.Cluster, name string) bool {
	t.Helper()
	_, err := c.Client.CoreV1().Namespaces().Get(testContext(t), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return apierrors.IsNotFound(err)
}

// TestControllers: first the single-shot pieces on a cluster where nothing
// acts (a rollout stays pending until marked, a namespace stays
// terminating until finished), then the background loop does it all.
func TestControllers(t *testing.T) {
	c := kubetest.Start(t, "ctl")[0]
	ctx := testContext(t)
	apps, core := c.Client.AppsV1(), c.Client.CoreV1()

	t.Run("single shot", func(t *testing.T) {
		createNamespace(t, c, "manual")
		mustCreate(t, apps.Deployments("manual").Create, deployment("manual", "web", 3))
		mustCreate(t, apps.StatefulSets("manual").Create, statefulSet("manual", "db", 2))
		mustCreate(t, core.Services("manual").Create, service("manual", "lb", corev1.ServiceTypeLoadBalancer))
		for _, obj := range []string{"deployment/web", "statefulset/db"} {
			if rolledOut(t, c, "manual", obj, "300ms") {
				t.Fatalf("%s rolled out with no controller", obj)
			}
		}
		if err := c.MarkRolledOut(ctx, "Deployment", "manual", "web"); err != nil {
			t.Fatal(err)
		}
		if err := c.MarkRolledOut(ctx, "StatefulSet", "manual", "db"); err != nil {
			t.Fatal(err)
		}
		for _, obj := range []string{"deployment/web", "statefulset/db"} {
			if !rolledOut(t, c, "manual", obj, "5s") {
				t.Errorf("%s not rolled out after MarkRolledOut", obj)
			}
		}
		if err := c.MarkRolledOut(ctx, "DaemonSet", "manual", "x"); err == nil {
			t.Error("MarkRolledOut of a DaemonSet: no error")
		}

		if err := c.SetLoadBalancer(ctx, "manual", "lb", "192.0.2.7"); err != nil {
			t.Fatal(err)
		}
		if in := ingress(t, c, "manual", "lb"); len(in) != 1 || in[0].IP != "192.0.2.7" {
			t.Errorf("ingress %+v, want 192.0.2.7", in)
		}

		// A finalizer no controller will remove, as a PVC's would be.
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept", Finalizers: []string{"example.com/keep"}}}
		mustCreate(t, core.ConfigMaps("manual").Create, cm)
		if err := core.Namespaces().Delete(ctx, "manual", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if namespaceGone(t, c, "manual") {
			t.Fatal("namespace gone without a namespace controller")
		}
		if err := c.FinishNamespaceDeletion(ctx, "manual"); err != nil {
			t.Fatal(err)
		}
		if !namespaceGone(t, c, "manual") {
			t.Fatal("namespace still there")
		}
		if err := c.FinishNamespaceDeletion(ctx, "default"); err == nil {
			t.Error("FinishNamespaceDeletion of a namespace not being deleted: no error")
		}
	})

	t.Run("background", func(t *testing.T) {
		hold := map[string]bool{"held": true} // read by the controllers only
		c.StartControllers(t, kubetest.Controllers{
			LoadBalancer: func(ns, name string) string {
				switch name {
				case "edge":
					return "192.0.2.10"
				case "elb":
					return "a1b2.elb.us-east-1.amazonaws.com"
				}
				return ""
			},
			Hold: func(kind, ns, name string) bool { return kind == "Deployment" && hold[name] },
		})
		createNamespace(t, c, "app")
		mustCreate(t, apps.Deployments("app").Create, deployment("app", "web", 3))
		mustCreate(t, apps.Deployments("app").Create, deployment("app", "held", 1))
		mustCreate(t, apps.StatefulSets("app").Create, statefulSet("app", "db", 2))
		for _, name := range []string{"edge", "elb", "pending"} {
			mustCreate(t, core.Services("app").Create, service("app", name, corev1.ServiceTypeLoadBalancer))
		}
		mustCreate(t, core.Services("app").Create, service("app", "internal", corev1.ServiceTypeClusterIP))

		for _, obj := range []string{"deployment/web", "statefulset/db"} {
			if !rolledOut(t, c, "app", obj, "10s") {
				t.Errorf("%s not rolled out", obj)
			}
		}
		if rolledOut(t, c, "app", "deployment/held", "500ms") {
			t.Error("held deployment rolled out")
		}
		// A new template is a new rollout: waiting again until done.
		d, err := apps.Deployments("app").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Template.Spec.Containers[0].Image = "example.com/app:2"
		if _, err := apps.Deployments("app").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if !rolledOut(t, c, "app", "deployment/web", "10s") {
			t.Error("deployment/web not rolled out after an update")
		}
		if d, err = apps.Deployments("app").Get(ctx, "web", metav1.GetOptions{}); err != nil || d.Status.ObservedGeneration != 2 || d.Status.ReadyReplicas != 3 {
			t.Errorf("web status %+v, %v; want generation 2, 3 ready", d.Status, err)
		}

		eventually(t, "edge load balancer", func() bool {
			in := ingress(t, c, "app", "edge")
			return len(in) == 1 && in[0].IP == "192.0.2.10"
		})
		eventually(t, "elb load balancer", func() bool {
			in := ingress(t, c, "app", "elb")
			return len(in) == 1 && in[0].Hostname == "a1b2.elb.us-east-1.amazonaws.com"
		})
		if in := ingress(t, c, "app", "pending"); len(in) != 0 {
			t.Errorf("pending got ingress %+v", in)
		}

		if err := core.Namespaces().Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "namespace app deleted", func() bool { return namespaceGone(t, c, "app") })
	})
}
