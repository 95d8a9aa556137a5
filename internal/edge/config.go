package edge

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is the edge's configuration. The zero value of every optional field
// means its documented default.
type Config struct {
	// Listen is the public HTTP address. Required.
	Listen string `json:"listen"`
	// Admin is the admin address (purge, metrics, health). If empty, defaults
	// to 127.0.0.1:9090.
	Admin string `json:"admin"`
	// Origin is the origin's base URL (http or https). Required.
	Origin string `json:"origin"`
	// OriginHost is the Host header sent to the origin. If empty, defaults to
	// the host of Origin; "preserve" sends the client's Host.
	OriginHost string `json:"originHost,omitempty"`
	// Hostnames, when not empty, are the only Hosts served; others get 421.
	Hostnames []string `json:"hostnames,omitempty"`
	// Parent is a shield edge asked before the origin.
	Parent string `json:"parent,omitempty"`
	// Peers are the edges of this region (may include this edge's own URL,
	// see Self). A miss is first asked of the peer that owns the key.
	Peers []string `json:"peers,omitempty"`
	// Self is this edge's URL as its peers know it. If empty, defaults to
	// "http://" + Listen.
	Self string `json:"self,omitempty"`
	// Name identifies this edge in CDN-Loop and Cache-Status. If empty,
	// defaults to "kubecdn".
	Name string `json:"name,omitempty"`
	// MemoryBytes bounds the memory tier. If zero, defaults to 256 MiB.
	MemoryBytes int64 `json:"memory,omitempty"`
	// CacheDir is the disk tier's directory; empty means no disk tier.
	CacheDir string `json:"cacheDir,omitempty"`
	// DiskBytes bounds the disk tier. If zero, defaults to 10 GiB.
	DiskBytes int64 `json:"disk,omitempty"`
	// SliceBytes is the size of the slices large objects are fetched and
	// stored in. If zero, defaults to 4 MiB.
	SliceBytes int64 `json:"slice,omitempty"`
	// StaleIfError is how long past expiry cached content is served when the
	// upstream fails, even without a stale-if-error directive. If zero,
	// defaults to 24h; negative disables it.
	StaleIfError time.Duration `json:"staleIfError,omitempty"`
	// HeuristicMax caps heuristic freshness. If zero, defaults to 24h.
	HeuristicMax time.Duration `json:"heuristicMax,omitempty"`
	// UpstreamTimeout bounds the wait for an upstream's response header. If
	// zero, defaults to 30s.
	UpstreamTimeout time.Duration `json:"upstreamTimeout,omitempty"`
	// AdminToken is the bearer token of the admin purge API. If empty, purge
	// is refused (401) for everyone.
	AdminToken string `json:"-"`
	// MaxHeaderBytes bounds a request's header. If zero, defaults to 32 KiB.
	MaxHeaderBytes int `json:"maxHeaderBytes,omitempty"`
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Admin == "" {
		c.Admin = "127.0.0.1:9090"
	}
	if c.Self == "" && c.Listen != "" {
		c.Self = "http://" + c.Listen
	}
	if c.Name == "" {
		c.Name = "kubecdn"
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = 256 << 20
	}
	if c.DiskBytes == 0 {
		c.DiskBytes = 10 << 30
	}
	if c.SliceBytes == 0 {
		c.SliceBytes = 4 << 20
	}
	if c.StaleIfError == 0 {
		c.StaleIfError = 24 * time.Hour
	}
	if c.HeuristicMax == 0 {
		c.HeuristicMax = 24 * time.Hour
	}
	if c.UpstreamTimeout == 0 {
		c.UpstreamTimeout = 30 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 32 << 10
	}
	for i, h := range c.Hostnames {
		c.Hostnames[i] = strings.ToLower(strings.TrimSuffix(h, "."))
	}
	return c
}

// Validate reports every problem of c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
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
	if c.MemoryBytes < 0 {
		bad("memory", "must not be negative")
	}
	if c.DiskBytes < 0 {
		bad("disk", "must not be negative")
	}
	if c.SliceBytes != 0 && (c.SliceBytes < 64<<10 || c.SliceBytes > 64<<20) {
		bad("slice", "must be between 64KiB and 64MiB, got %d", c.SliceBytes)
	}
	if c.MemoryBytes > 0 && c.SliceBytes > c.MemoryBytes && c.CacheDir == "" {
		bad("slice", "larger than the memory tier and no disk tier")
	}
	return errors.Join(errs...)
}
