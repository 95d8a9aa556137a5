package infra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/progress"
)

// Action is what Run does to each region.
type Action string

// The actions of kubecdn infra.
const (
	Plan    Action = "plan"    // init and plan; change nothing
	Apply   Action = "apply"   // plan, print the summary, apply that plan, write the kubeconfig
	Destroy Action = "destroy" // plan a destroy, print the summary, carry it out
)

// Options of Run.
type Options struct {
	Action Action
	// Regions to work on; if empty, every region kubecdn creates.
	Regions []string
	// Tofu is the tofu (or terraform) binary (see FindTofu).
	Tofu string
	// Parallel bounds the regions worked on at once; if zero, 4.
	Parallel int
	// Timeout bounds each region's whole run; if zero, 60m (an EKS cluster
	// takes about 15).
	Timeout time.Duration
	// Yes confirms a destroy; Run refuses one without it.
	Yes bool
	// Out gets the progress lines.
	Out io.Writer
	// Generate makes each region's root; if nil, the built-in generators
	// (Generate) with Local for provider local.
	Generate Generator
	Local    LocalModule
	// Register, when set, is called after each region's apply with its
	// cluster's address, CA and credential plugin: the hook where the
	// cluster registrations of a multi-cluster engine (an Argo CD cluster
	// Secret, a ClusterProfile) are written. An error fails the region. It
	// runs in the region's goroutine, for several regions at once.
	Register func(ctx context.Context, region, server string, caPEM []byte, auth *clientcmdapi.ExecConfig) error
	// Revive, when set, is called before each region's apply with the
	// region and its module's directory; it brings back a cluster that
	// tofu's state holds but that is down (provider local after a
	// reboot), which a plan cannot see, and reports whether it did.
	Revive func(ctx context.Context, r config.RegionRef, dir string) (bool, error)
}

// RegionResult is what happened to one region.
type RegionResult struct {
	Region  string
	Plan    Summary
	Outputs map[string]string
	Err     error
}

// Result of Run.
type Result struct {
	Regions []RegionResult
	// Kubeconfig is the managed kubeconfig written (apply, destroy).
	Kubeconfig    string
	KubeconfigErr error
}

// Err joins every failure, or nil.
func (r Result) Err() error {
	var errs []error
	for _, rr := range r.Regions {
		if rr.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rr.Region, rr.Err))
		}
	}
	if r.KubeconfigErr != nil {
		errs = append(errs, r.KubeconfigErr)
	}
	return errors.Join(errs...)
}

// Regions returns the regions Run would work on: names (all managed
// regions when empty), in file order, or an error naming a region that is
// unknown or that kubecdn does not create.
func Regions(cfg *config.CDN, names []string) ([]config.RegionRef, error) {
	if cfg.Spec.Infra == nil {
		return nil, errors.New("the file has no spec.infra: kubecdn infra creates clusters only for files that ask for it (spec.infra: {})")
	}
	all := cfg.AllRegions()
	var out []config.RegionRef
	for _, n := range names {
		i := slices.IndexFunc(all, func(r config.RegionRef) bool { return r.Name == n })
		switch {
		case i < 0:
			return nil, fmt.Errorf("region %q is not in the file", n)
		case !cfg.InfraManaged(all[i].Region):
			return nil, fmt.Errorf("region %q has its own cluster: (%s), so kubecdn infra does not create it", n, all[i].Path)
		}
	}
	for _, r := range all {
		if cfg.InfraManaged(r.Region) && (len(names) == 0 || slices.Contains(names, r.Name)) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no region for kubecdn infra: every region has its own cluster:")
	}
	return out, nil
}

// Run generates each region's root module into spec.infra.dir/REGION and
// drives it, regions in parallel, printing progress lines; a failed region
// is reported in its RegionResult and the others go on. The error return
// means nothing was started (bad options, no binary).
func Run(ctx context.Context, cfg *config.CDN, o Options) (Result, error) {
	if o.Action != Plan && o.Action != Apply && o.Action != Destroy {
		return Result{}, fmt.Errorf("unknown action %q", o.Action)
	}
	if o.Action == Destroy && !o.Yes {
		return Result{}, errors.New("destroy deletes the clusters and everything on them: confirm with --yes")
	}
	regions, err := Regions(cfg, o.Regions)
	if err != nil {
		return Result{}, err
	}
	if o.Tofu == "" {
		return Result{}, errors.New("no tofu binary given")
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Minute
	}
	gen := o.Generate
	if gen == nil {
		gen = func(cfg *config.CDN, r config.RegionRef, dir string) (Root, error) {
			return Generate(cfg, r, dir, o.Local)
		}
	}
	lines := progress.New(o.Out)
	res := Result{Regions: make([]RegionResult, len(regions)), Kubeconfig: filepath.Join(cfg.InfraDir(), "kubeconfig")}
	entries := make([]*Entry, len(regions))
	progress.Parallel(ctx, len(regions), o.Parallel, func(i int) {
		r := regions[i]
		rr := &res.Regions[i]
		rr.Region = r.Name
		rctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		e, err := runRegion(rctx, cfg, r, gen, o, lines, rr)
		if err != nil {
			rr.Err = err
			lines.Printf(r.Name, "failed: %v", oneLine(err))
			return
		}
		entries[i] = e
	})
	for i := range res.Regions {
		if res.Regions[i].Region == "" {
			res.Regions[i] = RegionResult{Region: regions[i].Name, Err: ctx.Err()}
		}
	}
	if o.Action == Plan {
		return res, nil
	}
	var add []Entry
	var remove []string
	for i, rr := range res.Regions {
		switch {
		case rr.Err != nil:
		case o.Action == Apply && entries[i] != nil:
			add = append(add, *entries[i])
		case o.Action == Destroy:
			remove = append(remove, rr.Region)
		}
	}
	if len(add)+len(remove) > 0 {
		if err := MergeKubeconfig(res.Kubeconfig, add, remove); err != nil {
			res.KubeconfigErr = err
		}
	}
	return res, nil
}

func runRegion(ctx context.Context, cfg *config.CDN, r config.RegionRef, gen Generator, o Options, lines *progress.Lines, rr *RegionResult) (*Entry, error) {
	dir := filepath.Join(cfg.InfraDir(), r.Name)
	root, err := gen(cfg, r, dir)
	if err != nil {
		return nil, err
	}
	if err := Write(dir, root.JSON); err != nil {
		return nil, err
	}
	for name, b := range root.Files {
		if err := writeFile(dir, name, b); err != nil {
			return nil, err
		}
	}
	d, err := newDriver(dir, o.Tofu)
	if err != nil {
		return nil, err
	}
	for _, argv := range root.Before {
		if err := d.run(ctx, argv); err != nil {
			return nil, d.tail(err) // the command's output says why
		}
	}
	if o.Action == Apply && o.Revive != nil {
		revived, err := o.Revive(ctx, r, dir)
		if err != nil {
			return nil, fmt.Errorf("bringing the cluster back: %w", err)
		}
		if revived {
			lines.Printf(r.Name, "was down: started again on its data")
		}
	}
	lines.Printf(r.Name, "init %s", dir)
	if err := d.init(ctx); err != nil {
		return nil, err
	}
	rr.Plan, err = d.plan(ctx, o.Action == Destroy)
	if err != nil {
		return nil, err
	}
	lines.Printf(r.Name, "plan: %s", rr.Plan)
	if o.Action == Plan {
		return nil, nil
	}
	if rr.Plan != (Summary{}) {
		lines.Printf(r.Name, "%s…", map[Action]string{Apply: "applying", Destroy: "destroying"}[o.Action])
		start := time.Now()
		if err := d.apply(ctx); err != nil {
			return nil, err
		}
		lines.Printf(r.Name, "%s in %s", map[Action]string{Apply: "applied", Destroy: "destroyed"}[o.Action], time.Since(start).Round(time.Second))
	} else {
		os.Remove(filepath.Join(dir, planFile))
	}
	if o.Action == Destroy {
		return nil, nil
	}
	if rr.Outputs, err = d.outputs(ctx); err != nil {
		return nil, err
	}
	if len(root.Export) > 0 {
		p := filepath.Join(dir, "exported.kubeconfig")
		cmd := append([]string{"env", "KUBECONFIG=" + p}, root.Export...)
		if err := d.run(ctx, cmd); err != nil {
			return nil, d.tail(err)
		}
		rr.Outputs["kubeconfig_path"] = p
	}
	e, err := entryFrom(r.Name, rr.Outputs, root.Auth)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", dir, err)
	}
	if o.Register != nil && e.Server != "" {
		if err := o.Register(ctx, r.Name, e.Server, e.CA, e.Auth); err != nil {
			return nil, fmt.Errorf("registering the cluster: %w", err)
		}
	}
	lines.Printf(r.Name, "ready: context %s", config.InfraContext(r.Name))
	return &e, nil
}

// tail adds the last lines a Before or Export command printed to err:
// they say what went wrong (tofu's own errors carry its stderr already).
func (d *driver) tail(err error) error {
	out := strings.TrimSpace(d.log.String())
	if out == "" {
		return err
	}
	ls := strings.Split(out, "\n")
	if len(ls) > 12 {
		ls = ls[len(ls)-12:]
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(ls, "\n"))
}

// oneLine is the first line of err, for a progress line.
func oneLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
