package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/publish/rfc2136"
	"github.com/kubecdn/kubecdn/internal/publish/route53"
)

// runDeploy applies the CDN to every region's cluster and publishes DNS;
// with --watch it keeps doing so, putting drift back.
func runDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "kubecdn.yaml", "the CDN file")
	var o deploy.Options
	renderOpts := renderFlags(fs)
	fs.BoolVar(&o.DryRun, "dry-run", false, "show what would change (server-side dry run); change nothing")
	fs.IntVar(&o.Parallel, "parallel", 4, "regions worked on at once")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "per region: how long to wait for rollouts and load-balancer addresses")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", deploy.DefaultRequestTimeout, "per request to a region's API server: how long to wait for an answer before the region fails")
	fs.DurationVar(&o.Drain, "drain", 0, "how long a removed region keeps running after leaving DNS (default: the file's routing TTL)")
	var open, closeRegions stringList
	fs.Var(&open, "open", "open this autoscale region (repeatable); it stays open in later deploys")
	fs.Var(&closeRegions, "close", "close this autoscale region (repeatable): out of DNS, then torn down")
	watch := fs.Bool("watch", false, "keep reconciling: re-read the file and put back drift every --interval")
	interval := fs.Duration("interval", 30*time.Second, "with --watch, time between reconciliations")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn deploy -f FILE [--dry-run] [--watch] [flags]\n\nApplies the CDN to every region's cluster (kubeconfig and context per region in\nthe file) with server-side apply, prunes what the file no longer names, waits for\nthe rollouts, reads each region's load-balancer address and publishes DNS.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	ro, err := renderOpts()
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn deploy: %v\n", err)
		return 2
	}
	if *watch && *interval < time.Second {
		fmt.Fprintf(stderr, "kubecdn deploy: --interval %s is below 1s\n", *interval)
		return 2
	}
	if *watch && o.DryRun {
		fmt.Fprintln(stderr, "kubecdn deploy: --watch and --dry-run do not go together")
		return 2
	}
	o.Render, o.Open, o.Close = ro, open, closeRegions
	o.Out = stdout
	o.Log = slog.New(slog.NewTextHandler(stderr, nil))

	load := func() (*config.CDN, []byte, error) {
		raw, err := os.ReadFile(*file)
		if err != nil {
			return nil, nil, err
		}
		cfg, err := config.Load(*file)
		return cfg, raw, err
	}
	cfg, raw, err := load()
	if err != nil {
		printConfigErrors(stderr, *file, err)
		return 1
	}
	once := func(cfg *config.CDN) (deploy.Result, error) {
		pub, err := publisherFor(ctx, cfg, o.Log)
		if err != nil {
			return deploy.Result{}, err
		}
		opts := o
		opts.Publisher = pub
		return deploy.Run(ctx, cfg, opts)
	}
	res, err := once(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn deploy: %v\n", err)
		return 1
	}
	code := report(stdout, res, o.DryRun)
	if !*watch {
		return code
	}
	o.Open = nil // opened regions are remembered in the clusters
	for {
		select {
		case <-ctx.Done():
			return code
		case <-time.After(*interval):
		}
		next, nextRaw, err := load()
		if err != nil {
			var buf bytes.Buffer
			printConfigErrors(&buf, *file, err)
			fmt.Fprintf(stdout, "%-14s file refused, keeping the last good one:\n%s", "watch", buf.String())
		} else {
			changed := !bytes.Equal(nextRaw, raw)
			cfg, raw = next, nextRaw
			if changed {
				fmt.Fprintf(stdout, "%-14s %s changed; reconciling\n", "watch", *file)
			}
			res, err = once(cfg)
			if err != nil {
				fmt.Fprintf(stdout, "%-14s %v\n", "watch", err)
				continue
			}
			if !changed {
				for _, rr := range res.Regions {
					for _, c := range rr.Changes {
						fmt.Fprintf(stdout, "%-14s drift: %s was %s\n", rr.Region, c.Ref, map[string]string{"created": "missing, created again", "configured": "changed, put back", "pruned": "extra, pruned", "deleted": "deleted"}[c.Action])
					}
				}
			}
			code = report(stdout, res, false)
		}
	}
}

// report prints the last line(s) and returns the exit code.
func report(w io.Writer, res deploy.Result, dryRun bool) int {
	if err := res.Err(); err != nil {
		fmt.Fprintf(w, "deploy: %d of %d regions failed", res.Failed(), len(res.Regions))
		if res.DNSErr != nil {
			fmt.Fprint(w, "; DNS not fully published")
		}
		if res.HopErr != nil {
			fmt.Fprint(w, "; hop key Secrets need a look")
		}
		fmt.Fprintln(w)
		var failed []error
		for _, rr := range res.Regions {
			if rr.Err != nil {
				failed = append(failed, fmt.Errorf("  %s: %w", rr.Region, rr.Err))
			}
		}
		if res.DNSErr != nil {
			failed = append(failed, fmt.Errorf("  dns: %w", res.DNSErr))
		}
		if res.HopErr != nil {
			failed = append(failed, fmt.Errorf("  hop key: %w", res.HopErr))
		}
		fmt.Fprintln(w, errors.Join(failed...))
		return 1
	}
	if dryRun {
		fmt.Fprintf(w, "deploy: dry run of %d regions; nothing changed\n", len(res.Regions))
	} else {
		fmt.Fprintf(w, "deploy: %d regions in sync\n", len(res.Regions))
	}
	return 0
}

// publisherFor builds the external DNS publisher the file chooses, or nil
// for kubecdn's own dns.
func publisherFor(ctx context.Context, cfg *config.CDN, log *slog.Logger) (publish.Publisher, error) {
	p := cfg.Spec.Publish
	switch p.Provider {
	case config.PublishRoute53:
		return route53.New(ctx, *p.Route53, route53.Options{Logger: log})
	case config.PublishRFC2136:
		return rfc2136.New(*p.RFC2136, cfg.Spec.Zone, rfc2136.Options{Logger: log})
	}
	return nil, nil
}
