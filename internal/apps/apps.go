// Package apps loads the user's own manifests named in spec.apps (a
// directory of YAML/JSON files or a kustomization) and turns them into the
// objects `kubecdn deploy` applies to each region: deep copies with the
// region's overrides applied (strategic merge for Kubernetes' own kinds,
// JSON merge patch for others) and kubecdn's ownership labels set. It also
// finds the LoadBalancer Services that get a hostname in DNS.
//
// Loading reads the disk once; everything after that is pure.
package apps

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/config"
)

// The labels ForRegion sets on every object's metadata (never on pod
// templates or selectors), so deploy can find and prune what it owns.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "kubecdn"
	LabelCDN       = "kubecdn.io/cdn"
	LabelRegion    = "kubecdn.io/region"
	LabelApp       = "kubecdn.io/app"
)

// LoadAll loads every app of the file (spec.apps), in the file's order,
// and stops at the first that fails.
func LoadAll(cfg *config.CDN) ([]*App, error) {
	var out []*App
	for _, a := range cfg.Spec.Apps {
		l, err := Load(cfg, a)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// App is an app's manifests, loaded once and rendered per region.
type App struct {
	// Name of the app (spec.apps[].name).
	Name string
	// Dir is the manifests directory, resolved against the CDN file.
	Dir string
	// Kustomization is the kustomization file the objects were built
	// from, or "" for a plain directory of manifests.
	Kustomization string

	spec    config.App
	path    string // spec.apps[i], for error messages
	cdn     string
	regions []string // every region of the CDN when loaded
	objects []object
}

// object is one loaded manifest with where it came from.
type object struct {
	u      *unstructured.Unstructured
	source string // "file (document n)" or the kustomization file
}

// Load reads the app's manifests. A directory holding kustomization.yaml,
// kustomization.yml or Kustomization is built with kustomize; otherwise
// every *.yaml, *.yml and *.json file in it (not in subdirectories), in
// name order, is read as a stream of documents. Empty documents are
// skipped and List objects expanded into their items.
func Load(cfg *config.CDN, app config.App) (*App, error) {
	a := &App{
		Name:    app.Name,
		Dir:     cfg.ResolvePath(app.Manifests),
		spec:    app,
		path:    fmt.Sprintf("app %q", app.Name),
		cdn:     cfg.Metadata.Name,
		regions: regionNames(cfg),
	}
	for i, s := range cfg.Spec.Apps {
		if s.Name == app.Name {
			a.path = fmt.Sprintf("spec.apps[%d]", i)
			break
		}
	}
	objs, kust, err := readManifests(a.Dir)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app.Name, err)
	}
	a.Kustomization = kust
	if err := checkObjects(objs); err != nil {
		return nil, fmt.Errorf("app %q: %w", app.Name, err)
	}
	a.objects = objs
	return a, nil
}

// Objects returns deep copies of the loaded objects, in load order, as
// written (no overrides, no labels).
func (a *App) Objects() []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(a.objects))
	for i, o := range a.objects {
		out[i] = o.u.DeepCopy()
	}
	return out
}

// Regions returns the regions the app runs in: its own list, or every
// region of the CDN (alwaysOn, then autoscale) in file order.
func (a *App) Regions(cfg *config.CDN) []string {
	if len(a.spec.Regions) > 0 {
		return slices.Clone(a.spec.Regions)
	}
	return regionNames(cfg)
}

// ForRegion returns deep copies of the app's objects for one region: the
// overrides naming the region applied in file order, then the labels
// managed-by, cdn, region and app set on every object's metadata.
func (a *App) ForRegion(region string) ([]*unstructured.Unstructured, error) {
	if !a.runsIn(region) {
		return nil, fmt.Errorf("%s: app %q does not run in region %q", a.path, a.Name, region)
	}
	objs := a.Objects()
	for j, o := range a.spec.Overrides {
		if !slices.Contains(o.Regions, region) {
			continue
		}
		f := fmt.Sprintf("%s.overrides[%d]", a.path, j)
		if !strings.HasPrefix(a.path, "spec.") {
			f = fmt.Sprintf("%s: overrides[%d]", a.path, j)
		}
		if err := applyOverride(objs, o); err != nil {
			return nil, fmt.Errorf("%s: region %q: %w", f, region, err)
		}
	}
	labels := map[string]string{
		LabelManagedBy: ManagedBy,
		LabelCDN:       a.cdn,
		LabelRegion:    region,
		LabelApp:       a.Name,
	}
	for _, u := range objs {
		if l, found, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "labels"); found && l == nil {
			unstructured.RemoveNestedField(u.Object, "metadata", "labels") // "labels:" with nothing after it
		}
		for _, k := range []string{LabelManagedBy, LabelCDN, LabelRegion, LabelApp} {
			if err := unstructured.SetNestedField(u.Object, labels[k], "metadata", "labels", k); err != nil {
				return nil, fmt.Errorf("%s: labelling %s: %w", a.path, describe(u), err)
			}
		}
	}
	return objs, nil
}

func (a *App) runsIn(region string) bool {
	if len(a.spec.Regions) > 0 {
		return slices.Contains(a.spec.Regions, region)
	}
	return len(a.regions) == 0 || slices.Contains(a.regions, region)
}

func regionNames(cfg *config.CDN) []string {
	var out []string
	for _, r := range cfg.AllRegions() {
		out = append(out, r.Name)
	}
	return out
}

// describe names an object in messages: "Deployment web" or
// "Deployment video/web".
func describe(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return u.GetKind() + " " + ns + "/" + u.GetName()
	}
	return u.GetKind() + " " + u.GetName()
}
