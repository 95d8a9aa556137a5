package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/kubecdn/kubecdn/internal/loadgen"
	"github.com/kubecdn/kubecdn/internal/local"
)

// runLoad sends synthetic users from one network through the dns and the
// edges, and prints per second what they got.
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o loadgen.Options
	from := fs.String("from", "", "the users' network (required), e.g. 203.0.113.0/24; the dns sees it as EDNS Client Subnet")
	fs.StringVar(&o.URL, "url", "http://www.cdn.localhost:8080/", "what the users fetch; its host is resolved through --dns, its port kept")
	fs.StringVar(&o.DNS, "dns", local.DefaultDNS, "the dns to resolve through (host:port)")
	fs.Float64Var(&o.Rate, "rps", 50, fmt.Sprintf("requests per second (at most %d)", loadgen.MaxRate))
	fs.DurationVar(&o.Duration, "duration", time.Minute, "how long to run (at most 24h)")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "bound on each request and dns query")
	fs.Int64Var(&o.Seed, "seed", 1, "chooses among several answered addresses")
	fs.IntVar(&o.Keys, "keys", 0, "spread the users over this many objects: each request fetches --url followed by a key number, drawn with Zipf popularity (0: --url alone)")
	fs.Float64Var(&o.ZipfS, "zipf", 1.1, "the Zipf exponent of --keys (more than 1; larger: fewer hot keys take more of the requests)")
	source := fs.String("source", "", `local address the users connect from; default with a loopback --dns: 127.B.C.10 for --from A.B.C.0/24, which kubecdn up's example places where --from is, so the edges count the users there too ("none": the system's choice)`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn load --from CIDR [--url URL] [--rps N] [--duration D] [--dns ADDR]\n\n"+
			"Synthetic users in one network: resolves --url's host through the dns as a resolver in that\n"+
			"network would (EDNS Client Subnet, answers kept for their TTL), fetches from the answered\n"+
			"edge, and prints per second the status codes and which edge served (from Cache-Status).\n"+
			"Exits 1 if any request failed (no response, a cut body, or a 5xx).")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	p, err := netip.ParsePrefix(*from)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn load: --from %q: want a network such as 203.0.113.0/24\n", *from)
		return 2
	}
	o.From = p
	switch *source {
	case "none":
	case "":
		if host, _, err := net.SplitHostPort(o.DNS); err == nil {
			if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
				o.Source, _ = loadgen.LoopbackTwin(p)
			}
		}
	default:
		a, err := netip.ParseAddr(*source)
		if err != nil {
			fmt.Fprintf(stderr, "kubecdn load: --source %q: want an IP address\n", *source)
			return 2
		}
		o.Source = a
	}
	sum, err := loadgen.Run(ctx, o, stdout)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "kubecdn load: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "%d requests, %d failed, %d skipped (client saturated)", sum.Requests, sum.Failed, sum.Skipped)
	if sum.Stopped > 0 {
		fmt.Fprintf(stdout, ", %d cut off by the stop", sum.Stopped)
	}
	edges := make([]string, 0, len(sum.ByEdge))
	for e := range sum.ByEdge {
		edges = append(edges, e)
	}
	sort.Strings(edges)
	for _, e := range edges {
		fmt.Fprintf(stdout, "; %s %d", e, sum.ByEdge[e])
		if o.Keys > 0 {
			fmt.Fprintf(stdout, " (%d hits)", sum.Hits[e])
		}
	}
	fmt.Fprintln(stdout)
	for e, n := range sum.Errors {
		fmt.Fprintf(stderr, "kubecdn load: %d× %s\n", n, e)
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}
