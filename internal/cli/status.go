package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/kubeops"
	"github.com/kubecdn/kubecdn/internal/render"
	"github.com/kubecdn/kubecdn/internal/statuspage"
)

// opsFlags are the flags that say where the CDN's admin APIs are, shared
// by status and purge: a running `kubecdn up` (--control), explicit admin
// URLs (--admin, --dns-admin), or a deployed CDN's file (-f), whose regions
// are reached through their Kubernetes API servers as deploy reaches them.
type opsFlags struct {
	control  string
	admin    string
	dnsAdmin string
	file     string
	kube     kubeops.Options

	src *kubeops.Source // with -f, made by open
}

func (o *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.control, "control", ops.DefaultControl, "control API of a running `kubecdn up`")
	fs.StringVar(&o.admin, "admin", "", "edge admin URLs of a deployed CDN, comma-separated, each URL or REGION=URL (instead of --control)")
	fs.StringVar(&o.dnsAdmin, "dns-admin", "", "dns admin URL of a deployed CDN, e.g. http://dns.example:9053 (instead of --control)")
	fs.StringVar(&o.file, "f", "", "the file of a CDN deployed with `kubecdn deploy`: every region is reached through its Kubernetes API server (its kubeconfig and context), never a public port")
	fs.StringVar(&o.kube.Render.Namespace, "namespace", render.DefaultNamespace, "with -f, the namespace the CDN was deployed in")
	fs.StringVar(&o.kube.Render.AdminSecret, "admin-secret", render.DefaultAdminSecret, `with -f, the Secret (key "token") holding each region's admin token`)
	fs.DurationVar(&o.kube.Timeout, "timeout", kubeops.DefaultTimeout, "with -f, how long each call to a region's API server may take")
}

func (o *opsFlags) explicit() bool { return o.admin != "" || o.dnsAdmin != "" }

// open loads the file given with -f and prepares its regions' clients
// (token: read each region's admin token too); without -f it does nothing.
func (o *opsFlags) open(token bool) error {
	if o.file == "" {
		return nil
	}
	if o.explicit() {
		return errors.New("-f reaches the regions through their API servers: give it without --admin and --dns-admin")
	}
	cfg, err := config.Load(o.file)
	if err != nil {
		return err
	}
	o.kube.Token = token
	o.src, err = kubeops.New(cfg, o.kube)
	return err
}

// client reaches the targets' admin URLs; nil: the default client.
func (o *opsFlags) client() *http.Client {
	if o.src != nil {
		return o.src.Client()
	}
	return nil
}

// targets finds the regions: through the API servers (-f), from the
// explicit URLs, or from up's control API.
func (o *opsFlags) targets(ctx context.Context) ([]ops.Target, error) {
	if o.src != nil {
		return o.src.Regions(ctx)
	}
	if !o.explicit() {
		ts, err := ops.Control{URL: o.control}.Regions(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot reach the control API of `kubecdn up` at %s: %w\n"+
				"  (is `kubecdn up` running? For a deployed CDN, give -f kubecdn.yaml)", o.control, err)
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

// unreachable lists the open regions whose admin listeners could not be
// found (their API server did not answer), one line each.
func unreachable(ts []ops.Target) []string {
	var out []string
	for _, t := range ts {
		if t.Error != "" && t.State == ops.StateOpen {
			out = append(out, t.Region+": "+t.Error)
		}
	}
	return out
}

// runStatus prints one line per region: state, health, requests/s, hit
// ratio, bytes served and cache fill; with --serve it serves the status
// page instead.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kubecdn status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var of opsFlags
	of.register(fs)
	interval := fs.Duration("interval", time.Second, "time between the two looks the rates are taken over (0: one look, no rates)")
	asJSON := fs.Bool("json", false, "print the snapshot as JSON instead of a table")
	serve := fs.String("serve", "", "serve the status page on this address (e.g. 127.0.0.1:9400) until interrupted, instead of printing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn status [-f kubecdn.yaml | --control URL | --admin URL,... --dns-admin URL] [--interval 1s] [--json] [--serve ADDR]")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := of.open(false); err != nil {
		fmt.Fprintln(stderr, "kubecdn status:", err)
		return 2
	}
	if *serve != "" {
		return serveStatus(ctx, *serve, &of, stdout, stderr)
	}
	targets, err := of.targets(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "kubecdn status:", err)
		return 1
	}
	c := ops.NewCollector(ops.CollectorOptions{Client: of.client()})
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
	if bad := unreachable(targets); len(bad) > 0 {
		fmt.Fprintf(stderr, "kubecdn status: %d of %d regions unreachable\n", len(bad), len(targets))
		return 1
	}
	return 0
}

// serveStatus serves the status page over the regions of of until ctx
// ends.
func serveStatus(ctx context.Context, addr string, of *opsFlags, stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(stderr, "kubecdn status:", err)
		return 1
	}
	title := "kubecdn"
	if of.file != "" {
		title = "kubecdn: " + of.file
	}
	src := statuspage.SourceFunc(of.targets)
	srv := &http.Server{
		Handler:           statuspage.Handler(src, statuspage.Options{Title: title, Client: of.client()}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintf(stdout, "status page on http://%s/\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		fmt.Fprintln(stderr, "kubecdn status:", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
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
	writeAutoscale(w, s, time.Now())
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

// writeAutoscale writes a line per autoscale region that an autoscaler
// reports on: its phase, since when, and its latest decision.
func writeAutoscale(w io.Writer, s ops.Snapshot, now time.Time) {
	frozen := ""
	for _, r := range s.Regions {
		if r.Autoscale == nil {
			continue
		}
		fmt.Fprintf(w, "autoscale %s: %s\n", r.Region, autoscaleLine(r.Autoscale, now))
		frozen = cmp.Or(frozen, r.Autoscale.Frozen)
	}
	if frozen != "" {
		fmt.Fprintf(w, "autoscale decisions frozen: %s\n", frozen)
	}
}

// autoscaleLine is an autoscale region's phase, since when, pin, why it
// waits and its latest decision, on one line.
func autoscaleLine(a *ops.Autoscale, now time.Time) string {
	b := a.Phase
	if !a.Since.IsZero() {
		b += fmt.Sprintf(" since %s (%s ago)", a.Since.Local().Format(time.TimeOnly), now.Sub(a.Since).Round(time.Second))
	}
	if a.Pin != "" {
		b += "; pinned " + a.Pin
	}
	if a.Demand != "" {
		b += "; " + a.Demand
	}
	if a.Waiting != "" {
		b += "; " + a.Waiting
	}
	if a.Decision != "" {
		b += "; last decision: " + a.Decision
		if a.Result != "" {
			b += " [" + a.Result + "]"
		}
	}
	return b
}
