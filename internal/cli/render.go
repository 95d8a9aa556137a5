package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/render"
)

// runRender writes each region's Kubernetes manifests for kubectl apply or
// a GitOps tool: DIR/REGION/NN-kind-name.yaml, or one stream with -o -.
func runRender(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "kubecdn.yaml", "the CDN file")
	out := fs.String("o", "", `output directory (one subdirectory per region), or "-" for one YAML stream on stdout (required)`)
	var regions stringList
	renderOpts := renderFlags(fs)
	fs.Var(&regions, "region", "render only this region (repeatable; default every region of the file)")
	hand := handoverFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kubecdn render -f FILE -o DIR [--image REF] [--format argocd|karmada] [flags]\n\nWrites the Kubernetes manifests of every region to DIR/REGION (with the\napps of spec.apps), ready for kubectl apply -f DIR/REGION or a GitOps tool;\nevery Namespace is in DIR/REGION/00-namespaces.yaml, which a server-side\ndry run on a fresh cluster needs applied first. The edges' admin token (which\nthe dns also requires of the edges' rtt reports) is read from the Secret\nnamed by --admin-secret, which you create yourself:\n  kubectl -n kubecdn create secret generic kubecdn-admin --from-literal=token=...\n\n--format argocd adds DIR/argocd-applicationset.yaml, an Argo CD ApplicationSet\nthat syncs DIR/REGION to each registered region's cluster; --format karmada\nwrites DIR/karmada instead: the objects as Karmada resource templates with\nPropagationPolicies naming the open regions (always-on and --open) and\nOverridePolicies for what differs per region.")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "kubecdn render: -o DIR is required")
		return 2
	}
	o, err := renderOpts()
	if err == nil {
		err = hand.check(*out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn render: %v\n", err)
		return 2
	}
	o.Regions = regions
	cfg, err := config.Load(*file)
	if err != nil {
		printConfigErrors(stderr, *file, err)
		return 1
	}
	objs, err := render.Render(cfg, o)
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn render: %v\n", err)
		return 1
	}
	// spec.apps: the user's own manifests, as deploy would apply them.
	loaded, err := apps.LoadAll(cfg)
	if err == nil {
		err = render.WithApps(cfg, loaded, objs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kubecdn render: %v\n", err)
		return 1
	}
	if hand.format != formatDirs {
		if err := hand.write(cfg, objs, *out, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "kubecdn render: %v\n", err)
			return 1
		}
		return 0
	}
	if *out == "-" {
		for i, region := range render.Regions(objs) {
			b, err := render.MarshalAll(objs[region])
			if err != nil {
				fmt.Fprintf(stderr, "kubecdn render: %v\n", err)
				return 1
			}
			if i > 0 {
				fmt.Fprint(stdout, "---\n")
			}
			fmt.Fprintf(stdout, "# region: %s\n%s", region, b)
		}
		return 0
	}
	if err := render.WriteDir(*out, objs); err != nil {
		fmt.Fprintf(stderr, "kubecdn render: %v\n", err)
		return 1
	}
	for _, region := range render.Regions(objs) {
		fmt.Fprintf(stderr, "kubecdn render: %s: %d objects in %s/%s\n", region, len(objs[region]), *out, region)
	}
	return 0
}

// monitoringFlag is --monitoring: alone it means a Prometheus per region,
// --monitoring=operator the Prometheus Operator's objects.
type monitoringFlag struct{ m *render.Monitoring }

func (f monitoringFlag) IsBoolFlag() bool { return true }

func (f monitoringFlag) String() string {
	if f.m == nil {
		return ""
	}
	return string(*f.m)
}

func (f monitoringFlag) Set(v string) error {
	switch v {
	case "true", string(render.MonitoringPrometheus):
		*f.m = render.MonitoringPrometheus
	case "false":
		*f.m = render.MonitoringNone
	case string(render.MonitoringOperator):
		*f.m = render.MonitoringOperator
	default:
		return fmt.Errorf("%q: want --monitoring (a Prometheus per region) or --monitoring=operator", v)
	}
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// defaultImage is the release image matching this binary, else the latest.
func defaultImage(version string) string {
	if regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(version) {
		return "ghcr.io/kubecdn/kubecdn:" + version
	}
	return render.DefaultImage
}

// renderFlags defines the flags render and deploy share (the choices the
// CDN file does not make) and returns a function that checks them after
// parsing and returns the Options.
func renderFlags(fs *flag.FlagSet) func() (render.Options, error) {
	var o render.Options
	fs.StringVar(&o.Image, "image", defaultImage(Version), "container image of kubecdn")
	fs.StringVar(&o.Namespace, "namespace", render.DefaultNamespace, "namespace of every object")
	edgeReplicas := fs.Int("edge-replicas", render.DefaultEdgeReplicas, "edges per region (StatefulSet replicas, HPA minimum, peer list)")
	maxEdgeReplicas := fs.Int("max-edge-replicas", render.DefaultMaxEdgeReplicas, "HPA maximum of edges per region")
	dnsReplicas := fs.Int("dns-replicas", render.DefaultDNSReplicas, "dns replicas per region")
	fs.StringVar(&o.ParentURL, "parent-url", render.DefaultParentURL(), "URL of a parent region's edges; {region}, {zone} and {namespace} are replaced")
	fs.StringVar(&o.AdminSecret, "admin-secret", render.DefaultAdminSecret, `Secret (key "token") with the admin token of the edges and the dns; render references it, deploy creates it with a random token when missing`)
	fs.StringVar(&o.HopSecret, "hop-secret", render.DefaultHopSecret, `Secret (key "key") with the hop key edges authenticate each other with, the same in every region; render references it, deploy creates it with one random key for every region when missing`)
	fs.Func("tls-secret", "a Kubernetes TLS Secret (tls.crt, tls.key) the edges serve HTTPS with on port 443, chosen by SNI (repeatable)", func(v string) error {
		o.TLSSecrets = append(o.TLSSecrets, v)
		return nil
	})
	fs.StringVar(&o.StorageClass, "storage-class", "", "storage class of the disk tier's volume claims (default: the cluster's)")
	fs.BoolVar(&o.ServiceMonitor, "service-monitor", false, "also render Prometheus Operator ServiceMonitors")
	fs.Var(monitoringFlag{&o.Monitoring}, "monitoring", `monitoring per region: --monitoring adds a Prometheus (scraping the edges and the dns, with kubecdn's alert rules); --monitoring=operator adds ServiceMonitors and a PrometheusRule for a cluster that runs the Prometheus Operator`)
	fs.StringVar(&o.PrometheusImage, "prometheus-image", render.DefaultPrometheusImage, "image of the Prometheus that --monitoring adds")
	return func() (render.Options, error) {
		for _, c := range []struct {
			name string
			v    int
		}{{"edge-replicas", *edgeReplicas}, {"max-edge-replicas", *maxEdgeReplicas}, {"dns-replicas", *dnsReplicas}} {
			if c.v < 1 || c.v > 1000 {
				return o, fmt.Errorf("--%s: %d, want 1 to 1000", c.name, c.v)
			}
		}
		o.EdgeReplicas, o.MaxEdgeReplicas, o.DNSReplicas = int32(*edgeReplicas), int32(*maxEdgeReplicas), int32(*dnsReplicas)
		if !flagSet(fs, "max-edge-replicas") {
			o.MaxEdgeReplicas = 0 // Render's default: at least the edge replicas
		}
		return o, nil
	}
}
