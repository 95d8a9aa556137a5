// Package render turns the CDN file into the Kubernetes manifests of each
// region: the namespace, the configuration, the edges (StatefulSet, Services,
// PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy), the dns
// (Deployment, Services, PodDisruptionBudget, NetworkPolicy) and, on request,
// monitoring: a Prometheus per region with kubecdn's alert rules, or
// ServiceMonitors and a PrometheusRule for the Prometheus Operator
// (monitoring.go, alerts.go). WithApps adds the user's own manifests
// (spec.apps) as deploy applies them.
//
// Render is a pure function of the file and the Options: the same input gives
// the same objects in the same order, so the output can be kept in git and
// reviewed (kubecdn render), or applied with server-side apply (kubecdn
// deploy). Marshal and WriteDir are the thin I/O around it.
package render

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Object is one rendered Kubernetes object: a typed k8s.io/api object, or an
// *unstructured.Unstructured for kinds outside k8s.io/api (ServiceMonitor).
// TypeMeta (apiVersion, kind) is always set.
type Object interface {
	metav1.Object
	runtime.Object
}

// Defaults of Options.
const (
	DefaultImage           = "ghcr.io/kubecdn/kubecdn:latest"
	DefaultNamespace       = "kubecdn"
	DefaultEdgeReplicas    = 2
	DefaultMaxEdgeReplicas = 10
	DefaultDNSReplicas     = 2
	DefaultAdminSecret     = "kubecdn-admin"
	DefaultHopSecret       = "kubecdn-hop"
)

// DefaultParentURL is the ParentURL when Options leaves it empty: the
// parent region's edges name (config.EdgesName), which deploy publishes in
// the zone, as a template.
func DefaultParentURL() string { return "http://" + config.EdgesName("{region}", "{zone}") }

// Options are the choices the CDN file does not make. Zero values take the
// documented defaults.
type Options struct {
	// Image of the kubecdn binary; if empty, DefaultImage.
	Image string
	// Namespace every object lives in; if empty, DefaultNamespace.
	Namespace string
	// EdgeReplicas is the StatefulSet's replica count, the HPA's minimum and
	// the size of the peer list (pods kubecdn-edge-0 ..
	// kubecdn-edge-(EdgeReplicas-1)); if zero, DefaultEdgeReplicas.
	EdgeReplicas int32
	// MaxEdgeReplicas is the HPA's maximum; if zero, DefaultMaxEdgeReplicas.
	MaxEdgeReplicas int32
	// DNSReplicas of the dns Deployment; if zero, DefaultDNSReplicas.
	DNSReplicas int32
	// ParentURL is the URL of a parent (shield) region's edges, with
	// {region}, {zone} and {namespace} replaced; the parent lives in another
	// cluster, so this is a public name. If empty, DefaultParentURL.
	ParentURL string
	// AdminSecret names the Secret whose key "token" holds the edges' admin
	// bearer token, which the dns also requires of the edges' rtt reports;
	// if empty, DefaultAdminSecret. It is referenced, never
	// rendered: secrets do not belong in git.
	AdminSecret string
	// HopSecret names the Secret whose key "key" holds the hop key with
	// which edges authenticate their requests to each other (peers, and
	// parent regions: every region of the CDN needs the same value); if
	// empty, DefaultHopSecret. Referenced, never rendered. Without it the
	// edges serve, but trust no other edge's forwarding fields.
	HopSecret string
	// StorageClass of the disk tier's volume claims; if empty, the cluster's
	// default class.
	StorageClass string
	// TLSSecrets are Kubernetes TLS Secrets (tls.crt, tls.key) mounted
	// into the edges, which then serve HTTPS on 8443, published on port 443
	// of the load balancer; a certificate per hostname is chosen by SNI and
	// reloaded when the Secret changes.
	TLSSecrets []string
	// ServiceMonitor adds a monitoring.coreos.com/v1 ServiceMonitor per
	// component (needs the Prometheus Operator's CRDs).
	ServiceMonitor bool
	// Monitoring adds monitoring to each region: MonitoringPrometheus (a
	// Prometheus of its own with the alert rules) or MonitoringOperator
	// (ServiceMonitors and a PrometheusRule for the Prometheus Operator).
	// If empty, none.
	Monitoring Monitoring
	// PrometheusImage is the image of MonitoringPrometheus; if empty,
	// DefaultPrometheusImage.
	PrometheusImage string
	// Regions restricts the output to these regions; if empty, every region
	// of the file (alwaysOn and autoscale).
	Regions []string
}

func (o Options) withDefaults() Options {
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.EdgeReplicas == 0 {
		o.EdgeReplicas = DefaultEdgeReplicas
	}
	if o.MaxEdgeReplicas == 0 {
		o.MaxEdgeReplicas = max(DefaultMaxEdgeReplicas, o.EdgeReplicas)
	}
	if o.DNSReplicas == 0 {
		o.DNSReplicas = DefaultDNSReplicas
	}
	if o.ParentURL == "" {
		o.ParentURL = DefaultParentURL()
	}
	if o.AdminSecret == "" {
		o.AdminSecret = DefaultAdminSecret
	}
	if o.HopSecret == "" {
		o.HopSecret = DefaultHopSecret
	}
	if o.PrometheusImage == "" {
		o.PrometheusImage = DefaultPrometheusImage
	}
	return o
}

func (o Options) validate(cfg *config.CDN) error {
	var errs []string
	if o.EdgeReplicas < 1 {
		errs = append(errs, fmt.Sprintf("edge replicas: %d, want at least 1", o.EdgeReplicas))
	}
	if o.MaxEdgeReplicas < o.EdgeReplicas {
		errs = append(errs, fmt.Sprintf("max edge replicas: %d is below edge replicas %d", o.MaxEdgeReplicas, o.EdgeReplicas))
	}
	if o.DNSReplicas < 1 {
		errs = append(errs, fmt.Sprintf("dns replicas: %d, want at least 1", o.DNSReplicas))
	}
	if !dns1123Label(o.Namespace) {
		errs = append(errs, fmt.Sprintf("namespace: %q is not a DNS-1123 label", o.Namespace))
	}
	for _, img := range []struct{ name, v string }{{"image", o.Image}, {"prometheus image", o.PrometheusImage}} {
		if strings.TrimSpace(img.v) != img.v || strings.ContainsAny(img.v, " \t\n") {
			errs = append(errs, fmt.Sprintf("%s: %q contains white space", img.name, img.v))
		}
	}
	switch o.Monitoring {
	case MonitoringNone, MonitoringOperator:
	case MonitoringPrometheus:
		if o.ServiceMonitor {
			// Both would scrape the edges and fire every alert twice.
			errs = append(errs, "monitoring: a Prometheus of its own and ServiceMonitors for the operator's: choose one")
		}
	default:
		errs = append(errs, fmt.Sprintf("monitoring: %q, want %q or %q", o.Monitoring, MonitoringPrometheus, MonitoringOperator))
	}
	if u, err := url.Parse(expand(o.ParentURL, "r", "z.example", "ns")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Sprintf("parent url: %q is not an http(s) URL template", o.ParentURL))
	}
	known := map[string]bool{}
	for _, r := range cfg.AllRegions() {
		known[r.Name] = true
	}
	for _, r := range o.Regions {
		if !known[r] {
			errs = append(errs, fmt.Sprintf("region: %q is not a region of the file", r))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("render options: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Render returns the objects of every region (or of opts.Regions), keyed by
// region name, each list in apply order (the order of FileName: Namespace,
// ConfigMap, Services, workloads, then what refers to them).
// cfg must be a loaded file (config.Load or config.Parse: defaults set and
// validated). The origin must be a URL: an origin directory exists only on
// one machine.
func Render(cfg *config.CDN, opts Options) (map[string][]Object, error) {
	if cfg == nil {
		return nil, fmt.Errorf("render: no cdn file")
	}
	opts = opts.withDefaults()
	if err := opts.validate(cfg); err != nil {
		return nil, err
	}
	if cfg.Spec.Origin.URL == "" {
		return nil, fmt.Errorf("render: spec.origin.url is required on Kubernetes (spec.origin.dir %q exists only on this machine)", cfg.Spec.Origin.Dir)
	}
	if cfg.Spec.Routing.Geo.Database != "" {
		// The dns would fail to start without the database; shipping a
		// MaxMind file is not something a ConfigMap can do (1 MiB limit).
		return nil, fmt.Errorf("render: spec.routing.geo.database %q cannot be shipped in a ConfigMap yet; use spec.routing.geo.networks or another policy", cfg.Spec.Routing.Geo.Database)
	}
	cdnYAML, err := cdnFile(cfg)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, r := range opts.Regions {
		want[r] = true
	}
	out := map[string][]Object{}
	for _, ref := range cfg.AllRegions() {
		if len(want) > 0 && !want[ref.Name] {
			continue
		}
		r := regionRender{cfg: cfg, opts: opts, region: ref, cdnYAML: cdnYAML}
		objs, err := r.objects()
		if err != nil {
			return nil, fmt.Errorf("render region %s: %w", ref.Name, err)
		}
		sortObjects(objs)
		out[ref.Name] = objs
	}
	return out, nil
}

// Regions returns the keys of a Render result in a stable order.
func Regions(out map[string][]Object) []string {
	return slices.Sorted(maps.Keys(out))
}

// regionRender holds what one region's objects are built from.
type regionRender struct {
	cfg     *config.CDN
	opts    Options
	region  config.RegionRef
	cdnYAML string
}

func (r regionRender) objects() ([]Object, error) {
	edgeYAML, err := r.edgeConfig()
	if err != nil {
		return nil, err
	}
	objs := []Object{
		r.namespace(),
		r.configMap(edgeYAML),
	}
	objs = append(objs, r.edgeObjects(edgeYAML)...)
	objs = append(objs, r.dnsObjects()...)
	as, err := r.autoscalerObjects()
	if err != nil {
		return nil, err
	}
	objs = append(objs, as...)
	mon, err := r.monitoringObjects()
	if err != nil {
		return nil, err
	}
	return append(objs, mon...), nil
}

// ConfigName is the ConfigMap holding edge.yaml and kubecdn.yaml (the
// file the dns reads, which deploy rewrites as addresses become known).
const ConfigName = "kubecdn-config"

// Names of the objects, fixed so that peers, probes and the parent chain can
// name each other.
const (
	edgeName     = "kubecdn-edge"        // StatefulSet, headless Service, PDB, HPA, NetworkPolicy
	edgePublic   = "kubecdn-edge-public" // LoadBalancer Service for users
	dnsName      = "kubecdn-dns"         // Deployment, LoadBalancer Service, PDB, NetworkPolicy
	dnsAdminName = "kubecdn-dns-admin"   // ClusterIP Service of the dns admin port (rtt reports, metrics)
	configDir    = "/etc/kubecdn"

	edgePort      = 8080
	edgeAdminPort = 9090
	edgeTLSPort   = 8443
	tlsDir        = configDir + "/tls"
	dnsPort       = 5353
	dnsAdminPort  = 9053

	// Labels beyond the app.kubernetes.io ones.
	labelCDN       = "kubecdn.io/cdn"
	labelRegion    = "kubecdn.io/region"
	labelAutoscale = "kubecdn.io/autoscale"
	// LabelMonitoring on a namespace lets its pods (Prometheus) reach the
	// admin ports.
	LabelMonitoring = "kubecdn.io/monitoring"
	// LabelAdminAccess on a pod of the CDN's namespace lets it reach the
	// admin ports (a purge job, a debugging pod).
	LabelAdminAccess = "kubecdn.io/admin-access"
	// AnnotationConfigHash on the edge pod template changes with edge.yaml,
	// so a new configuration rolls the edges (they reload only on SIGHUP).
	AnnotationConfigHash = "kubecdn.io/config-hash"
)

// labels are the labels of every object of a component; name is the
// app.kubernetes.io/name ("kubecdn", "kubecdn-edge", "kubecdn-dns").
func (r regionRender) labels(name, component string) map[string]string {
	l := map[string]string{
		"app.kubernetes.io/name":       name,
		"app.kubernetes.io/part-of":    "kubecdn",
		"app.kubernetes.io/managed-by": "kubecdn",
		labelCDN:                       r.cfg.Metadata.Name,
		labelRegion:                    r.region.Name,
	}
	if component != "" {
		l["app.kubernetes.io/component"] = component
	}
	if r.region.Autoscale {
		l[labelAutoscale] = "true"
	}
	return l
}

// selector is the immutable subset of labels that picks a component's pods.
func (r regionRender) selector(name string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": name, labelCDN: r.cfg.Metadata.Name}
}

func (r regionRender) meta(name, appName, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: r.opts.Namespace, Labels: r.labels(appName, component)}
}

func expand(tmpl, region, zone, namespace string) string {
	return strings.NewReplacer("{region}", region, "{zone}", zone, "{namespace}", namespace).Replace(tmpl)
}

func dns1123Label(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return false
		}
	}
	return true
}
