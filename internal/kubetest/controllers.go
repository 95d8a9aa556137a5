package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/util/retry"
)

// Controllers plays, on a cluster that has none, the parts of the
// controllers a deploy waits for:
//   - the Deployment and StatefulSet controllers and the kubelets: every
//     workload's status says it is rolled out (MarkRolledOut);
//   - a cloud's service controller: every Service of type LoadBalancer gets
//     the address LoadBalancer returns (SetLoadBalancer);
//   - the namespace controller: a deleted Namespace's objects are deleted
//     and its "kubernetes" finalizer removed (FinishNamespaceDeletion).
//
// The zero value rolls everything out, finishes namespace deletion and
// leaves every load balancer pending.
type Controllers struct {
	// LoadBalancer returns the address of Service namespace/name (type
	// LoadBalancer): an IP address, or else a host name (as AWS's load
	// balancers have). "" leaves it pending. If nil, every one stays
	// pending.
	LoadBalancer func(namespace, name string) string
	// Hold returns true for a workload whose rollout is to stay pending;
	// kind is "Deployment" or "StatefulSet". If nil, nothing is held.
	Hold func(kind, namespace, name string) bool
	// Interval between passes of RunControllers; if zero, 100ms.
	Interval time.Duration
	// Logf, if not nil, receives RunControllers' errors (a conflict is not
	// one: the next pass retries), each only when it differs from the last.
	Logf func(format string, args ...any)
}

// StartControllers runs RunControllers in the background until the test
// ends; errors go to t.Logf unless ctl.Logf is set.
func (c *Cluster) StartControllers(t testing.TB, ctl Controllers) {
	t.Helper()
	if ctl.Logf == nil {
		ctl.Logf = t.Logf
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.RunControllers(ctx, ctl)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// RunControllers calls Reconcile every ctl.Interval until ctx ends.
func (c *Cluster) RunControllers(ctx context.Context, ctl Controllers) {
	every := ctl.Interval
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	last := ""
	for {
		err := c.Reconcile(ctx, ctl)
		if ctx.Err() != nil {
			return
		}
		if msg := fmt.Sprint(err); err != nil && msg != last && ctl.Logf != nil {
			ctl.Logf("kubetest: cluster %s controllers: %v", c.Name, err)
			last = msg
		} else if err == nil {
			last = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Reconcile makes one pass over the whole cluster (see Controllers). A
// conflict (the object changed since it was listed) is left to the next
// pass and not reported.
func (c *Cluster) Reconcile(ctx context.Context, ctl Controllers) error {
	var errs []error
	note := func(err error) {
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	held := func(kind string, m metav1.Object) bool {
		return m.GetDeletionTimestamp() != nil || ctl.Hold != nil && ctl.Hold(kind, m.GetNamespace(), m.GetName())
	}

	deps, err := c.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	note(err)
	if err == nil {
		for i := range deps.Items {
			d := &deps.Items[i]
			if !held("Deployment", d) && !deploymentRolledOut(d) {
				setDeploymentRolledOut(d, metav1.Now())
				_, err := c.Client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
				note(err)
			}
		}
	}

	sets, err := c.Client.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	note(err)
	if err == nil {
		for i := range sets.Items {
			s := &sets.Items[i]
			if !held("StatefulSet", s) && !statefulSetRolledOut(s) {
				setStatefulSetRolledOut(s)
				_, err := c.Client.AppsV1().StatefulSets(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
				note(err)
			}
		}
	}

	if ctl.LoadBalancer != nil {
		svcs, err := c.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		note(err)
		if err == nil {
			for i := range svcs.Items {
				s := &svcs.Items[i]
				if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.DeletionTimestamp != nil {
					continue
				}
				addr := ctl.LoadBalancer(s.Namespace, s.Name)
				if addr == "" || hasIngress(s, addr) {
					continue
				}
				setIngress(s, addr)
				_, err := c.Client.CoreV1().Services(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{})
				note(err)
			}
		}
	}

	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	note(err)
	if err == nil {
		for i := range nss.Items {
			ns := &nss.Items[i]
			if ns.DeletionTimestamp != nil && slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
				_, err := c.finishNamespace(ctx, ns)
				note(err)
			}
		}
	}
	return errors.Join(errs...)
}

// MarkRolledOut sets the status of one workload (kind "Deployment" or
// "StatefulSet") to rolled out at its current generation, as its controller
// would once every pod of the new template is ready.
func (c *Cluster) MarkRolledOut(ctx context.Context, kind, namespace, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		switch kind {
		case "Deployment":
			api := c.Client.AppsV1().Deployments(namespace)
			d, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			setDeploymentRolledOut(d, metav1.Now())
			_, err = api.UpdateStatus(ctx, d, metav1.UpdateOptions{})
			return err
		case "StatefulSet":
			api := c.Client.AppsV1().StatefulSets(namespace)
			s, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			setStatefulSetRolledOut(s)
			_, err = api.UpdateStatus(ctx, s, metav1.UpdateOptions{})
			return err
		default:
			return fmt.Errorf("kind %q is neither Deployment nor StatefulSet", kind)
		}
	})
	if err != nil {
		return fmt.Errorf("mark %s %s/%s rolled out: %w", kind, namespace, name, err)
	}
	return nil
}

// SetLoadBalancer gives Service namespace/name the load-balancer address
// addr: an IP address, or else a host name.
func (c *Cluster) SetLoadBalancer(ctx context.Context, namespace, name, addr string) error {
	api := c.Client.CoreV1().Services(namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		setIngress(s, addr)
		_, err = api.UpdateStatus(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("set load balancer of service %s/%s: %w", namespace, name, err)
	}
	return nil
}

// FinishNamespaceDeletion does the namespace controller's work for a
// Namespace being deleted: it deletes every object left in it (removing
// their finalizers: no controller would), then removes the "kubernetes"
// finalizer. It returns when the Namespace is gone, or with ctx's error.
func (c *Cluster) FinishNamespaceDeletion(ctx context.Context, name string) error {
	for {
		ns, err := c.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("finish deletion of namespace %s: %w", name, err)
		}
		if ns.DeletionTimestamp == nil {
			return fmt.Errorf("finish deletion of namespace %s: it is not being deleted", name)
		}
		if _, err := c.finishNamespace(ctx, ns); err != nil && !apierrors.IsConflict(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("finish deletion of namespace %s: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// finishNamespace makes one step of a namespace's deletion: it deletes what
// is left in it and, once nothing is, finalizes it; it reports whether it
// did.
func (c *Cluster) finishNamespace(ctx context.Context, ns *corev1.Namespace) (bool, error) {
	lists, err := c.Client.Discovery().ServerPreferredNamespacedResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return false, fmt.Errorf("namespace %s: discovery: %w", ns.Name, err)
	}
	left := 0
	var errs []error
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			api := c.quiet.Resource(gv.WithResource(r.Name)).Namespace(ns.Name)
			if slices.Contains(r.Verbs, "deletecollection") {
				if err := api.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("namespace %s: delete %s: %w", ns.Name, r.Name, err))
				}
			}
			items, err := api.List(ctx, metav1.ListOptions{})
			if err != nil {
				if !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
					errs = append(errs, fmt.Errorf("namespace %s: list %s: %w", ns.Name, r.Name, err))
				}
				continue
			}
			for _, it := range items.Items {
				left++
				if it.GetDeletionTimestamp() == nil {
					if err := api.Delete(ctx, it.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
						errs = append(errs, fmt.Errorf("namespace %s: delete %s %s: %w", ns.Name, r.Name, it.GetName(), err))
					}
				}
				if len(it.GetFinalizers()) > 0 {
					_, err := api.Patch(ctx, it.GetName(), types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
					if err != nil && !apierrors.IsNotFound(err) {
						errs = append(errs, fmt.Errorf("namespace %s: remove finalizers of %s %s: %w", ns.Name, r.Name, it.GetName(), err))
					}
				}
			}
		}
	}
	if left > 0 || len(errs) > 0 {
		return false, errors.Join(errs...)
	}
	ns = ns.DeepCopy()
	ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	if _, err := c.Client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("namespace %s: finalize: %w", ns.Name, err)
	}
	return true, nil
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func deploymentRolledOut(d *appsv1.Deployment) bool {
	n, s := replicas(d.Spec.Replicas), d.Status
	return s.ObservedGeneration == d.Generation && s.Replicas == n && s.UpdatedReplicas == n &&
		s.ReadyReplicas == n && s.AvailableReplicas == n && s.UnavailableReplicas == 0
}

func setDeploymentRolledOut(d *appsv1.Deployment, now metav1.Time) {
	n := replicas(d.Spec.Replicas)
	s := &d.Status
	s.ObservedGeneration = d.Generation
	s.Replicas, s.UpdatedReplicas, s.ReadyReplicas, s.AvailableReplicas, s.UnavailableReplicas = n, n, n, n, 0
	setDeploymentCondition(s, appsv1.DeploymentAvailable, "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
	setDeploymentCondition(s, appsv1.DeploymentProgressing, "NewReplicaSetAvailable", fmt.Sprintf("ReplicaSet %q has successfully progressed.", d.Name), now)
}

func setDeploymentCondition(s *appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType, reason, msg string, now metav1.Time) {
	for i := range s.Conditions {
		if c := &s.Conditions[i]; c.Type == typ {
			if c.Status != corev1.ConditionTrue {
				c.LastTransitionTime = now
			}
			c.Status, c.Reason, c.Message, c.LastUpdateTime = corev1.ConditionTrue, reason, msg, now
			return
		}
	}
	s.Conditions = append(s.Conditions, appsv1.DeploymentCondition{
		Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now,
	})
}

// revision names a StatefulSet's template revision; without a controller
// there are no ControllerRevisions, so the generation stands in for the
// template's hash.
func revision(s *appsv1.StatefulSet) string {
	return fmt.Sprintf("%s-%d", s.Name, s.Generation)
}

func statefulSetRolledOut(s *appsv1.StatefulSet) bool {
	n, st := replicas(s.Spec.Replicas), s.Status
	return st.ObservedGeneration == s.Generation && st.Replicas == n && st.ReadyReplicas == n &&
		st.CurrentReplicas == n && st.UpdatedReplicas == n && st.AvailableReplicas == n &&
		st.UpdateRevision == revision(s) && st.CurrentRevision == st.UpdateRevision
}

func setStatefulSetRolledOut(s *appsv1.StatefulSet) {
	n := replicas(s.Spec.Replicas)
	st := &s.Status
	st.ObservedGeneration = s.Generation
	st.Replicas, st.ReadyReplicas, st.CurrentReplicas, st.UpdatedReplicas, st.AvailableReplicas = n, n, n, n, n
	st.UpdateRevision = revision(s)
	st.CurrentRevision = st.UpdateRevision
}

func ingressFor(addr string) corev1.LoadBalancerIngress {
	if net.ParseIP(addr) != nil {
		return corev1.LoadBalancerIngress{IP: addr}
	}
	return corev1.LoadBalancerIngress{Hostname: addr}
}

func hasIngress(s *corev1.Service, addr string) bool {
	in := s.Status.LoadBalancer.Ingress
	want := ingressFor(addr)
	return len(in) == 1 && in[0].IP == want.IP && in[0].Hostname == want.Hostname
}

func setIngress(s *corev1.Service, addr string) {
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{ingressFor(addr)}
}
