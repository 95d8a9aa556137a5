package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/gslb"
)

// runDNS runs the authoritative dns for the CDN file's zone until ctx ends.
// The file is reloaded on SIGHUP and when it changes on disk (see
// gslb.ReloadHelp); a bad new version is logged, counted and the running
// one kept.
func runDNS(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("dns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "kubecdn.yaml", "the CDN file")
	listen := fs.String("listen", gslb.DefaultListen, "DNS address (UDP and TCP)")
	admin := fs.String("admin", gslb.DefaultAdmin, `admin HTTP address (metrics, state, rtt feed); "off" disables`)
	region := fs.String("region", "", "the region this replica runs in (optional)")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin bearer token the edges' rtt reports must carry (else $KUBECDN_ADMIN_TOKEN; the edges' token)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn dns -f FILE [--listen ADDR] [--admin ADDR] [--region NAME] [--admin-token-file FILE]\n\nServes the CDN zone: each client gets the best healthy region.")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\n"+gslb.ReloadHelp)
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, *file, err)
		return 1
	}
	if *region != "" && !hasRegion(cfg, *region) {
		fmt.Fprintf(stderr, "kubecdn dns: --region %q is not a region of %s\n", *region, *file)
		return 2
	}
	token, err := adminToken(*tokenFile, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn dns: %v\n", err)
		return 2
	}
	if token == "" && *admin != "off" {
		log.Warn("no admin token (KUBECDN_ADMIN_TOKEN or --admin-token-file): the edges' rtt reports are refused")
	}
	srv, err := gslb.New(cfg, gslb.Options{Listen: *listen, Admin: *admin, Region: *region, AdminToken: token, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn dns: %v\n", err)
		return 1
	}
	attrs := []any{"zone", cfg.Spec.Zone, "udp", srv.UDPAddr().String(), "tcp", srv.TCPAddr().String(), "policy", cfg.Spec.Routing.Policy}
	if a := srv.AdminAddr(); a != nil {
		attrs = append(attrs, "admin", a.String())
	}
	log.Info("kubecdn dns serving", attrs...)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go watchFile(ctx, *file, hup, gslb.FileCheckInterval, func(why string) {
		next, err := config.Load(*file)
		if err != nil {
			var buf bytes.Buffer
			printConfigErrors(&buf, *file, err)
			srv.ReloadRefused()
			log.Error("reload refused, keeping the running file", "why", why, "errors", buf.String())
			return
		}
		if err := srv.Reload(next); err != nil {
			log.Error("reload failed, keeping the running file", "why", why, "err", err)
		}
	})
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "kubecdn dns: %v\n", err)
		return 1
	}
	return 0
}

func hasRegion(cfg *config.CDN, name string) bool {
	for _, r := range cfg.AllRegions() {
		if r.Name == name {
			return true
		}
	}
	return false
}

// watchFile calls reload on SIGHUP and when the file's content changes.
func watchFile(ctx context.Context, path string, hup <-chan os.Signal, every time.Duration, reload func(why string)) {
	last, _ := os.ReadFile(path)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			last, _ = os.ReadFile(path)
			reload("SIGHUP")
		case <-t.C:
			cur, err := os.ReadFile(path)
			if err != nil || bytes.Equal(cur, last) {
				continue
			}
			last = cur
			reload("file changed")
		}
	}
}

// adminToken is the dns's admin bearer token (the edges' own, which
// edge.LoadSettings reads the same way): the content of file (trimmed)
// when given, else $KUBECDN_ADMIN_TOKEN.
func adminToken(file string, getenv func(string) string) (string, error) {
	if file == "" {
		return strings.TrimSpace(getenv("KUBECDN_ADMIN_TOKEN")), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("admin-token-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
