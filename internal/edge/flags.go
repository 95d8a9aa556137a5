package edge

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
)

// RegisterFlags registers a flag for each setting on fs, writing into s;
// s's values at the time are the defaults -h shows. A repeatable or list
// flag replaces the list s held (a file's) on its first use, then adds.
func (s *Settings) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Listen, "listen", s.Listen, "public HTTP address")
	fs.StringVar(&s.Admin, "admin", s.Admin, "admin address (purge, metrics, health)")
	fs.StringVar(&s.Origin, "origin", s.Origin, "origin base URL, e.g. http://127.0.0.1:9000 (required)")
	fs.StringVar(&s.OriginHost, "origin-host", s.OriginHost, `Host header sent to the origin (default: the origin URL's host; "preserve": the client's)`)
	fs.Var(repeated(&s.Hostnames), "hostname", "a hostname to serve (repeatable); when given, other Hosts are refused")
	fs.StringVar(&s.Parent, "parent", s.Parent, "URL of a shield edge asked before the origin")
	fs.Var(commaList(&s.Peers), "peers", "comma-separated `URLs` of the other edges of this region")
	fs.StringVar(&s.Self, "self", s.Self, "this edge's URL as its peers know it (default http://LISTEN)")
	fs.StringVar(&s.Name, "name", s.Name, "cache name in Cache-Status")
	fs.Var(&s.Memory, "memory", "memory tier `size`")
	fs.StringVar(&s.CacheDir, "cache-dir", s.CacheDir, "disk tier directory (none if empty)")
	fs.Var(&s.Disk, "disk", "disk tier `size`")
	fs.Var(&s.Slice, "slice", "slice `size` for large objects")
	fs.Var(&s.MaxKey, "max-key", "`size` of the longest cache key (scheme, host, path, query) stored; longer ones are served but not stored")
	fs.Var(&s.StaleIfError, "stale-if-error", "serve stale content with an explicit lifetime and no Set-Cookie this long past expiry when the upstream fails (a `duration`; 0 disables)")
	fs.Var(&s.HeuristicMax, "heuristic-max", "cap on heuristic freshness (a `duration`)")
	fs.Var(&s.UpstreamTimeout, "upstream-timeout", "`time` allowed for an upstream's response header, and for each wait for body bytes")
	fs.Var(&s.StaleDeadline, "stale-deadline", "how long (a `duration`) a request with a stale copy waits for a slow upstream before the copy is served (negative: never early)")
	fs.StringVar(&s.AdminTokenFile, "admin-token-file", s.AdminTokenFile, "file holding the admin bearer token (else $KUBECDN_ADMIN_TOKEN)")
	fs.StringVar(&s.HopKeyFile, "hop-key-file", s.HopKeyFile, "file holding the region's hop keys, one per line, the first signs (else $KUBECDN_HOP_KEY): edges trust each other's forwarding fields only with one")
	fs.Var(repeated(&s.PassHeaders), "pass-header", "a request field the edge otherwise drops (X-Forwarded-Port, Forwarded, names with _, ...) to pass to the origin (repeatable)")
	fs.BoolVar(&s.Pprof, "pprof", s.Pprof, "serve Go's CPU and heap profiles under /debug/pprof/ on the admin listener")
	fs.StringVar(&s.Region, "region", s.Region, "this edge's region, named in the round-trip times it reports")
	fs.Var(commaList(&s.RTTReport), "rtt-report", "comma-separated dns admin `URLs` to report client round-trip times to, e.g. http://127.0.0.1:9053/v1/rtt")
	fs.Func("demand-region", "a region of the CDN file, `NAME[=LAT,LON]`, for the demand counters (repeatable, in the file's order)", listOf(&s.DemandRegions, parseDemandRegion))
	fs.Func("geo-network", "a client network pinned to a place, `CIDR=LAT,LON`, for the demand counters (repeatable)", listOf(&s.Geo.Networks, parseGeoNetwork))
	fs.StringVar(&s.Geo.Database, "geo-database", s.Geo.Database, "MaxMind-format database placing clients for the demand counters")
	fs.BoolVar(&s.Video.Off, "video-off", s.Video.Off, "turn the video rules off: playlists and segments are cached as their headers say")
	fs.Float64Var(&s.Video.PlaylistFraction, "video-playlist-fraction", s.Video.PlaylistFraction, "share of a live playlist's target duration it is cached for, when the origin says less")
	fs.Func("video-segment", "how long (a `duration`) a media segment is cached when the origin says less (default "+s.Video.Segment.D().String()+")", durationInto(&s.Video.Segment))
	fs.Func("video-missing-segment", "the longest (a `duration`) a 404 for a segment or playlist is cached (default "+s.Video.MissingSegment.D().String()+")", durationInto(&s.Video.MissingSegment))
	fs.IntVar(&s.Video.BlockingReloads, "video-blocking-reloads", s.Video.BlockingReloads, "distinct LL-HLS blocking playlist reloads waiting at the origin at once; more get 503")
	fs.StringVar(&s.TLSListen, "tls-listen", s.TLSListen, "public HTTPS address (HTTP/2 and HTTP/1.1), served next to --listen")
	pairs := &certPairs{s: s}
	fs.Func("tls-cert", "certificate PEM file (repeatable, paired in order with --tls-key; the first is the default)", pairs.cert)
	fs.Func("tls-key", "private key PEM file of the --tls-cert at the same position (repeatable)", pairs.key)
	fs.Var(repeated(&s.TLSCertDirs), "tls-cert-dir", "directory of NAME.crt/NAME.key pairs or mounted Kubernetes TLS Secrets (tls.crt/tls.key) (repeatable)")
	fs.StringVar(&s.TLSTicketKeyFile, "tls-ticket-key-file", s.TLSTicketKeyFile, "session ticket keys shared by a region's edges: 32-byte keys, raw or base64 per line; the first encrypts")
	fs.Var(repeated(&s.HTTPSRedirect), "https-redirect", "hostname whose plain HTTP requests are redirected (308) to https (repeatable)")
	fs.IntVar(&s.HTTPSPort, "https-port", s.HTTPSPort, "port named in https redirects (default: the --tls-listen port, omitted when 443)")
	fs.Var(&s.HSTSMaxAge, "hsts-max-age", "send Strict-Transport-Security with this max-age on HTTPS responses, a `duration`: 31536000 (seconds), 365d or 8760h (off if 0)")
	fs.BoolVar(&s.HTTP3, "http3", s.HTTP3, "serve HTTP/3 (QUIC) on the --tls-listen address over UDP, advertised with Alt-Svc (only with TLS)")
	fs.IntVar(&s.HTTP3RetryAbove, "http3-retry-above", s.HTTP3RetryAbove, "new QUIC handshakes per second above which clients must validate their address (a Retry round trip); negative: always")
	fs.StringVar(&s.ACMEStorage, "acme-storage", s.ACMEStorage, "get certificates from an ACME CA for the hostnames no --tls-cert covers, kept in this directory (share it across a region's edges)")
	fs.StringVar(&s.ACMECA, "acme-ca", s.ACMECA, "ACME directory URL (default: Let's Encrypt)")
	fs.StringVar(&s.ACMECARoot, "acme-ca-root", s.ACMECARoot, "PEM file trusted for the ACME CA's own HTTPS (a private CA)")
	fs.StringVar(&s.ACMEEmail, "acme-email", s.ACMEEmail, "contact address of the ACME account")
	fs.StringVar(&s.OriginCA, "origin-ca", s.OriginCA, "PEM bundle of CAs trusted (besides the system's) for https origins, peers and parent")
	fs.StringVar(&s.IOUring, "io-uring", s.IOUring, "serve plain HTTP from an io_uring event loop: auto (when the kernel allows it) or off")
	fs.BoolVar(&s.OriginInsecure, "origin-insecure", s.OriginInsecure, "do NOT verify upstream TLS certificates (explicit opt-out, logged)")
	fs.StringVar(&s.AccessLog, "access-log", s.AccessLog, `access log, one JSON line per request: "-" (stdout), a file (reopened on SIGHUP) or "off"`)
	fs.Float64Var(&s.AccessLogSample, "access-log-sample", s.AccessLogSample, "share of requests in the access log, 0 to 1 (responses of 500 or more are always logged)")
}

// NewFlagSet returns the command line of `kubecdn edge`: --config and every
// setting's flag, with the defaults. Parsing it checks a command line;
// LoadSettings reads the settings from it.
func NewFlagSet(name string, out io.Writer) *flag.FlagSet {
	s := DefaultSettings()
	var path string
	return newFlagSet(name, out, &s, &path)
}

func newFlagSet(name string, out io.Writer, s *Settings, path *string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(path, "config", "", "YAML file with the same fields as the flags (flags win)")
	s.RegisterFlags(fs)
	return fs
}

// LoadSettings reads the edge's settings from its command line (as
// NewFlagSet parses it), in one call and this order, each overriding the
// one before: the defaults, the file named by --config, the environment
// (the admin token and hop keys, from $KUBECDN_ADMIN_TOKEN and
// $KUBECDN_HOP_KEY unless adminTokenFile or hopKeyFile, in the file or a
// flag, names a file to read them from), and the flags given explicitly.
func LoadSettings(args []string, getenv func(string) string) (Settings, error) {
	s := DefaultSettings()
	var path string
	if err := newFlagSet("", io.Discard, &s, &path).Parse(args); err != nil {
		return Settings{}, err
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return Settings{}, fmt.Errorf("config: %w", err)
		}
		if s, err = ParseSettings(raw); err != nil {
			return Settings{}, fmt.Errorf("config %s:\n%w", path, err)
		}
		// The flags again, over the file: those given win.
		if err := newFlagSet("", io.Discard, &s, &path).Parse(args); err != nil {
			return Settings{}, err
		}
	}
	var errs []error
	tok, err := secret(s.AdminTokenFile, "KUBECDN_ADMIN_TOKEN", getenv)
	if err != nil {
		errs = append(errs, fmt.Errorf("adminTokenFile: %w", err))
	}
	s.AdminToken = strings.TrimSpace(tok)
	keys, err := secret(s.HopKeyFile, "KUBECDN_HOP_KEY", getenv)
	if err != nil {
		errs = append(errs, fmt.Errorf("hopKeyFile: %w", err))
	}
	s.HopKeys = nonEmptyLines(keys)
	return s, errors.Join(errs...)
}

// secret is the content of file when named, else the environment's env.
func secret(file, env string, getenv func(string) string) (string, error) {
	if file == "" {
		return getenv(env), nil
	}
	b, err := os.ReadFile(file)
	return string(b), err
}

// nonEmptyLines are v's lines, trimmed, without the empty ones.
func nonEmptyLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// listFlag is a list setting's flag: its first Set replaces the list (a
// file's), later ones add; split turns one argument into items.
type listFlag struct {
	dst   *[]string
	fresh bool
	split func(string) []string
}

func repeated(dst *[]string) *listFlag {
	return &listFlag{dst: dst, fresh: true, split: func(v string) []string { return []string{v} }}
}

func commaList(dst *[]string) *listFlag {
	return &listFlag{dst: dst, fresh: true, split: func(v string) []string {
		var out []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}}
}

func (l *listFlag) String() string {
	if l == nil || l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if l.fresh {
		*l.dst, l.fresh = nil, false
	}
	*l.dst = append(*l.dst, l.split(v)...)
	return nil
}

// certPairs pairs --tls-cert and --tls-key in order of appearance of each:
// the nth certificate with the nth key. Their first use replaces the
// file's tlsCerts; an unpaired one is left half empty, which Validate
// refuses naming it.
type certPairs struct {
	s       *Settings
	started bool
	nc, nk  int
}

func (p *certPairs) cert(v string) error {
	p.start()
	p.at(p.nc).Cert = v
	p.nc++
	return nil
}

func (p *certPairs) key(v string) error {
	p.start()
	p.at(p.nk).Key = v
	p.nk++
	return nil
}

func (p *certPairs) start() {
	if !p.started {
		p.s.TLSCerts, p.started = nil, true
	}
}

func (p *certPairs) at(i int) *TLSCert {
	for len(p.s.TLSCerts) <= i {
		p.s.TLSCerts = append(p.s.TLSCerts, TLSCert{})
	}
	return &p.s.TLSCerts[i]
}

// listOf is the flag function of a list setting whose items parse parses:
// its first use replaces the list (a file's), later ones add.
func listOf[T any](dst *[]T, parse func(string) (T, error)) func(string) error {
	fresh := true
	return func(v string) error {
		x, err := parse(v)
		if err != nil {
			return err
		}
		if fresh {
			*dst, fresh = nil, false
		}
		*dst = append(*dst, x)
		return nil
	}
}

// parseDemandRegion reads NAME or NAME=LAT,LON.
func parseDemandRegion(v string) (DemandRegion, error) {
	name, at, ok := strings.Cut(v, "=")
	r := DemandRegion{Name: strings.TrimSpace(name)}
	if r.Name == "" {
		return r, fmt.Errorf("%q: want NAME or NAME=LAT,LON", v)
	}
	if ok {
		loc, err := parseLatLon(at)
		if err != nil {
			return r, fmt.Errorf("%q: %w", v, err)
		}
		r.Location = &loc
	}
	return r, nil
}

// parseGeoNetwork reads CIDR=LAT,LON.
func parseGeoNetwork(v string) (config.GeoNetwork, error) {
	cidr, at, ok := strings.Cut(v, "=")
	if !ok {
		return config.GeoNetwork{}, fmt.Errorf("%q: want CIDR=LAT,LON", v)
	}
	loc, err := parseLatLon(at)
	if err != nil {
		return config.GeoNetwork{}, fmt.Errorf("%q: %w", v, err)
	}
	return config.GeoNetwork{CIDR: strings.TrimSpace(cidr), Location: &loc}, nil
}

func parseLatLon(v string) (config.Location, error) {
	lat, lon, ok := strings.Cut(v, ",")
	la, err1 := strconv.ParseFloat(strings.TrimSpace(lat), 64)
	lo, err2 := strconv.ParseFloat(strings.TrimSpace(lon), 64)
	if !ok || err1 != nil || err2 != nil || la < -90 || la > 90 || lo < -180 || lo > 180 {
		return config.Location{}, fmt.Errorf("%q is not LAT,LON in degrees", v)
	}
	return config.Location{Lat: la, Lon: lo}, nil
}

// durationInto sets a config.Duration from a flag's value.
func durationInto(d *config.Duration) func(string) error {
	return func(v string) error {
		x, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q: want a duration such as 1s or 24h", v)
		}
		*d = config.Duration(x)
		return nil
	}
}
