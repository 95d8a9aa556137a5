package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/rtt"
)

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// edgeConfig loads the edge's settings from its command line (defaults,
// --config file, environment, flags; edge.LoadSettings) and validates them.
func edgeConfig(args []string, getenv func(string) string) (edge.Settings, edge.Config, error) {
	s, err := edge.LoadSettings(args, getenv)
	if err != nil {
		return s, edge.Config{}, err
	}
	cfg, err := s.Config()
	return s, cfg, err
}

func runEdge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := edge.NewFlagSet("kubecdn edge", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	set, cfg, err := edgeConfig(args, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn edge: invalid configuration:\n%s\n", indent(err.Error()))
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if cfg.AdminToken == "" {
		log.Warn("no admin token (KUBECDN_ADMIN_TOKEN or --admin-token-file): purge is refused, and so are rtt reports by the dns")
	}
	if len(cfg.HopKeys) == 0 && (len(cfg.Peers) > 0 || cfg.Parent != "") {
		log.Warn("peers or parent without a hop key (KUBECDN_HOP_KEY or --hop-key-file): edges treat each other as clients (forwarding fields replaced, Surrogate-Key and Cache-Tag not passed on)")
	}
	opts := edge.Options{Logger: log}
	if len(set.RTTReport) > 0 {
		// The dns takes reports with the same admin token the edges'
		// purge API takes (read at start: a new token needs a restart of
		// both, as the rendered Secret does). The last report goes out
		// before the process exits.
		col, stop := rtt.Feed(ctx, rtt.ReporterOptions{Region: set.Region, Targets: set.RTTReport, Token: cfg.AdminToken, Logger: log})
		defer stop()
		opts.Observer = col
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// One edge per process here (unlike `kubecdn up`), so the process's
		// memory is the edge's.
		debug.SetMemoryLimit(edge.SoftMemoryLimit(cfg))
	}
	srv, err := edge.New(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn edge: %v\n", err)
		return 1
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, next, err := edgeConfig(args, os.Getenv)
				if err == nil {
					err = srv.Reload(next)
				}
				if lerr := srv.ReopenAccessLog(); lerr != nil {
					log.Error("access log: reopening failed, writing on to the old file", "err", lerr)
				}
				if terr := srv.ReloadTLS(); terr != nil {
					log.Error("tls reload: keeping the previous certificate or keys where loading failed", "err", terr)
				}
				if err != nil {
					log.Error("reload refused, keeping the running configuration", "err", err)
				}
			}
		}
	}()
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "kubecdn edge: %v\n", err)
		return 1
	}
	return 0
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
