// Package cli holds the kubecdn subcommands: one file per subcommand, each a
// thin layer that parses flags, builds a validated config and runs a part.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
)

// command is one subcommand. run returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is the one ordered list of subcommands (no init-time registration).
func commands() []command {
	return []command{
		{"edge", "run the HTTP caching edge server (the data plane)", runEdge},
		{"dns", "run the authoritative DNS that sends users to the best healthy region", runDNS},
		{"validate", "check a kubecdn.yaml and print every error with its field path", runValidate},
		{"up", "run the whole CDN on this machine: origin, edges per region, dns, status page", runUp},
		{"region", "stop or start a region of a running kubecdn up (fault drill)", runRegion},
		{"render", "write each region's Kubernetes manifests for kubectl apply or GitOps", runRender},
		{"deploy", "apply the CDN to every region's cluster and publish DNS (--dry-run, --watch)", runDeploy},
		{"status", "show every region: state, health, requests/s, hit ratio, bytes, cache fill", runStatus},
		{"load", "synthetic users from one network: resolve through the dns, fetch from the edge, print per second", runLoad},
		{"autoscale", "open and close autoscale regions of a deployed CDN from demand; simulate replays a day", runAutoscale},
		{"purge", "purge URLs, prefixes or tags in every region at once", runPurge},
		{"logs", "print the edges' access logs of every region, merged in time order (--follow)", runLogs},
		// Temporary: `kubecdn infra local` until the infra command wires it.
		{"infra", "local clusters: kubecdn infra local start|stop (hidden)", runInfraLocalEntry},
		{"version", "print the version", runVersion},
	}
}

// Version is set at build time with -ldflags "-X github.com/kubecdn/kubecdn/internal/cli.Version=...".
var Version = "dev"

// Main runs the subcommand named by args[0] and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "kubecdn: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kubecdn <command> [flags]\n\ncommands:")
	cs := commands()
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nrun 'kubecdn <command> -h' for the flags of one command")
}

// runInfraLocalEntry routes `infra local ...` to runInfraLocal. Temporary:
// the `infra` command (internal/cli/infra.go) takes this over.
func runInfraLocalEntry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "local" {
		fmt.Fprintln(stderr, "usage: kubecdn infra local start|stop --dir DIR --name REGION")
		return 2
	}
	return runInfraLocal(ctx, args[1:], stdout, stderr)
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "kubecdn", Version)
	return 0
}

// parseFlags parses args into fs and turns -h and parse errors into exit codes.
// It returns ok=false with the code to exit with when the command must stop.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

// parseInterleaved parses args into fs when flags may come before, between
// or after the positional arguments, which it returns. ok=false means stop
// with code (0 for -h).
func parseInterleaved(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}
