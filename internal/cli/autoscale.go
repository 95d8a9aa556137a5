package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
)

// runAutoscale dispatches the autoscaler's subcommands.
func runAutoscale(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "simulate" {
		fmt.Fprintln(stderr, "usage: kubecdn autoscale simulate -f FILE [--peak RPS] [--seed N]\n\n"+
			"simulate  replay a day of demand per continent through the autoscaler's decisions")
		if len(args) == 0 {
			return 2
		}
		if args[0] == "-h" || args[0] == "--help" {
			return 0
		}
		return 2
	}
	return runSimulate(ctx, args[1:], stdout, stderr)
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
