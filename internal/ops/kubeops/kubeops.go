// Package kubeops lets the operator tools (kubecdn status, kubecdn purge,
// the status page) reach a deployed CDN the way kubecdn deploy reaches it:
// through each region's Kubernetes API server, with the region's own
// kubeconfig and context, never through a public port. It finds the edge
// and dns pods by the labels render puts on them and addresses their admin
// listeners through the pods' proxy subresource
// (/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH), so the admin ports stay
// behind the rendered NetworkPolicies.
//
// The result is a list of ops.Target whose admin URLs are those proxy URLs,
// and an *http.Client that routes each of them over its region's
// authenticated transport and adds the region's admin token (read from the
// Secret deploy made) in bearer.ProxyHeader: the API server takes the
// Authorization header for itself and removes it before proxying.
package kubeops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/bearer"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/render"
)

// DefaultTimeout bounds one region's API calls when Options leaves it zero.
const DefaultTimeout = 5 * time.Second

// adminPort is the name of the admin listener's container port in the
// rendered edge and dns pods.
const adminPort = "admin"

// Options configure a Source. Zero values take the documented defaults.
type Options struct {
	// Render names the namespace and the admin token Secret as the CDN was
	// deployed with (Namespace, AdminSecret; empty: render's defaults).
	Render render.Options
	// Timeout bounds each call to a region's API server (listing pods,
	// reading the token); if zero, DefaultTimeout.
	Timeout time.Duration
	// Token reads each region's admin token from its Secret, for purges;
	// status needs none.
	Token bool
	// RESTConfig reads a region's client configuration; if nil,
	// deploy.RESTConfig (kubeconfig and context as deploy uses them).
	RESTConfig func(config.Cluster) (*rest.Config, error)
}

// Source finds every region's admin listeners through its API server. It
// is a statuspage.Source; safe for concurrent use.
type Source struct {
	cfg  *config.CDN
	opts Options
	sel  map[string]selectors // by region

	mu      sync.Mutex
	regions map[string]*region // connected once, by region
	routes  map[string]*region // pod proxy base URL -> its region
}

// selectors pick a region's edge and dns pods.
type selectors struct{ edge, dns string }

// region is one connected region.
type region struct {
	host  string // the API server, for messages
	core  corev1client.CoreV1Interface
	rt    http.RoundTripper // authenticated to the API server
	token string            // the admin token, when Options.Token
}

// New prepares a Source for the CDN of cfg (a loaded file). It renders the
// regions' manifests to learn their pod labels; it contacts no cluster.
func New(cfg *config.CDN, opts Options) (*Source, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.RESTConfig == nil {
		opts.RESTConfig = deploy.RESTConfig
	}
	if opts.Render.Namespace == "" {
		opts.Render.Namespace = render.DefaultNamespace
	}
	if opts.Render.AdminSecret == "" {
		opts.Render.AdminSecret = render.DefaultAdminSecret
	}
	opts.Render.Regions = nil
	sel, err := podSelectors(cfg, opts.Render)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, opts: opts, sel: sel, regions: map[string]*region{}, routes: map[string]*region{}}, nil
}

// podSelectors reads, from the rendered workloads, the labels of the edge
// and dns pods of each region: the pods carry exactly their template's.
func podSelectors(cfg *config.CDN, ro render.Options) (map[string]selectors, error) {
	out, err := render.Render(cfg, ro)
	if err != nil {
		return nil, fmt.Errorf("finding the pods' labels: %w", err)
	}
	sel := map[string]selectors{}
	for name, objs := range out {
		var s selectors
		for _, o := range objs {
			kind := o.GetObjectKind().GroupVersionKind().Kind
			if kind != "StatefulSet" && kind != "Deployment" {
				continue
			}
			u, err := render.Unstructured(o)
			if err != nil {
				return nil, fmt.Errorf("region %s: %w", name, err)
			}
			l, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
			switch l["app.kubernetes.io/component"] {
			case "edge":
				s.edge = labels.SelectorFromSet(l).String()
			case "dns":
				s.dns = labels.SelectorFromSet(l).String()
			}
		}
		if s.edge == "" || s.dns == "" {
			return nil, fmt.Errorf("region %s: render made no edge or no dns workload", name)
		}
		sel[name] = s
	}
	return sel, nil
}

// Client reaches the admin URLs of the targets Regions returned, each over
// its region's API server; its Timeout is a backstop, the callers' contexts
// bound each request.
func (s *Source) Client() *http.Client {
	return &http.Client{Transport: router{s}, Timeout: 4 * s.opts.Timeout}
}

// Regions lists every region of the file, all at once: always-on regions
// are open; an autoscale region is open when its edges run. A region whose
// API server cannot be reached within Options.Timeout is returned with
// Target.Error (open if always-on, closed if autoscale: a closed region's
// cluster may well be gone). The error is nil: the regions say what failed.
func (s *Source) Regions(ctx context.Context) ([]ops.Target, error) {
	out := make([]ops.Target, len(s.cfg.AllRegions()))
	var views map[string]*ops.Autoscale
	var wg sync.WaitGroup
	wg.Go(func() { views = s.autoscaleViews(ctx) })
	s.Each(ctx, func(i int, t ops.Target) { out[i] = t })
	wg.Wait()
	for i := range out {
		out[i].Autoscale = views[out[i].Region]
	}
	return out, nil
}

// autoscaleViews reads the deployed autoscaler's state (the ConfigMap
// autoscale.KubeStateName in the first always-on region, where an
// autoscaler keeps it, in the cluster or not, unless it runs with
// --state-file) as status shows it: phase,
// since when, pin and the latest decision with its inputs. Nil when the
// file has no autoscale regions, no autoscaler has run, or the state
// cannot be read (the regions' own lines say whether their API servers
// answer).
func (s *Source) autoscaleViews(ctx context.Context) map[string]*ops.Autoscale {
	if len(s.cfg.Spec.Regions.Autoscale) == 0 || len(s.cfg.Spec.Regions.AlwaysOn) == 0 {
		return nil
	}
	home := s.cfg.AllRegions()[0]
	r, err := s.connect(home)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	st, found, err := autoscale.LoadKubeState(ctx, r.core.ConfigMaps(s.opts.Render.Namespace), autoscale.KubeStateName)
	if err != nil || !found {
		return nil
	}
	frozen := ""
	if st.Paused {
		frozen = "paused"
	}
	return autoscale.Views(st, frozen, nil, autoscale.Sample{})
}

// Each finds every region as Regions does and calls fn with each as soon
// as it is known (concurrently; i is the region's index in the file), so
// a region whose API server stalls delays no other. It returns when every
// fn has.
func (s *Source) Each(ctx context.Context, fn func(i int, t ops.Target)) {
	var wg sync.WaitGroup
	for i, ref := range s.cfg.AllRegions() {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
			t, err := s.region(rctx, ref)
			cancel()
			if err != nil {
				t = ops.Target{Region: ref.Name, State: ops.StateOpen, Error: err.Error()}
				if ref.Autoscale {
					t.State = ops.StateClosed
				}
			}
			fn(i, t)
		})
	}
	wg.Wait()
}

// region finds one region's pods (and token) and registers their routes.
func (s *Source) region(ctx context.Context, ref config.RegionRef) (ops.Target, error) {
	f, err := s.find(ctx, ref)
	if err = cmp.Or(err, f.tokErr); err != nil {
		return ops.Target{}, err
	}
	r, edges, dnss := f.r, f.edges, f.dns
	t := ops.Target{Region: ref.Name, State: ops.StateOpen}
	if ref.Autoscale && len(edges) == 0 {
		t.State = ops.StateClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range edges {
		if u, ok := r.proxyURL(p); ok {
			t.Admin = append(t.Admin, u)
			s.routes[u] = r
		}
	}
	// One dns admin per region: a ready one if any. Each region's dns knows
	// every region, and answers for its own clients only.
	for _, p := range append(filter(dnss, ready), dnss...) {
		if u, ok := r.proxyURL(p); ok {
			t.DNSAdmin = u
			s.routes[u] = r
			break
		}
	}
	return t, nil
}

// connect builds the region's clients once; a failure is tried again next
// time (the kubeconfig may be fixed meanwhile).
func (s *Source) connect(ref config.RegionRef) (*region, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.regions[ref.Name]; r != nil {
		return r, nil
	}
	rc, err := s.opts.RESTConfig(ref.Cluster)
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "kubecdn"
	rc.Timeout = s.opts.Timeout
	rc.QPS, rc.Burst = 50, 100
	core, err := corev1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("api server %s: %w", rc.Host, err)
	}
	rt, err := rest.TransportFor(rc)
	if err != nil {
		return nil, fmt.Errorf("api server %s: %w", rc.Host, err)
	}
	r := &region{host: rc.Host, core: core, rt: rt}
	s.regions[ref.Name] = r
	return r, nil
}

// pods lists the pods of a selector that are not being deleted, by name.
func (r *region) pods(ctx context.Context, ns, what, selector string) ([]corev1.Pod, error) {
	l, err := r.core.Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("api server %s: listing the %s pods in namespace %s: %w", r.host, what, ns, short(err))
	}
	out := filter(l.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp == nil })
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// readToken reads the admin token (key "token") of the region's Secret.
func (r *region) readToken(ctx context.Context, ns, name string) error {
	sec, err := r.core.Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("api server %s: reading the admin token (secret %s/%s): %w", r.host, ns, name, short(err))
	}
	tok := strings.TrimSpace(string(sec.Data["token"]))
	if tok == "" {
		return fmt.Errorf("api server %s: secret %s/%s has no key \"token\"", r.host, ns, name)
	}
	r.token = tok
	return nil
}

// proxyURL is the base URL of the pod's admin listener through the API
// server's pod proxy; false when the pod declares no admin port.
func (r *region) proxyURL(p corev1.Pod) (string, bool) {
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == adminPort {
				u := r.core.RESTClient().Get().Namespace(p.Namespace).Resource("pods").
					Name(p.Name + ":" + strconv.Itoa(int(cp.ContainerPort))).SubResource("proxy").URL()
				u.RawQuery = "" // client-go adds ?timeout=; the admin paths go after the base
				return strings.TrimRight(u.String(), "/"), true
			}
		}
	}
	return "", false
}

// short drops the request URL from a transport error (the caller names
// the API server and what was asked): "context deadline exceeded", "dial
// tcp ...: connection refused".
func short(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func ready(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func filter(ps []corev1.Pod, keep func(corev1.Pod) bool) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range ps {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// router sends each request to the API server of the region its URL
// belongs to. The admin token moves out of Authorization, which is the API
// server's (and which the region's transport fills with its own
// credential), into bearer.ProxyHeader: a token the caller set wins over
// the region's own.
type router struct{ s *Source }

func (rt router) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.URL.String()
	i := strings.Index(u, "/proxy")
	var r *region
	if i >= 0 {
		rt.s.mu.Lock()
		r = rt.s.routes[u[:i+len("/proxy")]]
		rt.s.mu.Unlock()
	}
	if r == nil {
		return nil, fmt.Errorf("%s: not a pod proxy URL of any region", u)
	}
	tok, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if tok == "" {
		tok = r.token
	}
	req = req.Clone(req.Context())
	req.Header.Del("Authorization")
	bearer.SetProxied(req, tok)
	return r.rt.RoundTrip(req)
}

// RegionNames are the file's regions in the order Regions and Each use.
func (s *Source) RegionNames() []string {
	var out []string
	for _, r := range s.cfg.AllRegions() {
		out = append(out, r.Name)
	}
	return out
}
