// Package handover writes what a multi-cluster engine needs to take over
// the regions from kubecdn's own deploy: for Argo CD an ApplicationSet over
// the per-region directories that kubecdn render writes (ArgoCD), for Karmada
// the resource templates with a PropagationPolicy naming the open regions and
// OverridePolicies for what differs per region (Karmada), and for both the
// registration of each region's cluster (Registrations): an Argo CD cluster
// Secret and a SIG-Multicluster ClusterProfile.
//
// Every function is pure: the same input gives the same objects, so the
// output can be kept in git next to the per-region directories.
package handover

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

// The labels kubecdn registers clusters with and selects them by are the
// rendered objects' own (apps.LabelRegion, apps.LabelManagedBy, ...).
const (
	labelRegion    = apps.LabelRegion
	labelCDN       = apps.LabelCDN
	labelManagedBy = apps.LabelManagedBy
	managedBy      = apps.ManagedBy
)

// ArgoCDNamespace is where Argo CD runs and reads its ApplicationSets and
// cluster Secrets (the namespace of its install manifests).
const ArgoCDNamespace = "argocd"

// ArgoCDOptions say where Argo CD finds the directories kubecdn render
// wrote.
type ArgoCDOptions struct {
	// RepoURL of the git repository holding the rendered directories
	// (required).
	RepoURL string
	// Revision of the repository Argo CD follows: a branch, tag or commit
	// (required).
	Revision string
	// Path of the render's output directory inside the repository, e.g.
	// "deploy/kubecdn"; "" or "." is the repository's root. Each region's
	// Application syncs Path/REGION.
	Path string
	// Project is the Argo CD project of the Applications; if empty,
	// "default".
	Project string
}

// Validate names the first bad field.
func (o ArgoCDOptions) Validate() error {
	if o.RepoURL == "" {
		return fmt.Errorf("repo URL is required (the git repository Argo CD reads the rendered directories from)")
	}
	if !scpLike.MatchString(o.RepoURL) && !hasSchemeAndHost(o.RepoURL) {
		return fmt.Errorf("repo URL %q: want a git URL such as https://github.com/org/repo.git or git@github.com:org/repo.git", o.RepoURL)
	}
	if o.Revision == "" {
		return fmt.Errorf("revision is required (the branch, tag or commit Argo CD follows)")
	}
	if p := o.Path; path.IsAbs(p) || strings.HasPrefix(path.Clean(p), "..") {
		return fmt.Errorf("path %q: want a path inside the repository, relative to its root", p)
	}
	return nil
}

// scpLike matches git's scp-like syntax, user@host:path.
var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$`)

func hasSchemeAndHost(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Host != ""
}

// regionParam is the Go template (Argo CD's goTemplate mode) of a cluster's
// region, read from the label Registrations puts on its Secret.
const regionParam = `{{index .metadata.labels "` + labelRegion + `"}}`

// ArgoCD returns an ApplicationSet (argoproj.io/v1alpha1) that makes one
// Application per region: its cluster generator selects the cluster Secrets
// that Registrations writes (label kubecdn.io/region, one of the rendered
// regions) and syncs the region's directory Path/REGION to it with
// server-side apply, pruning what the file no longer names. An autoscale
// region is served while its cluster is registered: creating or destroying
// the cluster (kubecdn infra) adds or removes its Application.
func ArgoCD(cfg *config.CDN, regions []string, o ArgoCDOptions) (*unstructured.Unstructured, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if len(regions) == 0 {
		return nil, fmt.Errorf("no regions to hand over")
	}
	if o.Project == "" {
		o.Project = "default"
	}
	dir := path.Clean(o.Path)
	if dir == "." {
		dir = ""
	} else {
		dir += "/"
	}
	name := "kubecdn-" + cfg.Metadata.Name
	set := map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "ApplicationSet",
		"metadata": map[string]any{
			"name":      name,
			"namespace": ArgoCDNamespace,
			"labels":    map[string]any{labelManagedBy: managedBy, labelCDN: cfg.Metadata.Name},
		},
		"spec": map[string]any{
			"goTemplate":        true,
			"goTemplateOptions": []any{"missingkey=error"},
			"generators": []any{map[string]any{
				"clusters": map[string]any{"selector": map[string]any{
					"matchLabels": map[string]any{labelManagedBy: managedBy},
					"matchExpressions": []any{map[string]any{
						"key": labelRegion, "operator": "In", "values": strs(regions),
					}},
				}},
			}},
			"template": map[string]any{
				"metadata": map[string]any{
					"name":   name + "-" + regionParam,
					"labels": map[string]any{labelManagedBy: managedBy, labelCDN: cfg.Metadata.Name, labelRegion: regionParam},
				},
				"spec": map[string]any{
					"project": o.Project,
					"source": map[string]any{
						"repoURL":        o.RepoURL,
						"targetRevision": o.Revision,
						"path":           dir + regionParam,
					},
					"destination": map[string]any{"server": "{{.server}}"},
					"syncPolicy": map[string]any{
						"automated":   map[string]any{"prune": true, "selfHeal": true},
						"syncOptions": []any{"ServerSideApply=true"},
					},
				},
			},
		},
	}
	return &unstructured.Unstructured{Object: set}, nil
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

var _ render.Object = (*unstructured.Unstructured)(nil)
