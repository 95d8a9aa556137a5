package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/infra"
	"github.com/kubecdn/kubecdn/internal/infra/local"
	"github.com/kubecdn/kubecdn/internal/render/handover"
)

// infraHooks are what other packages add to kubecdn infra, wired in
// commands(): the root module of provider local, the cluster
// registrations of a multi-cluster engine, and (tests) a generator.
type infraHooks struct {
	Local    infra.LocalModule
	Register func(ctx context.Context, region, server string, caPEM []byte, auth *clientcmdapi.ExecConfig) error
	Generate infra.Generator
	Revive   func(ctx context.Context, r config.RegionRef, dir string) (bool, error)
}

// runInfra is `kubecdn infra plan|apply|destroy [REGION...]`.
// `kubecdn infra local start|stop` (what a provider: local module's
// provisioners run) is not listed in the usage: users run apply.
func runInfra(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "local" {
		return runInfraLocal(ctx, args[1:], stdout, stderr)
	}
	return runInfraWith(ctx, args, stdout, stderr, infraHooks{Local: local.Module, Revive: reviveLocal})
}

// reviveLocal is the Revive hook of kubecdn infra apply: a provider local
// region whose processes died is started again (local.Revive); its state
// lives in its module's directory.
func reviveLocal(ctx context.Context, r config.RegionRef, dir string) (bool, error) {
	if r.Provider != "local" {
		return false, nil
	}
	return local.Revive(ctx, dir, r.Name)
}

func runInfraWith(ctx context.Context, args []string, stdout, stderr io.Writer, hooks infraHooks) int {
	fs := flag.NewFlagSet("infra", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "kubecdn.yaml", "the CDN file")
	tofu := fs.String("tofu", "", "the tofu (or terraform) binary (default: $"+infra.EnvTofu+", else tofu or terraform on PATH)")
	parallel := fs.Int("parallel", 4, "regions worked on at once")
	timeout := fs.Duration("timeout", 60*time.Minute, "per region: how long init, plan and apply may take")
	yes := fs.Bool("yes", false, "confirm destroy")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: kubecdn infra plan|apply|destroy [REGION...] -f FILE [flags]

Creates the Kubernetes cluster of every region the file asks kubecdn to create
(spec.infra set, the region's cluster: empty): one OpenTofu root module per
region in spec.infra.dir/REGION/main.tf.json, driven with tofu from PATH.
apply prints each region's plan, applies it, and writes the contexts
kubecdn-REGION into spec.infra.dir/kubeconfig, which kubecdn deploy then uses.
destroy needs --yes.`)
		fs.PrintDefaults()
	}
	pos, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		fs.Usage()
		return 2
	}
	action := infra.Action(pos[0])
	if action != infra.Plan && action != infra.Apply && action != infra.Destroy {
		fmt.Fprintf(stderr, "kubecdn infra: unknown action %q (want plan, apply or destroy)\n", pos[0])
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, *file, err)
		return 1
	}
	if hooks.Register == nil {
		hooks.Register = registerFiles(cfg.InfraDir())
	}
	bin, err := infra.FindTofu(*tofu)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn infra: %v\n", err)
		return 1
	}
	o := infra.Options{
		Action: action, Regions: pos[1:], Tofu: bin, Parallel: *parallel, Timeout: *timeout, Yes: *yes,
		Out: stdout, Generate: hooks.Generate, Local: hooks.Local, Register: hooks.Register, Revive: hooks.Revive,
	}
	start := time.Now()
	res, err := infra.Run(ctx, cfg, o)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn infra %s: %v\n", action, err)
		return 1
	}
	failed := 0
	var sum infra.Summary
	for _, rr := range res.Regions {
		if rr.Err != nil {
			failed++
			continue
		}
		sum.Add, sum.Change, sum.Destroy = sum.Add+rr.Plan.Add, sum.Change+rr.Plan.Change, sum.Destroy+rr.Plan.Destroy
		sum.Outputs += rr.Plan.Outputs
	}
	took := time.Since(start).Round(time.Second)
	if failed > 0 || res.KubeconfigErr != nil {
		fmt.Fprintf(stdout, "infra %s: %d of %d regions failed (%s)\n", action, failed, len(res.Regions), took)
		for _, rr := range res.Regions {
			if rr.Err != nil {
				fmt.Fprintf(stdout, "  %s: %s\n", rr.Region, strings.ReplaceAll(rr.Err.Error(), "\n", "\n    "))
			}
		}
		if res.KubeconfigErr != nil {
			fmt.Fprintf(stdout, "  kubeconfig: %v\n", res.KubeconfigErr)
		}
		return 1
	}
	switch action {
	case infra.Plan:
		fmt.Fprintf(stdout, "infra plan: %d regions, %s (%s)\n", len(res.Regions), sum, took)
	case infra.Apply:
		fmt.Fprintf(stdout, "infra apply: %d regions ready, %s (%s); kubeconfig %s\n", len(res.Regions), sum, took, res.Kubeconfig)
	case infra.Destroy:
		for _, rr := range res.Regions {
			if err := os.Remove(handover.RegistrationsFile(cfg.InfraDir(), rr.Region)); err != nil && !errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(stderr, "kubecdn infra: %v\n", err)
			}
		}
		fmt.Fprintf(stdout, "infra destroy: %d regions destroyed (%s)\n", len(res.Regions), took)
	}
	return 0
}

// registerFiles is the Register hook of kubecdn infra apply: each region
// whose cluster is reached through a credential plugin (the clouds) gets
// its Argo CD cluster Secret and ClusterProfile written to
// DIR/registrations/REGION.yaml, for the user to apply where those engines
// run. A local region's kubeconfig carries a client certificate, not a
// plugin, and is not registered: no engine outside this machine reaches it.
func registerFiles(dir string) func(ctx context.Context, region, server string, caPEM []byte, auth *clientcmdapi.ExecConfig) error {
	return func(_ context.Context, region, server string, caPEM []byte, auth *clientcmdapi.ExecConfig) error {
		if auth == nil {
			return nil
		}
		return handover.WriteRegistrations(dir, region, server, caPEM, auth)
	}
}
