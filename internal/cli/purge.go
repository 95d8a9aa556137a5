package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/ops"
)

// runPurge purges URLs, prefixes or tags in every region at once.
func runPurge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return purgeCmd{getenv: os.Getenv, readFile: os.ReadFile}.run(ctx, args, stdout, stderr)
}

type purgeCmd struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
}

func (p purgeCmd) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kubecdn purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opsFlags
	of.register(fs)
	var prefixes, tags stringList
	fs.Var(&prefixes, "prefix", "purge every URL under this absolute URL prefix (repeatable)")
	fs.Var(&tags, "tag", "purge every object with this Surrogate-Key / Cache-Tag (repeatable)")
	soft := fs.Bool("soft", false, "mark stale (revalidated on the next request) instead of removing")
	tokenFile := fs.String("token-file", "", "file holding the admin bearer token (default: with -f each region's own Secret, else $KUBECDN_ADMIN_TOKEN, else asked of `kubecdn up`)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn purge URL... | --prefix P | --tag T [--soft] [-f kubecdn.yaml | --control URL | --admin URL,... --token-file F]")
		fs.PrintDefaults()
	}
	// Flags may come after the URLs: parse, take one URL, parse the rest.
	var urls []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		urls = append(urls, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	req := adminapi.PurgeRequest{URLs: urls, Prefixes: prefixes, Tags: tags, Soft: *soft}
	if err := checkPurge(req); err != nil {
		fmt.Fprintln(stderr, "kubecdn purge:", err)
		return 2
	}
	// With -f each region's token is read from its Secret, unless one is
	// given for all.
	if err := of.open(*tokenFile == ""); err != nil {
		fmt.Fprintln(stderr, "kubecdn purge:", err)
		return 2
	}
	start := time.Now()
	res, code := p.purge(ctx, &of, *tokenFile, req, stderr)
	if res == nil {
		return code
	}
	took := time.Since(start)
	width := 0
	for _, r := range res {
		width = max(width, len(r.Region))
	}
	failed, total, regions := 0, 0, 0
	for _, r := range res {
		switch {
		case r.Skipped:
			fmt.Fprintf(stdout, "%-*s  skipped (%s: no edge runs)\n", width, r.Region, r.State)
		case r.Err != nil:
			failed++
			fmt.Fprintf(stdout, "%-*s  FAILED  (%d ms): %s\n", width, r.Region, r.Duration.Milliseconds(),
				strings.ReplaceAll(r.Err.Error(), "\n", "; "))
		default:
			regions++
			total += r.Purged
			fmt.Fprintf(stdout, "%-*s  purged %d  (%d ms)\n", width, r.Region, r.Purged, r.Duration.Milliseconds())
		}
	}
	if regions+failed == 0 {
		fmt.Fprintln(stderr, "kubecdn purge: no open region to purge")
		return 1
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "kubecdn purge: %d of %d regions failed\n", failed, failed+regions)
		return 1
	}
	fmt.Fprintf(stderr, "purged %d objects in %d regions in %d ms\n", total, regions, took.Milliseconds())
	return 0
}

// purge finds the regions and purges them. With -f each region is purged
// as soon as its API server has named its edges, so one that stalls holds
// up no other. A nil result comes with the exit code.
func (p purgeCmd) purge(ctx context.Context, of *opsFlags, tokenFile string, req adminapi.PurgeRequest, stderr io.Writer) ([]ops.PurgeResult, int) {
	fail := func(err error) ([]ops.PurgeResult, int) {
		fmt.Fprintln(stderr, "kubecdn purge:", err)
		return nil, 1
	}
	if of.src != nil {
		token, err := p.token(ctx, tokenFile, *of)
		if err != nil {
			return fail(err)
		}
		client := of.client()
		res := make([]ops.PurgeResult, len(of.src.RegionNames()))
		of.src.Each(ctx, func(i int, t ops.Target) { res[i] = ops.PurgeWith(ctx, client, []ops.Target{t}, token, req)[0] })
		return res, 0
	}
	targets, err := of.targets(ctx)
	if err != nil {
		return fail(err)
	}
	token, err := p.token(ctx, tokenFile, *of)
	if err != nil {
		return fail(err)
	}
	return ops.PurgeWith(ctx, nil, targets, token, req), 0
}

// token is the admin bearer token: --token-file, else $KUBECDN_ADMIN_TOKEN,
// else the one of a running `kubecdn up`.
func (p purgeCmd) token(ctx context.Context, file string, of opsFlags) (string, error) {
	if file != "" {
		b, err := p.readFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("token file %s is empty", file)
	}
	if of.src != nil {
		return "", nil // each region's own, added on the way (kubeops)
	}
	if t := strings.TrimSpace(p.getenv("KUBECDN_ADMIN_TOKEN")); t != "" {
		return t, nil
	}
	if of.explicit() {
		return "", fmt.Errorf("no admin token: set KUBECDN_ADMIN_TOKEN or give --token-file")
	}
	t, err := ops.Control{URL: of.control}.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("no admin token: set KUBECDN_ADMIN_TOKEN, give --token-file, or run `kubecdn up` (asking %s: %w)", of.control, err)
	}
	return t, nil
}

// checkPurge refuses what every edge would refuse, before asking any.
func checkPurge(req adminapi.PurgeRequest) error {
	if len(req.URLs)+len(req.Prefixes)+len(req.Tags) == 0 {
		return errors.New("nothing to purge: give URLs, --prefix or --tag")
	}
	for _, list := range [][]string{req.URLs, req.Prefixes} {
		for _, raw := range list {
			u, err := url.Parse(raw)
			if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return fmt.Errorf("%q is not an absolute http(s) URL (e.g. http://www.cdn.localhost:8080/index.html)", raw)
			}
		}
	}
	for _, t := range req.Tags {
		if strings.TrimSpace(t) == "" {
			return errors.New("empty --tag")
		}
	}
	return nil
}
