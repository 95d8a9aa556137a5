package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/rtt"
	"github.com/kubecdn/kubecdn/internal/units"
)

// edgeFile is the YAML form of the edge's configuration (--config). Sizes
// and durations are strings ("512MiB", "30s"); flags override the file.
type edgeFile struct {
	Listen          string   `json:"listen"`
	Admin           string   `json:"admin"`
	Origin          string   `json:"origin"`
	OriginHost      string   `json:"originHost"`
	Hostnames       []string `json:"hostnames"`
	Parent          string   `json:"parent"`
	Peers           []string `json:"peers"`
	Self            string   `json:"self"`
	Name            string   `json:"name"`
	Memory          string   `json:"memory"`
	CacheDir        string   `json:"cacheDir"`
	Disk            string   `json:"disk"`
	Slice           string   `json:"slice"`
	MaxKey          string   `json:"maxKey"`
	StaleIfError    string   `json:"staleIfError"`
	HeuristicMax    string   `json:"heuristicMax"`
	UpstreamTimeout string   `json:"upstreamTimeout"`
	StaleDeadline   string   `json:"staleDeadline"`
	AdminTokenFile  string   `json:"adminTokenFile"`
	HopKeyFile      string   `json:"hopKeyFile"`
	PassHeaders     []string `json:"passHeaders"`
	Region          string   `json:"region"`
	RTTReport       []string `json:"rttReport"`

	TLSListen        string         `json:"tlsListen"`
	TLSCerts         []edge.TLSCert `json:"tlsCerts"`
	TLSCertDirs      []string       `json:"tlsCertDirs"`
	TLSTicketKeyFile string         `json:"tlsTicketKeyFile"`
	ACMEStorage      string         `json:"acmeStorage"`
	ACMECA           string         `json:"acmeCA"`
	ACMECARoot       string         `json:"acmeCARoot"`
	ACMEEmail        string         `json:"acmeEmail"`
	HTTPSRedirect    []string       `json:"httpsRedirect"`
	HTTPSPort        int            `json:"httpsPort"`
	HSTSMaxAge       string         `json:"hstsMaxAge"`
	OriginCA         string         `json:"originCA"`
	IOUring          string         `json:"ioUring"`
	OriginInsecure   bool           `json:"originInsecure"`
	AccessLog        string         `json:"accessLog"`
	AccessLogSample  *float64       `json:"accessLogSample"`
}

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// edgeFlags are the raw flag values, converted by build.
type edgeFlags struct {
	pprof      bool
	region     string   // resolved by build
	rttTargets []string // resolved by build
	configFile string
	f          edgeFile
	hostnames  stringList
	peers      string
	rttReport  string

	tlsCertFiles, tlsKeyFiles, tlsCertDirs, httpsRedirect, passHeaders stringList
}

func newEdgeFlagSet(stderr io.Writer) (*flag.FlagSet, *edgeFlags) {
	ef := &edgeFlags{}
	fs := flag.NewFlagSet("kubecdn edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&ef.configFile, "config", "", "YAML file with the same fields as the flags (flags win)")
	fs.StringVar(&ef.f.Listen, "listen", "127.0.0.1:8080", "public HTTP address")
	fs.StringVar(&ef.f.Admin, "admin", "127.0.0.1:9090", "admin address (purge, metrics, health)")
	fs.StringVar(&ef.f.Origin, "origin", "", "origin base URL, e.g. http://127.0.0.1:9000 (required)")
	fs.StringVar(&ef.f.OriginHost, "origin-host", "", `Host header sent to the origin (default: the origin URL's host; "preserve": the client's)`)
	fs.Var(&ef.hostnames, "hostname", "a hostname to serve (repeatable); when given, other Hosts are refused")
	fs.StringVar(&ef.f.Parent, "parent", "", "URL of a shield edge asked before the origin")
	fs.StringVar(&ef.peers, "peers", "", "comma-separated URLs of the other edges of this region")
	fs.StringVar(&ef.f.Self, "self", "", "this edge's URL as its peers know it (default http://LISTEN)")
	fs.StringVar(&ef.f.Name, "name", "", "cache name in Cache-Status (default kubecdn)")
	fs.StringVar(&ef.f.Memory, "memory", "256MiB", "memory tier size")
	fs.StringVar(&ef.f.CacheDir, "cache-dir", "", "disk tier directory (none if empty)")
	fs.StringVar(&ef.f.Disk, "disk", "10GiB", "disk tier size")
	fs.StringVar(&ef.f.Slice, "slice", "4MiB", "slice size for large objects")
	fs.StringVar(&ef.f.MaxKey, "max-key", "8KiB", "longest cache key (scheme, host, path, query) stored; longer ones are served but not stored")
	fs.StringVar(&ef.f.StaleIfError, "stale-if-error", "24h", "serve stale content with an explicit lifetime and no Set-Cookie this long past expiry when the upstream fails (0 disables)")
	fs.StringVar(&ef.f.HeuristicMax, "heuristic-max", "24h", "cap on heuristic freshness")
	fs.StringVar(&ef.f.UpstreamTimeout, "upstream-timeout", "30s", "time allowed for an upstream's response header, and for each wait for body bytes")
	fs.StringVar(&ef.f.StaleDeadline, "stale-deadline", "2s", "how long a request with a stale copy waits for a slow upstream before the copy is served")
	fs.StringVar(&ef.f.AdminTokenFile, "admin-token-file", "", "file holding the admin bearer token (else $KUBECDN_ADMIN_TOKEN)")
	fs.StringVar(&ef.f.HopKeyFile, "hop-key-file", "", "file holding the region's hop keys, one per line, the first signs (else $KUBECDN_HOP_KEY): edges trust each other's forwarding fields only with one")
	fs.Var(&ef.passHeaders, "pass-header", "a request field the edge otherwise drops (X-Forwarded-Port, Forwarded, names with _, ...) to pass to the origin (repeatable)")
	fs.BoolVar(&ef.pprof, "pprof", false, "serve Go's CPU and heap profiles under /debug/pprof/ on the admin listener")
	fs.StringVar(&ef.f.Region, "region", "", "this edge's region, named in the round-trip times it reports")
	fs.StringVar(&ef.rttReport, "rtt-report", "", "comma-separated dns admin URLs to report client round-trip times to, e.g. http://127.0.0.1:9053/v1/rtt")
	fs.StringVar(&ef.f.TLSListen, "tls-listen", "", "public HTTPS address (HTTP/2 and HTTP/1.1), served next to --listen")
	fs.Var(&ef.tlsCertFiles, "tls-cert", "certificate PEM file (repeatable, paired in order with --tls-key; the first is the default)")
	fs.Var(&ef.tlsKeyFiles, "tls-key", "private key PEM file of the --tls-cert at the same position (repeatable)")
	fs.Var(&ef.tlsCertDirs, "tls-cert-dir", "directory of NAME.crt/NAME.key pairs or mounted Kubernetes TLS Secrets (tls.crt/tls.key) (repeatable)")
	fs.StringVar(&ef.f.TLSTicketKeyFile, "tls-ticket-key-file", "", "session ticket keys shared by a region's edges: 32-byte keys, raw or base64 per line; the first encrypts")
	fs.Var(&ef.httpsRedirect, "https-redirect", "hostname whose plain HTTP requests are redirected (308) to https (repeatable)")
	fs.IntVar(&ef.f.HTTPSPort, "https-port", 0, "port named in https redirects (default: the --tls-listen port, omitted when 443)")
	fs.StringVar(&ef.f.HSTSMaxAge, "hsts-max-age", "", "send Strict-Transport-Security with this max-age on HTTPS responses, e.g. 8760h (off if empty)")
	fs.StringVar(&ef.f.ACMEStorage, "acme-storage", "", "get certificates from an ACME CA for the hostnames no --tls-cert covers, kept in this directory (share it across a region's edges)")
	fs.StringVar(&ef.f.ACMECA, "acme-ca", "", "ACME directory URL (default: Let's Encrypt)")
	fs.StringVar(&ef.f.ACMECARoot, "acme-ca-root", "", "PEM file trusted for the ACME CA's own HTTPS (a private CA)")
	fs.StringVar(&ef.f.ACMEEmail, "acme-email", "", "contact address of the ACME account")
	fs.StringVar(&ef.f.OriginCA, "origin-ca", "", "PEM bundle of CAs trusted (besides the system's) for https origins, peers and parent")
	fs.StringVar(&ef.f.IOUring, "io-uring", "", "serve plain HTTP from an io_uring event loop: auto (when the kernel allows it) or off (default auto)")
	fs.BoolVar(&ef.f.OriginInsecure, "origin-insecure", false, "do NOT verify upstream TLS certificates (explicit opt-out, logged)")
	fs.StringVar(&ef.f.AccessLog, "access-log", "-", `access log, one JSON line per request: "-" (stdout), a file (reopened on SIGHUP) or "off"`)
	ef.f.AccessLogSample = fs.Float64("access-log-sample", 1, "share of requests in the access log, 0 to 1 (responses of 500 or more are always logged)")
	return fs, ef
}

// build reads the config file (if any), applies the flags that were set on
// top, and converts to edge.Config. getenv reads the environment.
func (ef *edgeFlags) build(fs *flag.FlagSet, getenv func(string) string) (edge.Config, error) {
	f := ef.f
	if ef.configFile != "" {
		raw, err := os.ReadFile(ef.configFile)
		if err != nil {
			return edge.Config{}, fmt.Errorf("config: %w", err)
		}
		var ff edgeFile
		if err := yaml.UnmarshalStrict(raw, &ff); err != nil {
			return edge.Config{}, fmt.Errorf("config %s: %w", ef.configFile, err)
		}
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		pick := func(name string, flagVal, fileVal string) string {
			if set[name] || fileVal == "" {
				return flagVal
			}
			return fileVal
		}
		f.Listen = pick("listen", f.Listen, ff.Listen)
		f.Admin = pick("admin", f.Admin, ff.Admin)
		f.Origin = pick("origin", f.Origin, ff.Origin)
		f.OriginHost = pick("origin-host", f.OriginHost, ff.OriginHost)
		f.Parent = pick("parent", f.Parent, ff.Parent)
		f.Self = pick("self", f.Self, ff.Self)
		f.Name = pick("name", f.Name, ff.Name)
		f.Memory = pick("memory", f.Memory, ff.Memory)
		f.CacheDir = pick("cache-dir", f.CacheDir, ff.CacheDir)
		f.Disk = pick("disk", f.Disk, ff.Disk)
		f.Slice = pick("slice", f.Slice, ff.Slice)
		f.MaxKey = pick("max-key", f.MaxKey, ff.MaxKey)
		f.StaleIfError = pick("stale-if-error", f.StaleIfError, ff.StaleIfError)
		f.HeuristicMax = pick("heuristic-max", f.HeuristicMax, ff.HeuristicMax)
		f.UpstreamTimeout = pick("upstream-timeout", f.UpstreamTimeout, ff.UpstreamTimeout)
		f.StaleDeadline = pick("stale-deadline", f.StaleDeadline, ff.StaleDeadline)
		f.AdminTokenFile = pick("admin-token-file", f.AdminTokenFile, ff.AdminTokenFile)
		f.HopKeyFile = pick("hop-key-file", f.HopKeyFile, ff.HopKeyFile)
		if !set["pass-header"] {
			f.PassHeaders = ff.PassHeaders
		}
		if !set["hostname"] {
			f.Hostnames = ff.Hostnames
		}
		if !set["peers"] {
			f.Peers = ff.Peers
		}
		f.Region = pick("region", f.Region, ff.Region)
		f.TLSListen = pick("tls-listen", f.TLSListen, ff.TLSListen)
		f.TLSTicketKeyFile = pick("tls-ticket-key-file", f.TLSTicketKeyFile, ff.TLSTicketKeyFile)
		f.HSTSMaxAge = pick("hsts-max-age", f.HSTSMaxAge, ff.HSTSMaxAge)
		f.OriginCA = pick("origin-ca", f.OriginCA, ff.OriginCA)
		f.IOUring = pick("io-uring", f.IOUring, ff.IOUring)
		f.ACMEStorage = pick("acme-storage", f.ACMEStorage, ff.ACMEStorage)
		f.ACMECA = pick("acme-ca", f.ACMECA, ff.ACMECA)
		f.ACMECARoot = pick("acme-ca-root", f.ACMECARoot, ff.ACMECARoot)
		f.ACMEEmail = pick("acme-email", f.ACMEEmail, ff.ACMEEmail)
		if !set["https-port"] {
			f.HTTPSPort = ff.HTTPSPort
		}
		if !set["origin-insecure"] {
			f.OriginInsecure = ff.OriginInsecure
		}
		if !set["tls-cert"] && !set["tls-key"] {
			f.TLSCerts = ff.TLSCerts
		}
		if !set["tls-cert-dir"] {
			f.TLSCertDirs = ff.TLSCertDirs
		}
		if !set["https-redirect"] {
			f.HTTPSRedirect = ff.HTTPSRedirect
		}
		if !set["rtt-report"] {
			f.RTTReport = ff.RTTReport
		}
		f.AccessLog = pick("access-log", f.AccessLog, ff.AccessLog)
		if !set["access-log-sample"] && ff.AccessLogSample != nil {
			f.AccessLogSample = ff.AccessLogSample
		}
	}
	if len(ef.hostnames) > 0 {
		f.Hostnames = ef.hostnames
	}
	if ef.rttReport != "" {
		f.RTTReport = splitList(ef.rttReport)
	}
	ef.region, ef.rttTargets = f.Region, f.RTTReport
	var errs []error
	if len(ef.tlsCertFiles) != len(ef.tlsKeyFiles) {
		errs = append(errs, fmt.Errorf("tls-cert/tls-key: %d certificates but %d keys; give them in pairs", len(ef.tlsCertFiles), len(ef.tlsKeyFiles)))
	} else if len(ef.tlsCertFiles) > 0 {
		f.TLSCerts = nil
		for i := range ef.tlsCertFiles {
			f.TLSCerts = append(f.TLSCerts, edge.TLSCert{Cert: ef.tlsCertFiles[i], Key: ef.tlsKeyFiles[i]})
		}
	}
	if len(ef.tlsCertDirs) > 0 {
		f.TLSCertDirs = ef.tlsCertDirs
	}
	if len(ef.httpsRedirect) > 0 {
		f.HTTPSRedirect = ef.httpsRedirect
	}
	if len(ef.passHeaders) > 0 {
		f.PassHeaders = ef.passHeaders
	}
	if ef.peers != "" {
		f.Peers = splitList(ef.peers)
	}
	cfg := edge.Config{
		Pprof:  ef.pprof,
		Listen: f.Listen, Admin: f.Admin, Origin: f.Origin, OriginHost: f.OriginHost,
		Hostnames: f.Hostnames, Parent: f.Parent, Peers: f.Peers, Self: f.Self, Name: f.Name,
		CacheDir:  f.CacheDir,
		TLSListen: f.TLSListen, TLSCerts: f.TLSCerts, TLSCertDirs: f.TLSCertDirs, TLSTicketKeyFile: f.TLSTicketKeyFile,
		HTTPSRedirect: f.HTTPSRedirect, HTTPSPort: f.HTTPSPort, OriginCA: f.OriginCA, OriginInsecure: f.OriginInsecure,
		IOUring: f.IOUring, PassHeaders: f.PassHeaders,
		AccessLog: f.AccessLog, AccessLogSample: *f.AccessLogSample, Region: f.Region,
		ACMEStorage: f.ACMEStorage, ACMECA: f.ACMECA, ACMECARoot: f.ACMECARoot, ACMEEmail: f.ACMEEmail,
	}
	size := func(field, v string, dst *int64) {
		if v == "" {
			return
		}
		n, err := units.ParseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
		*dst = n
	}
	dur := func(field, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid duration %q", field, v))
		}
		*dst = d
	}
	size("memory", f.Memory, &cfg.MemoryBytes)
	size("disk", f.Disk, &cfg.DiskBytes)
	size("slice", f.Slice, &cfg.SliceBytes)
	var maxKey int64
	size("max-key", f.MaxKey, &maxKey)
	cfg.MaxKeyBytes = int(maxKey)
	if cfg.AccessLogSample == 0 {
		cfg.AccessLogSample = -1 // edge.Config's zero is every request; 0 here means errors only
	}
	if cfg.AccessLogSample < 0 && *f.AccessLogSample != 0 {
		errs = append(errs, fmt.Errorf("access-log-sample: %v: want a share from 0 to 1", *f.AccessLogSample))
	}
	dur("stale-if-error", f.StaleIfError, &cfg.StaleIfError)
	if f.StaleIfError == "0" || cfg.StaleIfError == 0 && f.StaleIfError != "" {
		cfg.StaleIfError = -1
	}
	dur("heuristic-max", f.HeuristicMax, &cfg.HeuristicMax)
	dur("upstream-timeout", f.UpstreamTimeout, &cfg.UpstreamTimeout)
	dur("stale-deadline", f.StaleDeadline, &cfg.StaleDeadline)
	dur("hsts-max-age", f.HSTSMaxAge, &cfg.HSTSMaxAge)
	tok, err := adminToken(f.AdminTokenFile, getenv)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.AdminToken = tok
	hopKeys := getenv("KUBECDN_HOP_KEY")
	if f.HopKeyFile != "" {
		b, err := os.ReadFile(f.HopKeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("hop-key-file: %w", err))
		}
		hopKeys = string(b)
	}
	cfg.HopKeys = hopKeyLines(hopKeys)
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func runEdge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, ef := newEdgeFlagSet(stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := ef.build(fs, os.Getenv)
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
	if len(ef.rttTargets) > 0 {
		col := rtt.NewCollector(rtt.CollectorOptions{})
		opts.ObserveConn, opts.ObserveFD = col.ObserveConn, col.ObserveFD
		// The dns takes reports with the same admin token the edges'
		// purge API takes (read at start: a new token needs a restart of
		// both, as the rendered Secret does).
		rep := rtt.NewReporter(col, rtt.ReporterOptions{Region: ef.region, Targets: ef.rttTargets, Token: cfg.AdminToken, Logger: log})
		rctx, rcancel := context.WithCancel(ctx)
		reported := make(chan struct{})
		go func() {
			defer close(reported)
			_ = rep.Run(rctx)
		}()
		// The last report (at most a second once rctx ends) goes out
		// before the process exits.
		defer func() { rcancel(); <-reported }()
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
				next, err := ef.build(fs, os.Getenv)
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

// adminToken is the admin bearer token of the edge and the dns: the
// content of file (trimmed) when given, else $KUBECDN_ADMIN_TOKEN.
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

// hopKeyLines are the keys of a hop key file: one per non-empty line,
// spaces around it ignored.
func hopKeyLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
