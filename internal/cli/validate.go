package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/infra/local"
)

// runValidate checks a CDN file, and the apps' manifests it names: every
// problem is printed with its field path (to stderr), exit code 1 if there
// is any.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "kubecdn.yaml", "the CDN file to check")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn validate -f FILE\n\nChecks the CDN file and prints every error with its field path.")
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
	bad := 0
	// A region kubecdn infra makes on this machine: what its module
	// refuses at plan is refused here too.
	for _, r := range cfg.AllRegions() {
		if r.Provider == "local" && cfg.InfraManaged(r.Region) {
			if err := local.Check(r.Region); err != nil {
				fmt.Fprintf(stderr, "%s: %s: %v\n", *file, r.Path, err)
				bad++
			}
		}
	}
	// The apps' manifests, with every region's overrides, as deploy would
	// load them.
	for i, a := range cfg.Spec.Apps {
		loaded, err := apps.Load(cfg, a)
		if err == nil {
			for _, r := range loaded.Regions(cfg) {
				if _, err = loaded.ForRegion(r); err != nil {
					break
				}
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: spec.apps[%d]: %v\n", *file, i, err)
			bad++
		}
	}
	if bad > 0 {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (zone %s, %d hostnames, %d regions, %d apps, policy %s)\n",
		*file, cfg.Spec.Zone, len(cfg.Spec.Hostnames), len(cfg.AllRegions()), len(cfg.Spec.Apps), cfg.Spec.Routing.Policy)
	return 0
}

// printConfigErrors prints one line per problem, prefixed by the file name.
func printConfigErrors(w io.Writer, file string, err error) {
	var es config.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintf(w, "%s: %s\n", file, e.Error())
		}
		fmt.Fprintf(w, "%s: %d error(s)\n", file, len(es))
		return
	}
	fmt.Fprintf(w, "%s: %v\n", file, err)
}
