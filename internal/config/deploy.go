package config

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// The DNS publishing providers (spec.publish.provider).
const (
	// PublishKubecdn: every region's kubecdn dns replicas get every
	// region's addresses (the default).
	PublishKubecdn = "kubecdn"
	// PublishRoute53: one record set per region in an Amazon Route 53
	// hosted zone, with the routing policy and health checks.
	PublishRoute53 = "route53"
	// PublishRFC2136: dynamic updates with TSIG to BIND, Knot or PowerDNS.
	PublishRFC2136 = "rfc2136"
)

// PublishProviders lists the valid spec.publish.provider values.
var PublishProviders = []string{PublishKubecdn, PublishRoute53, PublishRFC2136}

// Publish chooses where the CDN's DNS answers live.
type Publish struct {
	// Provider: kubecdn (default), route53 or rfc2136.
	Provider string `json:"provider,omitempty"`
	// Owner names this CDN in the ownership TXT records, so two CDNs
	// sharing a zone never change each other's names; if empty,
	// metadata.name.
	Owner   string   `json:"owner,omitempty"`
	Route53 *Route53 `json:"route53,omitempty"`
	RFC2136 *RFC2136 `json:"rfc2136,omitempty"`
}

// Route53 is an Amazon Route 53 hosted zone. Credentials come from the
// usual AWS places (environment, shared files, instance roles).
type Route53 struct {
	// HostedZoneID of the zone that holds the hostnames, e.g. Z0123456789ABC.
	HostedZoneID string `json:"hostedZoneID"`
	// Region of the API client; if empty, us-east-1 (Route 53 is global).
	Region string `json:"region,omitempty"`
	// Endpoint overrides the API's base URL (a private endpoint or a test
	// server); if empty, the AWS default.
	Endpoint string `json:"endpoint,omitempty"`
	// HealthChecks creates a Route 53 health check per region endpoint so
	// Route 53 stops answering a dead region; if unset, true.
	HealthChecks *bool `json:"healthChecks,omitempty"`
}

// RFC2136 is a primary server that takes dynamic updates (RFC 2136)
// signed with TSIG (RFC 8945).
type RFC2136 struct {
	// Server is the primary's address, ip or ip:port (port 53 if omitted).
	Server string `json:"server"`
	// TSIG key; the secret (base64) is read from SecretFile or from the
	// environment variable SecretEnv, never written in this file.
	TSIG TSIG `json:"tsig"`
}

// TSIG names a transaction signature key.
type TSIG struct {
	Name string `json:"name"`
	// Algorithm: hmac-sha256 (default), hmac-sha512, hmac-sha384,
	// hmac-sha224 or hmac-sha1.
	Algorithm  string `json:"algorithm,omitempty"`
	SecretFile string `json:"secretFile,omitempty"`
	SecretEnv  string `json:"secretEnv,omitempty"`
}

// TSIGAlgorithms maps the file's algorithm names to their DNS names.
var TSIGAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// App is a set of the user's own manifests deployed to every region (or
// the listed ones), e.g. a video server.
type App struct {
	// Name of the app: lowercase letters, digits and '-'.
	Name string `json:"name"`
	// Manifests is a directory of YAML files or a kustomization
	// (a directory with kustomization.yaml), relative to this file.
	Manifests string `json:"manifests"`
	// Regions the app runs in; if empty, every region of the CDN.
	Regions []string `json:"regions,omitempty"`
	// Overrides patch objects in some regions.
	Overrides []Override `json:"overrides,omitempty"`
	// Services are the app's LoadBalancer Services that get a hostname:
	// one record per region, routed and health-checked like the edges.
	Services []AppService `json:"services,omitempty"`
}

// Override patches one object of an app in the listed regions: a strategic
// merge patch for Kubernetes' own kinds, a JSON merge patch (RFC 7386)
// for others.
type Override struct {
	Regions []string `json:"regions"`
	// Kind and Name pick the object (Namespace too when names repeat).
	Kind      string         `json:"kind"`
	Name      string         `json:"name"`
	Namespace string         `json:"namespace,omitempty"`
	Patch     map[string]any `json:"patch"`
}

// AppService gives an app's LoadBalancer Service a hostname.
type AppService struct {
	// Service is the Service's name in the manifests.
	Service string `json:"service"`
	// Namespace of the Service; if empty, the namespace its manifest names,
	// else "default".
	Namespace string `json:"namespace,omitempty"`
	// Hostname users reach it at; inside spec.zone.
	Hostname string `json:"hostname"`
	// Port the address is published and probed with; if zero, the
	// Service's first port.
	Port int `json:"port,omitempty"`
	// Health is how a region's address is probed.
	Health AppHealth `json:"health"`
}

// AppHealth probes an app service: "tcp" (connect, for non-HTTP ports such
// as RTMP on 1935) or "http" (GET Path, 2xx or 3xx is healthy).
type AppHealth struct {
	// Protocol: tcp (default) or http.
	Protocol string `json:"protocol,omitempty"`
	// Path for http; if empty, "/".
	Path string `json:"path,omitempty"`
}

// Owner is the CDN's identity in DNS ownership records.
func (c *CDN) Owner() string {
	if c.Spec.Publish.Owner != "" {
		return c.Spec.Publish.Owner
	}
	return c.Metadata.Name
}

// AppServices returns every app service with its app, in file order.
func (c *CDN) AppServices() []AppServiceRef {
	var out []AppServiceRef
	for i, a := range c.Spec.Apps {
		for j, s := range a.Services {
			out = append(out, AppServiceRef{AppService: s, App: a.Name, Regions: a.Regions, Path: fmt.Sprintf("spec.apps[%d].services[%d]", i, j)})
		}
	}
	return out
}

// AppServiceRef is an app service with the app it belongs to.
type AppServiceRef struct {
	AppService
	App     string
	Regions []string // the app's regions; empty means all
	Path    string
}

// InRegion reports whether the service runs in the region.
func (a AppServiceRef) InRegion(name string) bool {
	return len(a.Regions) == 0 || slices.Contains(a.Regions, name)
}

// Secret reads the key's secret from its file or environment variable.
func (t TSIG) Secret() (string, error) {
	switch {
	case t.SecretFile != "":
		b, err := os.ReadFile(t.SecretFile)
		if err != nil {
			return "", fmt.Errorf("tsig secret: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case t.SecretEnv != "":
		v := strings.TrimSpace(os.Getenv(t.SecretEnv))
		if v == "" {
			return "", fmt.Errorf("tsig secret: environment variable %s is empty", t.SecretEnv)
		}
		return v, nil
	}
	return "", fmt.Errorf("tsig secret: neither secretFile nor secretEnv is set")
}

func (c *CDN) setPublishDefaults() {
	p := &c.Spec.Publish
	if p.Provider == "" {
		p.Provider = PublishKubecdn
	}
	if p.Route53 != nil && p.Route53.Region == "" {
		p.Route53.Region = "us-east-1"
	}
	if p.Route53 != nil && p.Route53.HealthChecks == nil {
		t := true
		p.Route53.HealthChecks = &t
	}
	if p.RFC2136 != nil {
		if p.RFC2136.TSIG.Algorithm == "" {
			p.RFC2136.TSIG.Algorithm = "hmac-sha256"
		}
		p.RFC2136.TSIG.SecretFile = c.ResolvePath(p.RFC2136.TSIG.SecretFile)
	}
	for i := range c.Spec.Apps {
		a := &c.Spec.Apps[i]
		for j := range a.Services {
			s := &a.Services[j]
			s.Hostname = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s.Hostname)), ".")
			if s.Health.Protocol == "" {
				s.Health.Protocol = "tcp"
			}
			if s.Health.Protocol == "http" && s.Health.Path == "" {
				s.Health.Path = "/"
			}
		}
	}
}

func (c *CDN) validatePublish(v *validator, zoneOK bool, names map[string]string) {
	p := c.Spec.Publish
	if !slices.Contains(PublishProviders, p.Provider) {
		v.add("spec.publish.provider", "unknown provider %q (want one of %s)", p.Provider, strings.Join(PublishProviders, ", "))
	}
	if p.Owner != "" && (strings.ContainsAny(p.Owner, "\" \\;") || len(p.Owner) > 64) {
		v.add("spec.publish.owner", "%q must be at most 64 characters without spaces, quotes, backslashes or ';'", p.Owner)
	}
	switch {
	case p.Provider == PublishRoute53 && p.Route53 == nil:
		v.add("spec.publish.route53", "required when provider is route53")
	case p.Provider == PublishRFC2136 && p.RFC2136 == nil:
		v.add("spec.publish.rfc2136", "required when provider is rfc2136")
	}
	if r := p.Route53; r != nil {
		if r.HostedZoneID == "" {
			v.add("spec.publish.route53.hostedZoneID", "required")
		} else if strings.ContainsAny(r.HostedZoneID, "/ ") {
			v.add("spec.publish.route53.hostedZoneID", "%q: give the bare ID, e.g. Z0123456789ABC", r.HostedZoneID)
		}
		if r.Endpoint != "" && !strings.HasPrefix(r.Endpoint, "https://") && !strings.HasPrefix(r.Endpoint, "http://") {
			v.add("spec.publish.route53.endpoint", "%q must be an http(s) URL", r.Endpoint)
		}
	}
	if r := p.RFC2136; r != nil {
		if r.Server == "" {
			v.add("spec.publish.rfc2136.server", "required")
		} else if _, err := ParseHostPort(r.Server, 53); err != nil {
			v.add("spec.publish.rfc2136.server", "%v", err)
		}
		t := r.TSIG
		if t.Name == "" {
			v.add("spec.publish.rfc2136.tsig.name", "required")
		} else if _, ok := dns.IsDomainName(t.Name); !ok {
			v.add("spec.publish.rfc2136.tsig.name", "%q is not a key name", t.Name)
		}
		if _, ok := TSIGAlgorithms[t.Algorithm]; !ok {
			v.add("spec.publish.rfc2136.tsig.algorithm", "unknown algorithm %q (want one of hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224, hmac-sha1)", t.Algorithm)
		}
		if (t.SecretFile == "") == (t.SecretEnv == "") {
			v.add("spec.publish.rfc2136.tsig", "exactly one of secretFile and secretEnv is required")
		}
	}

	apps := map[string]int{}
	hosts := map[string]string{}
	for _, h := range c.Spec.Hostnames {
		hosts[strings.ToLower(h)] = "spec.hostnames"
	}
	for i, a := range c.Spec.Apps {
		f := fmt.Sprintf("spec.apps[%d]", i)
		switch j, dup := apps[a.Name]; {
		case a.Name == "":
			v.add(f+".name", "required")
		case !regionNameRe.MatchString(a.Name):
			v.add(f+".name", "%q must be lowercase letters, digits and '-'", a.Name)
		case dup:
			v.add(f+".name", "duplicate app %q (also spec.apps[%d])", a.Name, j)
		default:
			apps[a.Name] = i
		}
		// Whether the directory exists is checked when deploy loads it: the
		// dns reads this file in a cluster where it does not.
		if a.Manifests == "" {
			v.add(f+".manifests", "required: a directory of YAML files or a kustomization")
		}
		for k, r := range a.Regions {
			if _, ok := names[r]; !ok {
				v.add(fieldIdx(f+".regions", k), "unknown region %q", r)
			}
		}
		for k, o := range a.Overrides {
			of := fieldIdx(f+".overrides", k)
			if len(o.Regions) == 0 {
				v.add(of+".regions", "required: the regions this override applies to")
			}
			for m, r := range o.Regions {
				if _, ok := names[r]; !ok {
					v.add(fieldIdx(of+".regions", m), "unknown region %q", r)
				} else if len(a.Regions) > 0 && !slices.Contains(a.Regions, r) {
					v.add(fieldIdx(of+".regions", m), "region %q is not one of the app's regions", r)
				}
			}
			if o.Kind == "" {
				v.add(of+".kind", "required")
			}
			if o.Name == "" {
				v.add(of+".name", "required")
			}
			if len(o.Patch) == 0 {
				v.add(of+".patch", "required: the fields to change")
			}
		}
		for k, s := range a.Services {
			sf := fieldIdx(f+".services", k)
			if s.Service == "" {
				v.add(sf+".service", "required: the name of a LoadBalancer Service in the manifests")
			}
			switch prev, dup := hosts[s.Hostname]; {
			case s.Hostname == "":
				v.add(sf+".hostname", "required")
			case zoneOK && !dns.IsSubDomain(c.Spec.Zone+".", s.Hostname+"."):
				v.add(sf+".hostname", "%q is not inside the zone %q", s.Hostname, c.Spec.Zone)
			case dup:
				v.add(sf+".hostname", "%q is already used by %s", s.Hostname, prev)
			case zoneOK && strings.HasSuffix(s.Hostname, "."+EdgesDomain(c.Spec.Zone)):
				v.add(sf+".hostname", "%q is under %s, which holds the regions' own names", s.Hostname, EdgesDomain(c.Spec.Zone))
			default:
				hosts[s.Hostname] = sf
			}
			if s.Port < 0 || s.Port > 65535 {
				v.add(sf+".port", "%d is not a port", s.Port)
			}
			switch s.Health.Protocol {
			case "tcp", "http":
			default:
				v.add(sf+".health.protocol", "unknown protocol %q (want tcp or http)", s.Health.Protocol)
			}
			if s.Health.Path != "" && !strings.HasPrefix(s.Health.Path, "/") {
				v.add(sf+".health.path", "%q must start with /", s.Health.Path)
			}
		}
	}
	for _, r := range c.AllRegions() {
		for _, h := range sortedKeysStrings(r.Endpoints) {
			f := r.Path + ".endpoints." + h
			if _, ok := hosts[h]; !ok || hosts[h] == "spec.hostnames" {
				v.add(f, "%q is not the hostname of an app service (spec.apps[].services[].hostname)", h)
			}
			seen := map[string]int{}
			for i, e := range r.Endpoints[h] {
				if _, err := ParseHostPort(e, 80); err != nil {
					v.add(fieldIdx(f, i), "%v", err)
				} else if j, dup := seen[e]; dup {
					v.add(fieldIdx(f, i), "duplicate endpoint %q (also [%d])", e, j)
				}
				seen[e] = i
			}
		}
	}
}

func sortedKeysStrings(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
