// Package config parses and validates the CDN file, kubecdn.yaml: the one
// file that declares a CDN (zone, hostnames, origin, cache, routing, regions).
//
// Parse decodes strictly (an unknown field is an error), fills documented
// defaults and validates; every error names the field path, e.g.
// `spec.regions.alwaysOn[1].name: duplicate region "us-east-1"`, and all
// errors are reported at once.
package config

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/units"
)

// APIVersion and Kind are the only accepted values of the file's header.
const (
	APIVersion = "kubecdn.io/v1alpha1"
	Kind       = "CDN"
)

// HealthPath is the reserved path every edge answers with 200 while it can
// serve; the dns probes it on each edge's public address.
const HealthPath = "/.well-known/kubecdn/health"

// CDN is the whole file.
type CDN struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`

	// BaseDir is the directory relative paths in the file are resolved
	// against (the file's own directory when loaded with Load).
	BaseDir string `json:"-"`
}

// Metadata names the CDN.
type Metadata struct {
	Name string `json:"name"`
}

// Spec is the body of the file.
type Spec struct {
	// Zone is the DNS zone the dns is authoritative for.
	Zone string `json:"zone"`
	// Hostnames are the names the edges serve; each must be inside Zone.
	Hostnames []string  `json:"hostnames"`
	Origin    Origin    `json:"origin"`
	Cache     Cache     `json:"cache"`
	Routing   Routing   `json:"routing"`
	DNS       DNS       `json:"dns"`
	Regions   Regions   `json:"regions"`
	Autoscale Autoscale `json:"autoscale"`
	// Publish chooses where the CDN's DNS answers live (kubecdn deploy).
	Publish Publish `json:"publish"`
	// Apps are the user's own services, deployed to every region (or a
	// subset) next to the edges and published in DNS the same way.
	Apps []App `json:"apps,omitempty"`
	// Infra turns on `kubecdn infra`: it creates the cluster of every
	// region without a cluster: (see infra.go).
	Infra *Infra `json:"infra,omitempty"`
}

// Origin is where misses finally go: exactly one of URL or Dir.
type Origin struct {
	URL string `json:"url,omitempty"`
	Dir string `json:"dir,omitempty"`
}

// Cache sizes the edge's tiers.
type Cache struct {
	Memory Size `json:"memory,omitempty"`
	Disk   Disk `json:"disk"`
	// Video are the edges' rules for HLS and DASH (see Video).
	Video Video `json:"video,omitzero"`
}

// Disk is the edge's disk tier.
type Disk struct {
	Path string `json:"path,omitempty"`
	Size Size   `json:"size,omitempty"`
}

// Policy is a routing policy.
type Policy string

// The routing policies.
const (
	PolicyLatency  Policy = "latency"  // lowest measured (else estimated) round-trip time
	PolicyGeo      Policy = "geo"      // nearest region by great-circle distance
	PolicyWeighted Policy = "weighted" // random by weight among healthy regions
	PolicyFailover Policy = "failover" // first healthy region in order
	PolicyAll      Policy = "all"      // every healthy region
)

// Policies lists the valid policies.
var Policies = []Policy{PolicyLatency, PolicyGeo, PolicyWeighted, PolicyFailover, PolicyAll}

// Routing decides which region(s) answer a client.
type Routing struct {
	// Policy; if empty, defaults to latency.
	Policy Policy `json:"policy,omitempty"`
	// TTL of the A/AAAA answers for the hostnames; if zero, defaults to 30s.
	TTL    Duration `json:"ttl,omitempty"`
	Health Health   `json:"health"`
	Geo    Geo      `json:"geo"`
	// Weights per region name for the weighted policy; a region not listed
	// weighs 1, weight 0 takes a region out unless nothing else is healthy.
	Weights map[string]int `json:"weights,omitempty"`
	// Failover is the order for the failover policy; regions not listed
	// follow in file order (alwaysOn, then autoscale).
	Failover []string `json:"failover,omitempty"`
	// Explore is the share of latency answers (0 to 0.5) that name the
	// runner-up region so its measurement stays fresh. If zero, 0.
	Explore float64 `json:"explore,omitempty"`
}

// Health is how the dns probes each edge (GET HealthPath, 200 is healthy).
type Health struct {
	// Interval between probes of one edge; if zero, 1s.
	Interval Duration `json:"interval,omitempty"`
	// Timeout of one probe; if zero, 500ms. At most Interval.
	Timeout Duration `json:"timeout,omitempty"`
	// FailAfter consecutive failures mark an edge down; if zero, 3.
	FailAfter int `json:"failAfter,omitempty"`
	// PassAfter consecutive successes mark it up again; if zero, 2.
	PassAfter int `json:"passAfter,omitempty"`
}

// Geo locates clients: Networks first (most specific match wins), then the
// MaxMind-format Database (city or geolite2-city layout: location.latitude,
// location.longitude).
type Geo struct {
	Database string       `json:"database,omitempty"`
	Networks []GeoNetwork `json:"networks,omitempty"`
}

// GeoNetwork pins a client network to a location.
type GeoNetwork struct {
	CIDR     string    `json:"cidr"`
	Location *Location `json:"location"`
	// Label names the place for people (status page); optional.
	Label string `json:"label,omitempty"`
}

// Location is a point on Earth in degrees.
type Location struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// DNS holds what the dns serves besides the hostnames.
type DNS struct {
	// Nameservers of the zone (NS records, with glue when inside the zone).
	// If empty, one per region with a dns address: ns-<region>.<zone>.
	Nameservers []Nameserver `json:"nameservers,omitempty"`
	SOA         SOA          `json:"soa"`
	// TTL of the SOA, NS, glue and static records without their own; if
	// zero, 1h.
	TTL Duration `json:"ttl,omitempty"`
	// Records are static records served as given.
	Records []Record `json:"records,omitempty"`
	RRL     RRL      `json:"rrl"`
}

// Nameserver is one NS record target.
type Nameserver struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses,omitempty"`
}

// SOA fields; zero values get defaults (mname: the first nameserver, email:
// hostmaster.<zone>, refresh 1h, retry 10m, expire 1w, minimum (negative
// caching TTL) 30s).
type SOA struct {
	Mname   string   `json:"mname,omitempty"`
	Email   string   `json:"email,omitempty"`
	Refresh Duration `json:"refresh,omitempty"`
	Retry   Duration `json:"retry,omitempty"`
	Expire  Duration `json:"expire,omitempty"`
	Minimum Duration `json:"minimum,omitempty"`
}

// Record is one static record. Name is relative to the zone ("@" or "" is
// the apex) or absolute with a trailing dot. Type is one of A, AAAA, CNAME,
// TXT, CAA, MX, SRV; Value is the record data in zone-file syntax (TXT may be
// unquoted).
type Record struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Value string   `json:"value"`
	TTL   Duration `json:"ttl,omitempty"`
}

// RRL is response rate limiting for UDP (TCP is never limited). Rate zero
// (the default) turns it off.
type RRL struct {
	// Rate of identical responses per second per client /24 (IPv6 /56).
	Rate Rate `json:"rate,omitempty"`
	// Slip: every Slip-th limited response is sent truncated (TC) so real
	// clients retry over TCP; 0 drops all. If unset, 2.
	Slip *int `json:"slip,omitempty"`
}

// Regions lists where the CDN runs: always-on regions and approved
// autoscale regions (opened and closed by demand).
type Regions struct {
	AlwaysOn  []Region `json:"alwaysOn"`
	Autoscale []Region `json:"autoscale,omitempty"`
}

// Providers lists the valid region providers.
var Providers = []string{"aws", "gcp", "azure", "kops", "local"}

// Region is one region.
type Region struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// Parent is the shield region misses go to before the origin.
	Parent   string    `json:"parent,omitempty"`
	Cluster  Cluster   `json:"cluster"`
	Location *Location `json:"location,omitempty"`
	// Edges are the public addresses (ip:port, port defaults to 80) of the
	// region's edges when known statically (local runs, static deployments).
	// The dns answers with their IPs and probes ip:port.
	Edges []string `json:"edges,omitempty"`
	// DNS is the address (ip or ip:port) of the region's dns replica.
	DNS string `json:"dns,omitempty"`
	// Endpoints are the public addresses (ip:port) of the region's app
	// services by hostname (spec.apps[].services[].hostname). kubecdn deploy
	// fills them from each Service's load balancer; a static deployment
	// writes them by hand.
	Endpoints map[string][]string `json:"endpoints,omitempty"`
	// Infra is what `kubecdn infra` makes this region's cluster of (cloud
	// location, Kubernetes version, node pools); if empty, the provider's
	// defaults. Used only when spec.infra is set and cluster: is empty.
	Infra *RegionInfra `json:"infra,omitempty"`
}

// Cluster says how to reach a region's Kubernetes cluster. If empty and
// spec.infra is set, it is the context kubecdn-REGION of the kubeconfig
// `kubecdn infra` writes (InfraCluster).
type Cluster struct {
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
}

// Autoscale thresholds for opening and closing autoscale regions.
type Autoscale struct {
	ScaleUpAbove   Rate     `json:"scaleUpAbove,omitempty"`
	ScaleDownBelow Rate     `json:"scaleDownBelow,omitempty"`
	Window         Duration `json:"window,omitempty"`
	Cooldown       Duration `json:"cooldown,omitempty"`
	// MaxOpen bounds how many autoscale regions run at once; 0 means all
	// of them may.
	MaxOpen int `json:"maxOpen,omitempty"`
	// Mode is what closing a region does on Kubernetes: "prune" (the
	// default) deletes its objects and keeps the cluster, "warm" scales its
	// edges to zero and keeps everything else, "cold" destroys the cluster
	// (kubecdn infra creates it again when the region next opens).
	Mode AutoscaleMode `json:"mode,omitempty"`
	// Retain is how long cold mode keeps a closed region's cluster before
	// destroying it, so demand that comes back soon reopens it without
	// waiting for a new cluster; if zero, 1h.
	Retain Duration `json:"retain,omitempty"`
}

// Duration is a time.Duration written as "30s", "500ms", "5m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration string such as 30s or 500ms")
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 30s, 500ms, 5m)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Size is a byte count written as "512MiB", "50GiB" or a plain number.
type Size int64

// UnmarshalJSON accepts a size string or a number of bytes.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("must be a size such as 512MiB or 50GiB")
		}
		str = n.String()
	}
	v, err := units.ParseSize(str)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalJSON writes s with a binary unit.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(units.FormatSize(int64(s))) }

// Rate is an event rate per second written as "50rps", "50/s", "3000rpm" or
// a plain number (per second).
type Rate float64

// UnmarshalJSON accepts a rate string or a number.
func (r *Rate) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("must be a rate such as 50rps")
		}
		str = n.String()
	}
	v, err := ParseRate(str)
	if err != nil {
		return err
	}
	*r = Rate(v)
	return nil
}

// MarshalJSON writes r as "<n>rps".
func (r Rate) MarshalJSON() ([]byte, error) {
	return json.Marshal(strconv.FormatFloat(float64(r), 'f', -1, 64) + "rps")
}

// ParseRate parses "50rps", "50/s", "3000rpm", "3000/m" or "50" into events
// per second.
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	div := 1.0
	for _, suf := range []struct {
		name string
		div  float64
	}{{"rps", 1}, {"/s", 1}, {"rpm", 60}, {"/m", 60}, {"/min", 60}} {
		if strings.HasSuffix(t, suf.name) {
			t, div = strings.TrimSpace(strings.TrimSuffix(t, suf.name)), suf.div
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || math.IsNaN(f) || math.IsInf(f, 0) || strings.ContainsAny(t, "xXpP") {
		return 0, fmt.Errorf("invalid rate %q (want e.g. 50rps or 3000rpm)", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("invalid rate %q: negative", s)
	}
	return f / div, nil
}
