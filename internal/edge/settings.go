package edge

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/units"
)

// Settings is the edge's configuration as people and tools write it: the
// edge.yaml file (--config), the flags of `kubecdn edge` (RegisterFlags),
// what `kubecdn render` writes and what `kubecdn up` builds. Its YAML names
// are the file's keys; each field's flag is registered beside it in
// flags.go. DefaultSettings holds every default, and Config turns Settings
// into the validated Config a Server runs.
//
// To add a setting: a field here (with its json name), its default in
// DefaultSettings if it has one, its flag in RegisterFlags, and its line in
// Config.
type Settings struct {
	Listen     string   `json:"listen"`
	Admin      string   `json:"admin"`
	Origin     string   `json:"origin"`
	OriginHost string   `json:"originHost"`
	Hostnames  []string `json:"hostnames"`
	Parent     string   `json:"parent"`
	Peers      []string `json:"peers"`
	Self       string   `json:"self"`
	Name       string   `json:"name"`

	Memory   units.Size `json:"memory"`
	CacheDir string     `json:"cacheDir"`
	Disk     units.Size `json:"disk"`
	Slice    units.Size `json:"slice"`
	MaxKey   units.Size `json:"maxKey"`

	// StaleIfError of zero turns the default stale-if-error off (Config's
	// is negative then).
	StaleIfError    units.Duration `json:"staleIfError"`
	HeuristicMax    units.Duration `json:"heuristicMax"`
	UpstreamTimeout units.Duration `json:"upstreamTimeout"`
	StaleDeadline   units.Duration `json:"staleDeadline"`

	// AdminTokenFile and HopKeyFile name the files the secrets are read
	// from by LoadSettings; without them, $KUBECDN_ADMIN_TOKEN and
	// $KUBECDN_HOP_KEY.
	AdminTokenFile string   `json:"adminTokenFile"`
	HopKeyFile     string   `json:"hopKeyFile"`
	PassHeaders    []string `json:"passHeaders"`
	Pprof          bool     `json:"pprof"`
	IOUring        string   `json:"ioUring"`

	// Region and RTTReport configure the round-trip-time feed to the dns
	// (the caller runs the rtt reporter; see Options.Observer).
	Region    string   `json:"region"`
	RTTReport []string `json:"rttReport"`

	// DemandRegions and Geo place clients for the demand counters: the
	// CDN file's regions and spec.routing.geo, as SetDemandFrom copies
	// them (render and up).
	DemandRegions []DemandRegion `json:"demandRegions"`
	Geo           config.Geo     `json:"geo"`

	// Video are the rules for HLS and DASH (config.Video): the CDN file's
	// spec.cache.video with its defaults, always written by YAML so the
	// rules in force are read in edge.yaml.
	Video config.Video `json:"video"`

	TLSListen        string         `json:"tlsListen"`
	TLSCerts         []TLSCert      `json:"tlsCerts"`
	TLSCertDirs      []string       `json:"tlsCertDirs"`
	TLSTicketKeyFile string         `json:"tlsTicketKeyFile"`
	ACMEStorage      string         `json:"acmeStorage"`
	ACMECA           string         `json:"acmeCA"`
	ACMECARoot       string         `json:"acmeCARoot"`
	ACMEEmail        string         `json:"acmeEmail"`
	HTTPSRedirect    []string       `json:"httpsRedirect"`
	HTTPSPort        int            `json:"httpsPort"`
	HSTSMaxAge       units.Duration `json:"hstsMaxAge"`
	OriginCA         string         `json:"originCA"`
	OriginInsecure   bool           `json:"originInsecure"`

	// HTTP3 serves HTTP/3 on the tlsListen address (UDP) when TLS is
	// on; default true. HTTP3RetryAbove: see Config.
	HTTP3           bool `json:"http3"`
	HTTP3RetryAbove int  `json:"http3RetryAbove"`

	// AccessLog is where the access log goes: "-" (standard output), a
	// file (reopened on SIGHUP) or "off". AccessLogSample is the share of
	// requests logged, 0 to 1; responses of 500 or more are always logged,
	// so 0 logs only those.
	AccessLog       string  `json:"accessLog"`
	AccessLogSample float64 `json:"accessLogSample"`

	// AdminToken and HopKeys are the secrets themselves, never written to
	// a file: LoadSettings reads them, `kubecdn up` sets them.
	AdminToken string   `json:"-"`
	HopKeys    []string `json:"-"`
}

// DefaultSettings returns the edge's defaults, the one place they are
// written: the flags show them, a file overrides them, and Config's zero
// fields take them (withDefaults).
func DefaultSettings() Settings {
	return Settings{
		Listen:          "127.0.0.1:8080",
		Admin:           "127.0.0.1:9090",
		Name:            "kubecdn",
		Memory:          256 << 20,
		Disk:            10 << 30,
		Slice:           4 << 20,
		MaxKey:          DefaultMaxKeyBytes,
		StaleIfError:    units.Duration(24 * time.Hour),
		HeuristicMax:    units.Duration(24 * time.Hour),
		UpstreamTimeout: units.Duration(30 * time.Second),
		StaleDeadline:   units.Duration(2 * time.Second),
		IOUring:         IOUringAuto,
		AccessLog:       "-",
		AccessLogSample: 1,
		Video:           config.VideoDefaults(),
		HTTP3:           true,
		HTTP3RetryAbove: defaultHTTP3RetryAbove,
	}
}

// ParseSettings reads an edge.yaml: the defaults, overridden by the
// fields the file names. A bad file is refused with every problem, each
// naming its field.
func ParseSettings(data []byte) (Settings, error) {
	s := DefaultSettings()
	if err := config.DecodeStrict(data, &s); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// YAML writes s as an edge.yaml holding only the fields that differ from
// DefaultSettings, so ParseSettings reads back s (secrets aside) and a
// file says what its author chose, not every default of the day.
func (s Settings) YAML() ([]byte, error) {
	m, err := fieldMap(s)
	if err != nil {
		return nil, err
	}
	d, err := fieldMap(DefaultSettings())
	if err != nil {
		return nil, err
	}
	for k, v := range m {
		if k != "video" && reflect.DeepEqual(v, d[k]) {
			delete(m, k)
		}
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("edge settings: %w", err)
	}
	return b, nil
}

func fieldMap(s Settings) (map[string]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("edge settings: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("edge settings: %w", err)
	}
	return m, nil
}

// Config is the validated Config of s.
func (s Settings) Config() (Config, error) {
	c := Config{
		Listen: s.Listen, Admin: s.Admin, Origin: s.Origin, OriginHost: s.OriginHost,
		Hostnames: s.Hostnames, Parent: s.Parent, Peers: s.Peers, Self: s.Self, Name: s.Name,
		MemoryBytes: int64(s.Memory), CacheDir: s.CacheDir, DiskBytes: int64(s.Disk),
		SliceBytes: int64(s.Slice), MaxKeyBytes: int(s.MaxKey),
		StaleIfError: s.StaleIfError.Std(), HeuristicMax: s.HeuristicMax.Std(),
		UpstreamTimeout: s.UpstreamTimeout.Std(), StaleDeadline: s.StaleDeadline.Std(),
		AdminToken: s.AdminToken, HopKeys: s.HopKeys, PassHeaders: s.PassHeaders,
		Pprof: s.Pprof, IOUring: s.IOUring,
		TLSListen: s.TLSListen, TLSCerts: s.TLSCerts, TLSCertDirs: s.TLSCertDirs, TLSTicketKeyFile: s.TLSTicketKeyFile,
		ACMEStorage: s.ACMEStorage, ACMECA: s.ACMECA, ACMECARoot: s.ACMECARoot, ACMEEmail: s.ACMEEmail,
		HTTPSRedirect: s.HTTPSRedirect, HTTPSPort: s.HTTPSPort, HSTSMaxAge: s.HSTSMaxAge.Std(),
		HTTP3Off: !s.HTTP3, HTTP3RetryAbove: s.HTTP3RetryAbove,
		OriginCA: s.OriginCA, OriginInsecure: s.OriginInsecure,
		AccessLog: s.AccessLog, AccessLogSample: s.AccessLogSample, Region: s.Region,
		DemandRegions: s.DemandRegions, Geo: s.Geo, Video: s.Video,
	}
	if c.StaleIfError == 0 {
		c.StaleIfError = -1 // "0" in a file or flag turns it off
	}
	if s.AccessLogSample < 0 || s.AccessLogSample > 1 {
		return c, fmt.Errorf("accessLogSample: %v: want a share from 0 to 1", s.AccessLogSample)
	}
	if c.AccessLogSample == 0 {
		c.AccessLogSample = -1 // Config's zero is every request; 0 here means errors only
	}
	return c, c.Validate()
}
