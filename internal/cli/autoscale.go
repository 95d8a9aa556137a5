package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/autoscale/kube"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/infra"
	"github.com/kubecdn/kubecdn/internal/infra/local"
)

// runAutoscale dispatches the autoscaler's subcommands: simulate, or by
// default the autoscaler of a deployed CDN.
func runAutoscale(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "simulate" {
		return runSimulate(ctx, args[1:], stdout, stderr)
	}
	return runKubeAutoscale(ctx, args, stdout, stderr)
}

// runKubeAutoscale opens and closes the autoscale regions of a CDN
// deployed with kubecdn deploy, until interrupted: the regions' dns and
// edges are reached through their API servers (as status -f does), the
// state and the leader Lease live in the first always-on region.
func runKubeAutoscale(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("autoscale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "kubecdn.yaml", "the CDN file, as deployed with `kubecdn deploy`")
	renderOpts := renderFlags(fs)
	var o kube.Options
	fs.BoolVar(&o.DryRun, "dry-run", false, "decide and print; change nothing (no Lease taken, no state written)")
	fs.StringVar(&o.StateFile, "state-file", "", "keep the state in this file instead of the cluster (one autoscaler: no leader election)")
	metrics := fs.String("metrics", "", "serve /metrics (kubecdn_autoscale_*), /healthz and /readyz on this address, e.g. :9100")
	fs.DurationVar(&o.Every, "every", kube.DefaultEvery, "how often demand is sampled from every dns replica and edge")
	fs.DurationVar(&o.StepTimeout, "step-timeout", kube.DefaultStepTimeout, "bound on one step (a deploy that opens or closes a region)")
	fs.DurationVar(&o.DrainMax, "drain-timeout", kube.DefaultDrainMax, "longest a closing region keeps serving after leaving DNS (at least 2 TTLs)")
	fs.DurationVar(&o.Deploy.Timeout, "timeout", 10*time.Minute, "per region: how long a deploy waits for rollouts and load-balancer addresses")
	fs.DurationVar(&o.Deploy.RequestTimeout, "request-timeout", deploy.DefaultRequestTimeout, "per request to a region's API server")
	kubeconfig := fs.String("kubeconfig", "", "one kubeconfig with a context for every region (the file's context names), used instead of the file's kubeconfig paths (in a pod: the mounted Secret)")
	inCluster := fs.String("in-cluster", "", "the region this process runs in: its Lease, state and pods are reached with the pod's service account")
	fs.StringVar(&o.Identity, "identity", "", "this replica's name in the Lease (default: host name and process id)")
	tofu := fs.String("tofu", "", "spec.autoscale.mode cold: the tofu (or terraform) binary that creates and destroys the regions' clusters (default: $"+infra.EnvTofu+", else tofu or terraform on PATH)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn autoscale -f FILE [--dry-run] [--state-file FILE] [--metrics ADDR] [flags]\n"+
			"       kubecdn autoscale simulate -f FILE [--peak RPS] [--seed N]\n\n"+
			"Opens and closes the file's autoscale regions from measured demand: it samples every dns\n"+
			"replica and edge through the regions' API servers, decides, and opens a region with\n"+
			"`kubecdn deploy --open` (warmed, then published in DNS) or closes it (out of DNS, drained,\n"+
			"then pruned; or, with spec.autoscale.mode warm, its edges scaled to zero). Replicas elect\n"+
			"a leader on a Lease in the first always-on region, where the state is kept.\n\n"+
			"simulate  replay a day of demand per continent through the autoscaler's decisions")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kubecdn autoscale: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ro, err := renderOpts()
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn autoscale: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, *file, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	o.Log = log
	o.Deploy.Render, o.Deploy.Out, o.Deploy.Log = ro, stdout, log
	o.RESTConfig, err = kube.ClusterConfig(cfg, *kubeconfig, *inCluster)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn autoscale: %v\n", err)
		return 2
	}
	deployConfig, _ := kube.ClusterConfig(cfg, *kubeconfig, "")
	o.Deploy.Connect = func(c config.Cluster) (*deploy.Cluster, error) {
		rc, err := deployConfig(c)
		if err != nil {
			return nil, err
		}
		rc.Timeout = o.Deploy.RequestTimeout
		return deploy.NewCluster(rc)
	}
	if o.Deploy.Publisher, err = publisherFor(ctx, cfg, log); err != nil {
		fmt.Fprintf(stderr, "kubecdn autoscale: %v\n", err)
		return 1
	}
	if cfg.Spec.Autoscale.Mode == config.ModeCold && !o.DryRun {
		bin, err := infra.FindTofu(*tofu)
		if err != nil {
			fmt.Fprintf(stderr, "kubecdn autoscale: spec.autoscale.mode cold: %v\n", err)
			return 1
		}
		o.Infra = coldInfra(cfg, bin, stdout)
		if !flagSet(fs, "step-timeout") {
			o.StepTimeout = coldStepTimeout
		}
	}
	if *metrics != "" {
		if o.Metrics, err = net.Listen("tcp", *metrics); err != nil {
			fmt.Fprintf(stderr, "kubecdn autoscale: --metrics: %v\n", err)
			return 2
		}
	}
	if err := kube.Run(ctx, cfg, o); err != nil {
		fmt.Fprintf(stderr, "kubecdn autoscale: %v\n", err)
		return 1
	}
	return 0
}

// coldStepTimeout bounds a cold-mode step when --step-timeout is not
// given: an opening region's cluster is created first (an EKS cluster
// takes about 15 minutes), then deployed to.
const coldStepTimeout = 45 * time.Minute

// coldInfra runs `kubecdn infra apply|destroy REGION` for the autoscaler's
// cold mode, with the same generators, managed kubeconfig and cluster
// registrations as the command.
func coldInfra(cfg *config.CDN, bin string, out io.Writer) func(context.Context, infra.Action, string) error {
	return func(ctx context.Context, action infra.Action, region string) error {
		res, err := infra.Run(ctx, cfg, infra.Options{Action: action, Regions: []string{region}, Tofu: bin, Yes: true,
			Out: out, Local: local.Module, Register: registerFiles(cfg.InfraDir()), Revive: reviveLocal})
		if err != nil {
			return err
		}
		return res.Err()
	}
}

// runSimulate replays a 24-hour demand curve per continent through the same
// decision function the autoscaler runs, and prints what each strategy
// costs in region-hours and gives users in distance.
func runSimulate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("autoscale simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "kubecdn.yaml", "the CDN file: its regions and spec.autoscale")
	peak := fs.Float64("peak", 0, "total requests/s at the day's busiest moment (default: 10 × spec.autoscale.scaleUpAbove)")
	seed := fs.Int64("seed", 1, "chooses where and when the day's spike falls")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn autoscale simulate -f FILE [--peak RPS] [--seed N]\n\n"+
			"Replays one day of demand (a daily wave per continent peaking at 20:00 local time, and one\n"+
			"spike) through the autoscaler's decisions, against every region always on and only the\n"+
			"always-on regions, and prints region-hours and the traffic-weighted distance to users.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, *file, err)
		return 1
	}
	s := autoscale.SettingsOf(cfg, time.Minute)
	if s.ScaleUpAbove <= 0 || len(cfg.Spec.Regions.Autoscale) == 0 {
		fmt.Fprintf(stderr, "%s: nothing to simulate: the file needs spec.regions.autoscale and spec.autoscale.scaleUpAbove\n", *file)
		return 1
	}
	regions, err := autoscale.SimRegionsOf(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *file, err)
		return 1
	}
	if *peak <= 0 {
		*peak = 10 * s.ScaleUpAbove
	}
	res := autoscale.Simulate(autoscale.SimConfig{Regions: regions, Sources: autoscale.Populations(), Peak: *peak,
		Step: time.Minute, TTL: cfg.Spec.Routing.TTL.D(), Seed: *seed}, s)
	fmt.Fprintf(stdout, "peak %.0f req/s; open above %g req/s, close below %g req/s, window %s, cooldown %s\n",
		*peak, s.ScaleUpAbove, s.ScaleDownBelow, s.Window, s.Cooldown)
	fmt.Fprint(stdout, autoscale.FormatSim(res))
	return 0
}
