package edge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Config is the edge's validated configuration as a Server runs it. The zero
// value of every optional field means its documented default (the values
// of DefaultSettings). Settings is its written form: the file, the flags,
// what render and up build.
type Config struct {
	// Listen is the public HTTP address. Required.
	Listen string
	// Admin is the admin address (purge, metrics, health). If empty, defaults
	// to 127.0.0.1:9090.
	Admin string
	// Origin is the origin's base URL (http or https). Required.
	Origin string
	// OriginHost is the Host header sent to the origin. If empty, defaults to
	// the host of Origin; "preserve" sends the client's Host.
	OriginHost string
	// Hostnames, when not empty, are the only Hosts served; others get 421.
	Hostnames []string
	// Parent is a shield edge asked before the origin.
	Parent string
	// Peers are the edges of this region (may include this edge's own URL,
	// see Self). A miss is first asked of the peer that owns the key.
	Peers []string
	// Self is this edge's URL as its peers know it. If empty, defaults to
	// "http://" + Listen.
	Self string
	// Name identifies this edge in CDN-Loop and Cache-Status. If empty,
	// defaults to "kubecdn".
	Name string
	// MemoryBytes bounds the memory tier. If zero, defaults to 256 MiB.
	MemoryBytes int64
	// CacheDir is the disk tier's directory; empty means no disk tier.
	CacheDir string
	// DiskBytes bounds the disk tier. If zero, defaults to 10 GiB.
	DiskBytes int64
	// SliceBytes is the size of the slices large objects are fetched and
	// stored in. If zero, defaults to 4 MiB.
	SliceBytes int64
	// StaleIfError is how long past expiry cached content is served when the
	// upstream fails, even without a stale-if-error directive, if it has an
	// explicit lifetime and no Set-Cookie (httpcache.StaleIfError). If
	// zero, defaults to 24h; negative disables it.
	StaleIfError time.Duration
	// HeuristicMax caps heuristic freshness. If zero, defaults to 24h.
	HeuristicMax time.Duration
	// UpstreamTimeout bounds the wait for an upstream's response header. If
	// zero, defaults to 30s.
	UpstreamTimeout time.Duration
	// StaleDeadline is how long a request with a stale copy to fall back on
	// waits for a slow upstream before the copy is served (the fetch goes on
	// and refreshes the cache), and how long a range waits for a slice the
	// cache lacks before it is answered 504. If zero, defaults to 2s;
	// negative turns the early stale copy off (a missing slice then waits
	// UpstreamTimeout).
	StaleDeadline time.Duration
	// AdminToken is the bearer token of the admin purge API. If empty, purge
	// is refused (401) for everyone.
	AdminToken string
	// Pprof serves Go's profiles under /debug/pprof/ on the admin listener.
	Pprof bool
	// MaxHeaderBytes bounds a request's header. If zero, defaults to 32 KiB.
	MaxHeaderBytes int
	// MaxKeyBytes bounds the primary cache key (scheme, host, path and
	// query). A request with a longer key is served from the upstream and
	// never stored (counted in kubecdn_edge_long_keys_total), so long unique
	// URLs cannot fill the memory with keys. If zero, defaults to 8 KiB.
	MaxKeyBytes int

	// TLSListen, when set, is the HTTPS address served next to Listen.
	TLSListen string
	// TLSCerts are certificate and key PEM files, chosen by SNI; the first
	// is the default. Required with TLSListen unless TLSCertDirs is set.
	TLSCerts []TLSCert
	// TLSCertDirs hold NAME.crt/NAME.key pairs (Kubernetes TLS Secrets:
	// tls.crt/tls.key, directly or one directory down).
	TLSCertDirs []string
	// TLSTicketKeyFile holds session ticket keys, 32 bytes each (raw, or one
	// base64 key per line); the first encrypts, all decrypt. Edges of a
	// region share it so a client resumes on any of them. If empty, keys
	// are random per edge and rotated by Go.
	TLSTicketKeyFile string
	// ACMEStorage, when set, gets certificates from an ACME CA for the
	// hostnames no certificate file covers, kept in this directory (shared
	// by the edges of a region, so the region asks the CA once).
	ACMEStorage string
	// ACMECA is the ACME directory URL; empty means Let's Encrypt.
	ACMECA string
	// ACMECARoot is a PEM file trusted for the CA's own HTTPS endpoint.
	ACMECARoot string
	// ACMEEmail is the ACME account's contact address.
	ACMEEmail string
	// HTTPSRedirect are hostnames whose plain HTTP requests get a 308 to
	// https.
	HTTPSRedirect []string
	// HTTPSPort is the port named in those redirects. If zero, the port of
	// TLSListen, left out when it is 443.
	HTTPSPort int
	// HSTSMaxAge, when positive, sends Strict-Transport-Security with this
	// max-age on HTTPS responses.
	HSTSMaxAge time.Duration
	// HTTP3Off turns HTTP/3 off. Otherwise an edge with TLSListen serves
	// HTTP/3 (QUIC) on the same address over UDP, with the same
	// certificates, and advertises it (Alt-Svc) once the UDP socket is
	// bound; see h3.go.
	HTTP3Off bool
	// HTTP3RetryAbove is the rate of new QUIC handshakes per second above
	// which clients must prove their address first (a Retry round trip),
	// so a flood from spoofed addresses cannot be amplified. If zero,
	// defaults to 500; negative: every handshake is validated.
	HTTP3RetryAbove int
	// OriginCA is a PEM bundle of CAs trusted, besides the system's, for
	// https origins, peers and parents.
	OriginCA string
	// OriginInsecure turns off certificate verification upstream (logged
	// as a warning). Never the default.
	OriginInsecure bool
	// HopKeys are the region's shared secrets with which edges sign their
	// requests to each other (peers and parent; see hop.go). The first
	// signs, all verify, so a key is rotated by adding the new one second,
	// then first, then removing the old. Each is at least 16 bytes. Without
	// one, no request is trusted as another edge's: peers and parents still
	// answer, but treat each other as clients.
	HopKeys []string
	// PassHeaders are request fields a client may send to the origin that
	// the edge otherwise drops (Forwarded, X-Forwarded-*, X-Original-URL,
	// X-HTTP-Method-Override, names with "_", ...; see
	// sanitizeClientHeader), by name. The edge still sets its own
	// X-Forwarded-For, -Proto and -Host.
	PassHeaders []string
	// IOUring says how the plain-HTTP listener is served on Linux: "auto"
	// (or empty) with an io_uring event loop when the kernel allows it,
	// "off" with a goroutine per connection. A restart applies it.
	IOUring string

	// AccessLog is where the access log goes: "-" for standard output, a
	// file path (reopened by ReopenAccessLog), or "off". If empty, off
	// (`kubecdn edge` defaults to "-"). A restart applies a change.
	AccessLog string
	// AccessLogSample is the share of requests logged, up to 1; responses
	// of 500 or more are always logged. If zero, defaults to 1 (every
	// request); negative logs only those errors.
	AccessLogSample float64
	// Region names this edge's region in the access log.
	Region string

	// DemandRegions are the CDN file's regions, in its order, with their
	// locations; the demand counters (demand.go) label each client with
	// the nearest, placed by Geo (the file's spec.routing.geo: networks,
	// and a MaxMind-format database by path). Without them every client
	// is counted as "unknown". A restart applies a change.
	DemandRegions []DemandRegion
	Geo           config.Geo

	// Video are the rules for HLS and DASH (config.Video, the CDN file's
	// spec.cache.video); zero fields take config.VideoDefaults.
	Video config.Video
}

// DefaultMaxKeyBytes is the default of Config.MaxKeyBytes: far above any
// URL a browser sends (they stop near 2 KiB to 8 KiB), far below what lets a
// client weigh down the cache with keys.
const DefaultMaxKeyBytes = 8 << 10

// The range of Config.MaxKeyBytes: a storage key is the primary key plus a
// prefix and, for a variant, the request's values of the Vary fields, and
// the store refuses keys over store.MaxKeyLen.
const (
	minMaxKeyBytes = 1 << 10
	maxMaxKeyBytes = 16 << 10
)

// IOUring values.
const (
	IOUringAuto = "auto"
	IOUringOff  = "off"
)

// TLSCert is a certificate file (PEM, leaf first) and its key file.
type TLSCert struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	d := DefaultSettings()
	c.Video = c.Video.WithDefaults()
	if c.Admin == "" {
		c.Admin = d.Admin
	}
	if c.Self == "" && c.Listen != "" {
		c.Self = "http://" + c.Listen
	}
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = int64(d.Memory)
	}
	if c.DiskBytes == 0 {
		c.DiskBytes = int64(d.Disk)
	}
	if c.SliceBytes == 0 {
		c.SliceBytes = int64(d.Slice)
	}
	if c.StaleIfError == 0 {
		c.StaleIfError = d.StaleIfError.Std()
	}
	if c.HeuristicMax == 0 {
		c.HeuristicMax = d.HeuristicMax.Std()
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = d.UpstreamTimeout.Std()
	}
	if c.StaleDeadline == 0 {
		c.StaleDeadline = d.StaleDeadline.Std()
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 32 << 10
	}
	if c.MaxKeyBytes == 0 {
		c.MaxKeyBytes = int(d.MaxKey)
	}
	for i, h := range c.Hostnames {
		c.Hostnames[i] = strings.ToLower(strings.TrimSuffix(h, "."))
	}
	for i, h := range c.HTTPSRedirect {
		c.HTTPSRedirect[i] = strings.ToLower(strings.TrimSuffix(h, "."))
	}
	return c
}

// Validate reports every problem of c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, e := range c.Video.Validate("video") {
		errs = append(errs, e)
	}
	checkAddr := func(field, v string, required bool) {
		if v == "" {
			if required {
				bad(field, "required")
			}
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad(field, "%q is not host:port", v)
		}
	}
	checkURL := func(field, v string) {
		u, err := url.Parse(v)
		switch {
		case err != nil:
			bad(field, "%q is not a URL: %v", v, err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad(field, "%q: scheme must be http or https", v)
		case u.Host == "":
			bad(field, "%q: no host", v)
		}
	}
	checkAddr("listen", c.Listen, true)
	checkAddr("admin", c.Admin, false)
	if c.Admin != "" && c.Admin == c.Listen {
		bad("admin", "must differ from listen (%s)", c.Listen)
	}
	if c.Origin == "" {
		bad("origin", "required")
	} else {
		checkURL("origin", c.Origin)
	}
	if c.Parent != "" {
		checkURL("parent", c.Parent)
	}
	for i, p := range c.Peers {
		checkURL(fmt.Sprintf("peers[%d]", i), p)
	}
	if c.Self != "" {
		checkURL("self", c.Self)
	}
	for i, h := range c.Hostnames {
		if h == "" || strings.ContainsAny(h, "/ :@") {
			bad(fmt.Sprintf("hostnames[%d]", i), "%q is not a hostname", h)
		}
	}
	if c.OriginHost == "preserve" && len(c.Hostnames) == 0 {
		// Any client could then pick any virtual host of the origin,
		// through the edge and into its cache.
		bad("originHost", `"preserve" needs hostnames: the Hosts a client may send on to the origin`)
	}
	for i, k := range c.HopKeys {
		if len(k) < 16 {
			bad(fmt.Sprintf("hopKeys[%d]", i), "shorter than 16 bytes")
		}
	}
	for i, n := range c.PassHeaders {
		f := fmt.Sprintf("passHeaders[%d]", i)
		switch {
		case !httpguts.ValidHeaderFieldName(n):
			bad(f, "%q is not a field name", n)
		case strings.EqualFold(n, hopHeader):
			bad(f, "%s is only ever believed from an edge with the hop key", hopHeader)
		}
	}
	c.validateTLS(bad, checkAddr)
	if c.IOUring != "" && c.IOUring != IOUringAuto && c.IOUring != IOUringOff {
		bad("ioUring", "%q: want auto or off", c.IOUring)
	}
	if c.AccessLogSample > 1 || c.AccessLogSample != c.AccessLogSample {
		bad("accessLogSample", "%v: want a share from 0 to 1", c.AccessLogSample)
	}
	c.validateDemand(bad)
	if c.MemoryBytes < 0 {
		bad("memory", "must not be negative")
	}
	if c.DiskBytes < 0 {
		bad("disk", "must not be negative")
	}
	if c.MaxKeyBytes != 0 && (c.MaxKeyBytes < minMaxKeyBytes || c.MaxKeyBytes > maxMaxKeyBytes) {
		bad("maxKey", "must be between %d and %d bytes, got %d", minMaxKeyBytes, maxMaxKeyBytes, c.MaxKeyBytes)
	}
	if c.SliceBytes != 0 && (c.SliceBytes < 64<<10 || c.SliceBytes > 64<<20) {
		bad("slice", "must be between 64KiB and 64MiB, got %d", c.SliceBytes)
	}
	if c.MemoryBytes > 0 && c.SliceBytes > c.MemoryBytes && c.CacheDir == "" {
		bad("slice", "larger than the memory tier and no disk tier")
	}
	return errors.Join(errs...)
}

// validateTLS checks the TLS fields (the files themselves are read, and
// their errors reported, when the edge starts).
func (c Config) validateTLS(bad func(field, format string, args ...any), checkAddr func(field, v string, required bool)) {
	checkAddr("tlsListen", c.TLSListen, false)
	if c.TLSListen != "" && !strings.HasSuffix(c.TLSListen, ":0") && (c.TLSListen == c.Listen || c.TLSListen == c.Admin) {
		bad("tlsListen", "must differ from listen and admin")
	}
	hasCerts := len(c.TLSCerts) > 0 || len(c.TLSCertDirs) > 0
	if c.TLSListen != "" && !hasCerts && c.ACMEStorage == "" {
		bad("tlsCerts", "required with tlsListen (or tlsCertDirs, or acmeStorage)")
	}
	if c.ACMEStorage != "" {
		if c.TLSListen == "" {
			bad("acmeStorage", "needs tlsListen")
		}
		if len(c.Hostnames) == 0 {
			bad("acmeStorage", "needs hostnames: the names to get certificates for")
		}
	}
	if c.TLSListen == "" && (hasCerts || c.TLSTicketKeyFile != "") {
		bad("tlsListen", "required with tlsCerts, tlsCertDirs or tlsTicketKeyFile")
	}
	for i, p := range c.TLSCerts {
		if p.Cert == "" || p.Key == "" {
			bad(fmt.Sprintf("tlsCerts[%d]", i), "needs both cert and key")
		}
	}
	if len(c.HTTPSRedirect) > 0 && c.TLSListen == "" && c.HTTPSPort == 0 {
		bad("httpsRedirect", "needs tlsListen or httpsPort")
	}
	for i, h := range c.HTTPSRedirect {
		f := fmt.Sprintf("httpsRedirect[%d]", i)
		switch {
		case h == "" || strings.ContainsAny(h, "/ :@"):
			bad(f, "%q is not a hostname", h)
		case len(c.Hostnames) > 0 && !containsFold(c.Hostnames, h):
			bad(f, "%q is not one of hostnames", h)
		}
	}
	if c.HTTPSPort < 0 || c.HTTPSPort > 65535 {
		bad("httpsPort", "%d is not a port", c.HTTPSPort)
	}
	if c.HSTSMaxAge < 0 {
		bad("hstsMaxAge", "must not be negative")
	}
	if c.HTTP3RetryAbove > 1_000_000 {
		bad("http3RetryAbove", "%d handshakes per second is beyond any one edge", c.HTTP3RetryAbove)
	}
	if c.OriginInsecure && c.OriginCA != "" {
		bad("originInsecure", "contradicts originCA")
	}
}

func containsFold(list []string, s string) bool {
	s = strings.TrimSuffix(s, ".")
	for _, v := range list {
		if strings.EqualFold(strings.TrimSuffix(v, "."), s) {
			return true
		}
	}
	return false
}

// validateDemand checks the regions and geo networks the demand counters
// place clients with (the database is opened when the edge starts).
func (c Config) validateDemand(bad func(field, format string, args ...any)) {
	seen := map[string]bool{}
	for i, r := range c.DemandRegions {
		f := fmt.Sprintf("demandRegions[%d]", i)
		switch {
		case r.Name == "":
			bad(f, "name required")
		case seen[r.Name]:
			bad(f, "%q named twice", r.Name)
		}
		seen[r.Name] = true
	}
	for i, n := range c.Geo.Networks {
		f := fmt.Sprintf("geo.networks[%d]", i)
		if _, err := netip.ParsePrefix(n.CIDR); err != nil {
			bad(f, "%q is not a network (CIDR)", n.CIDR)
		}
		if n.Location == nil {
			bad(f, "location required")
		}
	}
}
