package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kubecdn/kubecdn/internal/config"
)

// runValidate checks a CDN file: every problem is printed with its field
// path (to stderr), exit code 1 if there is any.
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
	fmt.Fprintf(stdout, "%s: ok (zone %s, %d hostnames, %d regions, policy %s)\n",
		*file, cfg.Spec.Zone, len(cfg.Spec.Hostnames), len(cfg.AllRegions()), cfg.Spec.Routing.Policy)
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
