package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
	"github.com/kubecdn/kubecdn/internal/render/handover"
)

// Formats of kubecdn render.
const (
	formatDirs    = ""        // DIR/REGION, for kubectl apply or any GitOps tool
	formatArgoCD  = "argocd"  // DIR/REGION plus an ApplicationSet over them
	formatKarmada = "karmada" // DIR/karmada: resource templates and policies
)

// ApplicationSetFile is where --format argocd writes the ApplicationSet,
// beside the region directories (not in one, so no Application syncs it).
const ApplicationSetFile = "argocd-applicationset.yaml"

// handoverOpts are render's flags for handing the regions over to a
// multi-cluster engine.
type handoverOpts struct {
	fs       *flag.FlagSet
	format   string
	argo     handover.ArgoCDOptions
	repoPath string
	open     stringList
}

func handoverFlags(fs *flag.FlagSet) *handoverOpts {
	h := &handoverOpts{fs: fs}
	fs.Func("format", `hand over to a multi-cluster engine: "argocd" (DIR/REGION and an ApplicationSet over them) or "karmada" (instead of DIR/REGION, DIR/karmada: resource templates, PropagationPolicies, OverridePolicies)`, func(v string) error {
		if v != formatArgoCD && v != formatKarmada {
			return fmt.Errorf("%q: want argocd or karmada", v)
		}
		h.format = v
		return nil
	})
	fs.StringVar(&h.argo.RepoURL, "repo-url", "", "--format argocd: the git repository Argo CD reads DIR from (required)")
	fs.StringVar(&h.argo.Revision, "revision", "", "--format argocd: the branch, tag or commit Argo CD follows (required)")
	fs.StringVar(&h.repoPath, "repo-path", "", "--format argocd: DIR's path inside the repository (default: DIR, when it is relative)")
	fs.StringVar(&h.argo.Project, "project", "", `--format argocd: the Argo CD project of the Applications (default "default")`)
	fs.Var(&h.open, "open", "--format karmada: an autoscale region that is open now, placed with the always-on ones (repeatable)")
	return h
}

// check refuses flag combinations that cannot mean anything, before the
// file is read.
func (h *handoverOpts) check(out string) error {
	for _, f := range []string{"repo-url", "revision", "repo-path", "project"} {
		if flagSet(h.fs, f) && h.format != formatArgoCD {
			return fmt.Errorf("--%s is only for --format argocd", f)
		}
	}
	if flagSet(h.fs, "open") && h.format != formatKarmada {
		return fmt.Errorf("--open is only for --format karmada (Argo CD serves every registered cluster)")
	}
	if h.format != formatArgoCD {
		return nil
	}
	if out == "-" {
		return fmt.Errorf("--format argocd needs -o DIR: Argo CD syncs the region directories from git")
	}
	switch {
	case h.argo.RepoURL == "":
		return fmt.Errorf("--format argocd needs --repo-url (the git repository that will hold %s)", out)
	case h.argo.Revision == "":
		return fmt.Errorf("--format argocd needs --revision (the branch, tag or commit Argo CD follows)")
	}
	if h.repoPath == "" {
		if filepath.IsAbs(out) {
			return fmt.Errorf("--format argocd with an absolute -o %s needs --repo-path (its path inside the repository)", out)
		}
		h.repoPath = filepath.ToSlash(filepath.Clean(out))
	}
	h.argo.Path = h.repoPath
	if err := h.argo.Validate(); err != nil {
		return fmt.Errorf("--format argocd: %w", err)
	}
	return nil
}

// write writes the format's output and says what it wrote on stderr.
func (h *handoverOpts) write(cfg *config.CDN, objs map[string][]render.Object, out string, stdout, stderr io.Writer) error {
	switch h.format {
	case formatArgoCD:
		set, err := handover.ArgoCD(cfg, render.Regions(objs), h.argo)
		if err != nil {
			return err
		}
		if err := render.WriteDir(out, objs); err != nil {
			return err
		}
		b, err := render.Marshal(set)
		if err != nil {
			return err
		}
		p := filepath.Join(out, ApplicationSetFile)
		if err := os.WriteFile(p, append([]byte(render.Header), b...), 0o644); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		fmt.Fprintf(stderr, "kubecdn render: %d regions in %s, ApplicationSet %s/%s in %s\n", len(objs), out, handover.ArgoCDNamespace, set.GetName(), p)
	case formatKarmada:
		k, err := handover.Karmada(cfg, objs, h.open)
		if err != nil {
			return err
		}
		if out == "-" {
			b, err := render.MarshalAll(k)
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		}
		if err := render.WriteDir(out, map[string][]render.Object{"karmada": k}); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "kubecdn render: %d Karmada objects (templates and policies) for %d regions in %s\n", len(k), len(objs), filepath.Join(out, "karmada"))
	}
	return nil
}
