package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/local"
	"github.com/kubecdn/kubecdn/internal/statuspage"
)

// runUp runs the whole CDN on this machine (internal/local) until ctx ends:
// the built-in example without -f, else the user's file.
func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "the CDN file (default: the built-in example with the demo origin)")
	var o local.Options
	fs.StringVar(&o.DNS, "dns", local.DefaultDNS, "dns address (UDP and TCP)")
	fs.StringVar(&o.DNSAdmin, "dns-admin", local.DefaultDNSAdmin, "dns admin address")
	fs.StringVar(&o.Control, "control", local.DefaultControl, "control API and status page address")
	fs.StringVar(&o.OriginAddr, "origin-addr", local.DefaultOriginAddr, "address of the origin up serves (the demo, or the file's origin.dir)")
	fs.IntVar(&o.EdgesPerRegion, "edges-per-region", 1, "edges per region for regions whose entry lists no edges (peers of each other)")
	demoFlag := fs.Bool("demo", false, "serve the embedded demo origin instead of the file's origin (always on without -f)")
	fs.BoolVar(&o.DemoVideo.Off, "no-video", false, "leave the demo's video (ffmpeg) out")
	fs.StringVar(&o.DemoVideo.CacheDir, "video-cache", "", "where the demo's on-demand video is generated once and reused (default: kubecdn/video in the user cache dir)")
	fs.StringVar(&o.TokenFile, "token-file", "", "write the admin token here (default: a new temporary file)")
	quiet := fs.Bool("quiet", false, "log warnings and errors only")
	fs.BoolVar(&o.Autoscale.DryRun, "autoscale-dry-run", false, "the autoscaler decides and logs each decision, and opens and closes nothing")
	fs.StringVar(&o.Autoscale.StateFile, "autoscale-state", "", "where the autoscale regions' states survive a restart (default: beside --token-file, else the user cache dir)")
	fs.Func("autoscale-dns", "another dns replica of the file for the autoscaler to sample and route, by its admin URL (http://127.0.0.1:9054; repeatable): one that does not answer freezes the decisions", func(s string) error {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("want an http URL such as http://127.0.0.1:9054, not %q", s)
		}
		o.Autoscale.DNS = append(o.Autoscale.DNS, s)
		return nil
	})
	warm := fs.Bool("autoscale-warm", true, "a region the autoscaler opens fetches its users' hottest objects before it enters the dns answers (false: it opens cold)")
	fs.DurationVar(&o.Autoscale.Every, "autoscale-every", time.Second, "how often the autoscaler samples demand")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn up [-f FILE] [flags]\n\nRuns the whole CDN on this machine: origin, one edge group per region on its own\nloopback IP, the dns and a status page. Ctrl-C stops everything.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	o.Autoscale.NoWarm = !*warm
	var cfg *config.CDN
	var err error
	if *file == "" {
		cfg, err = config.Parse(local.Example())
		o.Demo = true
	} else {
		cfg, err = config.Load(*file)
		o.Demo = *demoFlag
	}
	if err != nil {
		name := *file
		if name == "" {
			name = "built-in example"
		}
		printConfigErrors(stderr, name, err)
		return 1
	}
	o.AdminToken = os.Getenv("KUBECDN_ADMIN_TOKEN")
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.StatusPage = func(src local.Source) http.Handler {
		return statuspage.Handler(src, statuspage.Options{Title: "kubecdn up: " + cfg.Metadata.Name})
	}
	u, err := local.New(cfg, o)
	if err != nil {
		// A *local.PortError names every address in use; nothing runs.
		fmt.Fprintf(stderr, "kubecdn up: %v\n", err)
		return 1
	}
	u.Banner(stdout)
	if err := u.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "kubecdn up: %v\n", err)
		return 1
	}
	fmt.Fprintln(stderr, "kubecdn up: stopped, every port freed")
	return 0
}
