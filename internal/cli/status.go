package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubecdn/kubecdn/internal/ops"
)

// opsFlags are the flags that say where the CDN's admin APIs are, shared
// by status and purge.
type opsFlags struct {
	control  string
	admin    string
	dnsAdmin string
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.control, "control", ops.DefaultControl, "control API of a running `kubecdn up`")
	fs.StringVar(&o.admin, "admin", "", "edge admin URLs of a deployed CDN, comma-separated, each URL or REGION=URL (instead of --control)")
	fs.StringVar(&o.dnsAdmin, "dns-admin", "", "dns admin URL of a deployed CDN, e.g. http://dns.example:9053 (instead of --control)")
}

func (o *opsFlags) explicit() bool { return o.admin != "" || o.dnsAdmin != "" }

// targets finds the regions: from the explicit URLs, or from up's control API.
func (o *opsFlags) targets(ctx context.Context) ([]ops.Target, error) {
	if !o.explicit() {
		ts, err := ops.Control{URL: o.control}.Regions(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot reach the control API of `kubecdn up` at %s: %w\n"+
				"  (is `kubecdn up` running? For a deployed CDN, give --admin URL,... and --dns-admin URL)", o.control, err)
		}
		return ts, nil
	}
	ts, err := ops.StaticTargets(strings.Split(o.admin, ","), strings.TrimRight(o.dnsAdmin, "/"))
	if err != nil {
		return nil, err
	}
	if o.dnsAdmin != "" {
		all, err := ops.DNSTargets(ctx, nil, o.dnsAdmin, ts)
		if err != nil && len(ts) == 0 {
			return nil, fmt.Errorf("cannot reach the dns admin API at %s: %w", o.dnsAdmin, err)
		}
		ts = all
	}
	return ts, nil
}

// runStatus prints one line per region: state, health, requests/s, hit
// ratio, bytes served and cache fill.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kubecdn status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opsFlags
	of.register(fs)
	interval := fs.Duration("interval", time.Second, "time between the two looks the rates are taken over (0: one look, no rates)")
	asJSON := fs.Bool("json", false, "print the snapshot as JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn status [--control URL | --admin URL,... --dns-admin URL] [--interval 1s] [--json]")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	targets, err := of.targets(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kubecdn status:", err)
		return 1
	}
	c := ops.NewCollector(ops.CollectorOptions{})
	snap := c.Collect(ctx, targets)
	if *interval > 0 && reachedAny(snap) {
		select {
		case <-ctx.Done():
			return 1
		case <-time.After(*interval):
		}
		snap = c.Collect(ctx, targets)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(snap)
	} else {
		writeStatusTable(stdout, snap, *interval)
	}
	for _, e := range snap.Errors {
		fmt.Fprintln(stderr, "warning:", e)
	}
	if !reachedAny(snap) && len(snap.Errors) > 0 {
		fmt.Fprintln(stderr, "kubecdn status: no edge or dns admin API answered (see above)")
		return 1
	}
	return 0
}

// reachedAny tells whether any edge or dns answered, or nothing needed asking.
func reachedAny(s ops.Snapshot) bool {
	asked := false
	for _, r := range s.Regions {
		for _, e := range r.EdgeStatus {
			asked = true
			if e.Error == "" {
				return true
			}
		}
	}
	for _, d := range s.DNS {
		asked = true
		if d.Error == "" {
			return true
		}
	}
	return !asked
}

// writeStatusTable writes one line per region and a total. REQ/S is the
// rate between the two looks; where no request came in between but the
// edges served some since they started (a status taken right after a
// burst), it is their average since then, marked "~" and explained under
// the table. HIT% likewise falls back to the ratio since the edges started.
func writeStatusTable(w io.Writer, s ops.Snapshot, interval time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Names left, numbers right: pad the names to one width.
	width := len("REGION")
	for _, r := range s.Regions {
		width = max(width, len(r.Region))
	}
	name := func(n string) string { return fmt.Sprintf("%-*s", width, n) }
	averaged := false
	rate := func(now, sinceStart *float64) string {
		if (now == nil || *now == 0) && sinceStart != nil && *sinceStart > 0 {
			averaged = true
			return "~" + fmtRate(sinceStart)
		}
		return fmtRate(now)
	}
	fmt.Fprintf(tw, "%s\tSTATE\tHEALTH\tEDGES\tREQ/S\tHIT%%\tBYTES\tFILL\t\n", name("REGION"))
	for _, r := range s.Regions {
		health := r.Health
		if health == "" {
			health = "-"
		}
		edges := "-"
		if r.Edges > 0 {
			edges = fmt.Sprintf("%d/%d", r.EdgesUp, r.Edges)
		}
		bytes, fill := fmtBytes(r.BytesServed), fmtBytes(r.FillBytes)
		if r.State != ops.StateOpen {
			bytes, fill = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name(r.Region), r.State, health, edges,
			rate(r.ReqPerSec, r.ReqPerSecSinceStart), fmtPercent(cmp.Or(r.HitRatio, r.HitRatioTotal)), bytes, fill)
	}
	t := s.Totals
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name("total"), fmt.Sprintf("%d open", t.RegionsOpen),
		fmt.Sprintf("%d up", t.RegionsUp), "", rate(t.ReqPerSec, t.ReqPerSecSinceStart), fmtPercent(cmp.Or(t.HitRatio, t.HitRatioTotal)),
		fmtBytes(t.BytesServed), fmtBytes(t.FillBytes))
	tw.Flush()
	switch {
	case averaged && interval > 0:
		fmt.Fprintf(w, "~ no request in the last %v: the average since the edges started\n", interval)
	case averaged:
		fmt.Fprintln(w, "~ the average since the edges started (one look: no interval to take a rate over)")
	}
}

func fmtRate(p *float64) string {
	if p == nil {
		return "-"
	}
	if *p >= 100 {
		return fmt.Sprintf("%.0f", *p)
	}
	return fmt.Sprintf("%.1f", *p)
}

func fmtPercent(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p*100)
}

// fmtBytes writes n in IEC units: 0 B, 512 B, 1.5 KiB, 12.0 MiB.
func fmtBytes(n float64) string {
	if n < 1024 {
		return fmt.Sprintf("%.0f B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	e := min(int(math.Log(n)/math.Log(1024)), len(units))
	return fmt.Sprintf("%.1f %s", n/math.Pow(1024, float64(e)), units[e-1])
}
