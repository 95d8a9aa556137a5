package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/kubecdn/kubecdn/internal/config"
)

// FieldManager is the server-side apply field manager of every change
// kubecdn makes.
const FieldManager = "kubecdn"

// Cluster is one region's Kubernetes API.
type Cluster struct {
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
	// Server is the API server's URL, for messages.
	Server string
}

// Connect reaches a region's cluster through its kubeconfig file and
// context (config.Cluster); an empty kubeconfig means the usual places
// ($KUBECONFIG, ~/.kube/config), an empty context the file's current one.
func Connect(c config.Cluster) (*Cluster, error) {
	rc, err := RESTConfig(c)
	if err != nil {
		return nil, err
	}
	return NewCluster(rc)
}

// NewCluster uses a rest.Config directly.
func NewCluster(rc *rest.Config) (*Cluster, error) {
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "kubecdn"
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Cluster{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)), Server: rc.Host}, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// resource maps a kind to its REST resource; a namespaced object without a
// namespace gets def. The mapper is refreshed once when a kind is unknown
// (a CRD applied a moment ago).
func (c *Cluster) resource(u *unstructured.Unstructured, def string) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		c.mapper.Reset()
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", kindName(u), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if u.GetNamespace() == "" {
			u.SetNamespace(def)
		}
		return c.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), m, nil
	}
	u.SetNamespace("")
	return c.dyn.Resource(m.Resource), m, nil
}

func kindName(u *unstructured.Unstructured) string {
	return RefOf(u).String()
}

// Get reads the live object, or nil when it does not exist.
func (c *Cluster) Get(ctx context.Context, u *unstructured.Unstructured, def string) (*unstructured.Unstructured, error) {
	ri, _, err := c.resource(u, def)
	if err != nil {
		return nil, err
	}
	live, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", kindName(u), err)
	}
	return live, nil
}

// Apply sends u with server-side apply as FieldManager, taking over fields
// other managers set (the file is the truth). With dryRun the server
// validates and answers what it would store, and stores nothing.
func (c *Cluster) Apply(ctx context.Context, u *unstructured.Unstructured, def string, dryRun bool) (*unstructured.Unstructured, error) {
	ri, _, err := c.resource(u, def)
	if err != nil {
		return nil, err
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	out, err := ri.Apply(ctx, u.GetName(), u, opts)
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", kindName(u), err)
	}
	return out, nil
}

// Create makes an object that must not exist yet (a Secret kubecdn
// generates once); server-side apply would take it over at every deploy.
func (c *Cluster) Create(ctx context.Context, u *unstructured.Unstructured, def string) (*unstructured.Unstructured, error) {
	ri, _, err := c.resource(u, def)
	if err != nil {
		return nil, err
	}
	out, err := ri.Create(ctx, u, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", kindName(u), err)
	}
	return out, nil
}

// Delete removes the object named by ref (dependents in the background);
// one already gone is not an error.
func (c *Cluster) Delete(ctx context.Context, ref Ref, dryRun bool) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(ref.GVK())
	u.SetNamespace(ref.Namespace)
	u.SetName(ref.Name)
	ri, _, err := c.resource(u, ref.Namespace)
	if meta.IsNoMatchError(errors.Unwrap(err)) {
		return nil // its kind (a CRD) is gone, so is the object
	}
	if err != nil {
		return err
	}
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if err := ri.Delete(ctx, ref.Name, opts); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	return nil
}

// resourceFor is for reads that know their resource (the state ConfigMap).
func (c *Cluster) resourceFor(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	return c.dyn.Resource(gvr).Namespace(ns)
}
