// Package kube runs the autoscaler against a CDN deployed on Kubernetes
// (kubecdn autoscale -f): an Actuator that opens a region with kubecdn
// deploy's own steps and closes it by pruning (or, in warm mode, by scaling
// its edges to zero), a Source that reads the demand of every dns replica
// and edge through the regions' API servers, and Run, which wires them to
// the controller under leader election with its state in the cluster.
//
// It lives apart from package autoscale because it needs deploy, render
// and kubeops (client-go and the whole render tree), which the decision,
// the controller and the local actuator of kubecdn up do not.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/infra"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// Reach finds the admin listeners of a region's pods; kubeops.Source
// reaches them through the region's API server.
type Reach interface {
	// Admins returns the admin base URLs of every edge and every dns
	// replica of the region (none for a region without pods).
	Admins(ctx context.Context, region string) (edges, dns []string, err error)
	// Client reaches the URLs Admins returned, with the region's admin
	// token.
	Client() *http.Client
}

// ErrNoInfra is returned in cold mode (spec.autoscale.mode cold) by an
// Actuator that was given no way to run kubecdn infra.
var ErrNoInfra = errors.New("spec.autoscale.mode cold creates and destroys the region's cluster with kubecdn infra, and this autoscaler has no tofu to run it (kubecdn autoscale --tofu, or tofu on PATH)")

// Actuator opens and closes regions of a deployed CDN. Start and Stop run
// kubecdn deploy (deploy.Run with Open or Close naming the region), so an
// opened region gets exactly what `kubecdn deploy` would give it; Route
// moves the region in or out of DNS; Warm fills its edges with the hot
// keys of the regions that served its users.
type Actuator struct {
	// CDN is the loaded file.
	CDN *config.CDN
	// Deploy are the options every deploy runs with: the same render
	// options as the user's `kubecdn deploy`, or the autoscaler would
	// re-render every region differently. Open, Close, DryRun and Drain
	// are set per step; Publisher is wrapped (see hidden).
	Deploy deploy.Options
	// Reach finds the regions' edges and dns replicas.
	Reach Reach
	// RESTConfig reaches a region's cluster to scale its edges in warm
	// mode; if nil, deploy.RESTConfig.
	RESTConfig func(config.Cluster) (*rest.Config, error)
	// Phase is where the controller has each region (for which regions
	// DNS may name and which must answer); if nil, always-on regions are
	// open and autoscale ones closed.
	Phase func(region string) autoscale.Phase
	// HotKeys and HotBytes bound what Warm fetches (count, and bytes of
	// objects); if zero, DefaultHotKeys and DefaultHotBytes.
	HotKeys  int
	HotBytes int64
	// Log gets what a step does not fail for (an edge's drain switch that
	// could not be set); if nil, nothing is logged.
	Log *slog.Logger
	// CallTimeout bounds each call to one admin listener; if zero, 5s.
	// Warm's POST, which waits for the fetches, gets the step's deadline.
	CallTimeout time.Duration
	// Infra runs kubecdn infra's step on one region (infra.Apply or
	// infra.Destroy) in cold mode: Start applies before it deploys, Reap
	// destroys a cluster closed longer than spec.autoscale.retain. Nil in
	// cold mode fails those steps with ErrNoInfra.
	Infra func(ctx context.Context, action infra.Action, region string) error

	// infraMu keeps an apply and a destroy of clusters from overlapping:
	// a region reopened while its cluster is being destroyed waits, then
	// creates it again.
	infraMu sync.Mutex
}

// Warming bounds when the Actuator leaves them zero.
const (
	DefaultHotKeys  = 500
	DefaultHotBytes = 256 << 20
)

var _ autoscale.Actuator = (*Actuator)(nil)

// Start applies the region's objects to its cluster and waits for its
// rollouts, without letting DNS answer with it: the dns replicas take it
// out of their answers before deploy gives them its addresses (and again
// after, for the region's own new dns), and an external publisher is
// given the records without it.
func (a *Actuator) Start(ctx context.Context, region string) error {
	if a.CDN.Spec.Autoscale.Mode == config.ModeCold {
		if err := a.runInfra(ctx, infra.Apply, region); err != nil {
			return fmt.Errorf("creating the cluster of %s: %w", region, err)
		}
	}
	kubecdnDNS := a.CDN.Spec.Publish.Provider == config.PublishKubecdn
	if kubecdnDNS {
		if err := a.routeDNS(ctx, region, false); err != nil {
			return fmt.Errorf("keeping %s out of the dns answers while it opens: %w", region, err)
		}
	}
	o := a.deployOptions(region, false)
	o.Open = []string{region}
	if err := a.runDeploy(ctx, o, region); err != nil {
		return err
	}
	if kubecdnDNS {
		if err := a.routeDNS(ctx, region, false); err != nil {
			return fmt.Errorf("keeping %s out of the dns answers while it warms: %w", region, err)
		}
	}
	return nil
}

// Route puts the region into DNS or takes it out: with kubecdn's dns, by
// the drain switch of every dns replica; with Route 53 or RFC 2136, by
// publishing the records of the regions DNS may name. Then the region's
// edges are told (adminapi.DrainPath) to close kept-alive connections while
// out, so clients that still hold one move to where DNS now sends them.
func (a *Actuator) Route(ctx context.Context, region string, in bool) error {
	var err error
	if a.CDN.Spec.Publish.Provider == config.PublishKubecdn {
		err = a.routeDNS(ctx, region, in)
	} else {
		err = a.republish(ctx, region, in)
	}
	if err == nil {
		a.drainEdges(ctx, region, !in)
	}
	return err
}

// drainEdges sets the drain switch of the region's edges, best effort: a
// drain is correct without it (the edges serve until their load is near
// zero), only slower for clients that keep connections alive, so a failure
// is logged and the step goes on.
func (a *Actuator) drainEdges(ctx context.Context, region string, drain bool) {
	edges, _, err := a.Reach.Admins(ctx, region)
	for _, e := range edges {
		cctx, cancel := context.WithTimeout(ctx, a.callTimeout())
		var got adminapi.DrainRequest
		err = errors.Join(err, call(cctx, a.Reach.Client(), http.MethodPost, e+adminapi.DrainPath, adminapi.DrainRequest{Drain: drain}, &got))
		cancel()
	}
	if err != nil && a.Log != nil {
		a.Log.Warn("autoscale: setting the edges' drain switch failed; clients on kept-alive connections move more slowly", "region", region, "drain", drain, "err", err)
	}
}

// Stop closes the region: in prune mode deploy leaves DNS (already left:
// Route went first) and deletes its objects; in warm mode its edges are
// scaled to zero and every other object stays, so reopening is one
// rollout.
func (a *Actuator) Stop(ctx context.Context, region string) error {
	if a.CDN.Spec.Autoscale.Mode == config.ModeWarm {
		return a.scaleEdges(ctx, region, 0)
	}
	o := a.deployOptions(region, false)
	o.Close = []string{region}
	return a.runDeploy(ctx, o, region)
}

func (a *Actuator) runInfra(ctx context.Context, action infra.Action, region string) error {
	if a.Infra == nil {
		return ErrNoInfra
	}
	a.infraMu.Lock()
	defer a.infraMu.Unlock()
	return a.Infra(ctx, action, region)
}

// Reap destroys, in cold mode, the cluster of every autoscale region that
// has been closed longer than spec.autoscale.retain and still has one (its
// context is in the kubeconfig kubecdn infra manages), one region at a
// time; it returns the regions destroyed. Stop leaves the cluster (a
// region whose demand comes back within retain reopens in one deploy), so
// this is where cold mode saves the cluster's cost. A region reopened
// meanwhile is left alone: the phase is read again (from regions, the
// controller's current states) under the lock Start's apply takes.
func (a *Actuator) Reap(ctx context.Context, now time.Time, regions func() []autoscale.Region) ([]string, error) {
	phaseSince := func(name string) (autoscale.Phase, time.Time) {
		for _, r := range regions() {
			if r.Name == name {
				return r.Phase, r.Since
			}
		}
		return "", time.Time{}
	}
	if a.CDN.Spec.Autoscale.Mode != config.ModeCold {
		return nil, nil
	}
	retain := a.CDN.Spec.Autoscale.RetainOr()
	var done []string
	var errs []error
	for _, r := range a.CDN.Spec.Regions.Autoscale {
		ph, since := phaseSince(r.Name)
		if ph != autoscale.Closed || since.IsZero() || now.Sub(since) < retain || !clusterExists(r.Cluster) {
			continue
		}
		err := func() error {
			if a.Infra == nil {
				return ErrNoInfra
			}
			a.infraMu.Lock()
			defer a.infraMu.Unlock()
			if ph, _ := phaseSince(r.Name); ph != autoscale.Closed {
				return nil
			}
			return a.Infra(ctx, infra.Destroy, r.Name)
		}()
		if err != nil {
			errs = append(errs, fmt.Errorf("destroying the cluster of %s (closed since %s): %w", r.Name, since.Format(time.RFC3339), err))
			continue
		}
		if ph, _ := phaseSince(r.Name); ph == autoscale.Closed {
			done = append(done, r.Name)
		}
	}
	return done, errors.Join(errs...)
}

// clusterExists says whether the kubeconfig kubecdn infra manages still
// has the region's context: apply adds it, destroy removes it.
func clusterExists(c config.Cluster) bool {
	kc, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return false
	}
	_, ok := kc.Contexts[c.Context]
	return ok
}

// deployOptions are the Options of one step on subject: no drain wait
// (the controller drained already) and a publisher that does not name
// the regions DNS must not name (see hidden).
func (a *Actuator) deployOptions(subject string, show bool) deploy.Options {
	o := a.Deploy
	o.DryRun = false
	o.Open, o.Close = nil, nil
	o.Drain = -1
	if o.Publisher != nil {
		o.Publisher = hiding{next: o.Publisher, hidden: a.hidden(subject, show)}
	}
	return o
}

// runDeploy runs one deploy and fails with the regions that failed.
func (a *Actuator) runDeploy(ctx context.Context, o deploy.Options, region string) error {
	res, err := deploy.Run(ctx, a.CDN, o)
	if err != nil {
		return fmt.Errorf("deploy for %s: %w", region, err)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("deploy for %s: %w", region, err)
	}
	return nil
}

// hidden says which regions DNS must not name while subject is being
// moved (shown or not): the subject as asked, and every autoscale region
// the controller does not have open (opening, warming, draining, closed).
// A deploy run for one region republishes all of them, and must not put
// back a region that is draining.
func (a *Actuator) hidden(subject string, show bool) func(string) bool {
	autoscaled := map[string]bool{}
	for _, r := range a.CDN.Spec.Regions.Autoscale {
		autoscaled[r.Name] = true
	}
	return func(region string) bool {
		if region == subject {
			return !show
		}
		return autoscaled[region] && a.phase(region) != autoscale.Open
	}
}

func (a *Actuator) phase(region string) autoscale.Phase { return phaseOf(a.CDN, a.Phase, region) }

// mustAnswer reports whether a region that cannot be reached fails a step
// that needs every dns replica: always-on regions, the subject, and any
// region the controller has running. A closed region's cluster may be
// gone.
func (a *Actuator) mustAnswer(region, subject string) bool {
	return region == subject || a.phase(region) != autoscale.Closed
}

// hiding is a Publisher that leaves out the targets of hidden regions.
type hiding struct {
	next   publish.Publisher
	hidden func(region string) bool
}

func (h hiding) Publish(ctx context.Context, d publish.Desired, dryRun bool) ([]publish.Change, error) {
	names := make([]publish.Name, 0, len(d.Names))
	for _, n := range d.Names {
		n.Targets = slices.DeleteFunc(slices.Clone(n.Targets), func(t publish.Target) bool { return h.hidden(t.Region) })
		names = append(names, n)
	}
	d.Names = names
	return h.next.Publish(ctx, d, dryRun)
}

// republish gives the external publisher the records of every region
// deploy last read addresses for, without the hidden ones: deploy's own
// publish step (deploy.Desired), from the state deploy keeps in the
// always-on regions.
func (a *Actuator) republish(ctx context.Context, region string, in bool) error {
	if a.Deploy.Publisher == nil {
		return fmt.Errorf("spec.publish.provider is %s but no publisher was set up", a.CDN.Spec.Publish.Provider)
	}
	st, err := a.deployState(ctx)
	if err != nil {
		return err
	}
	hide := a.hidden(region, in)
	addrs := map[string]deploy.RegionState{}
	for name, rs := range st.Regions {
		if rs.LeftDNS == nil && (len(rs.Edges) > 0 || len(rs.Endpoints) > 0) && !hide(name) {
			addrs[name] = rs
		}
	}
	if in {
		if _, ok := addrs[region]; !ok {
			return fmt.Errorf("route %s in: deploy's state has no address for it", region)
		}
	}
	if _, err := a.Deploy.Publisher.Publish(ctx, deploy.Desired(a.CDN, addrs), false); err != nil {
		return fmt.Errorf("publishing dns with %s %s: %w", region, map[bool]string{true: "in", false: "out"}[in], err)
	}
	return nil
}

// deployState reads the freshest of the deploy states the always-on
// regions keep (deploy.StateName).
func (a *Actuator) deployState(ctx context.Context) (deploy.State, error) {
	var best deploy.State
	var errs []error
	found := false
	for _, r := range a.CDN.Spec.Regions.AlwaysOn {
		cs, err := a.clientset(r.Cluster)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
			continue
		}
		st, ok, err := readDeployState(ctx, cs, a.namespace(), a.callTimeout())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
			continue
		}
		if ok && (!found || st.Updated.After(best.Updated)) {
			best, found = st, true
		}
	}
	if !found {
		return best, fmt.Errorf("no always-on region holds deploy's state: %w", errors.Join(errs...))
	}
	return best, nil
}

// scaleEdges sets the replicas of the region's edge StatefulSets (warm
// mode's stop). The HorizontalPodAutoscaler leaves a target at zero
// alone, and the next deploy of the region (Start) sets its count back.
func (a *Actuator) scaleEdges(ctx context.Context, region string, n int32) error {
	ref, ok := regionRef(a.CDN, region)
	if !ok {
		return fmt.Errorf("%q is not a region of the file", region)
	}
	cs, err := a.clientset(ref.Cluster)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.callTimeout())
	defer cancel()
	sts := cs.AppsV1().StatefulSets(a.namespace())
	l, err := sts.List(ctx, metav1.ListOptions{LabelSelector: edgeSelector(a.CDN)})
	if err != nil {
		return fmt.Errorf("%s: listing the edges: %w", region, err)
	}
	for _, s := range l.Items {
		sc, err := sts.GetScale(ctx, s.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("%s: statefulset %s: %w", region, s.Name, err)
		}
		sc.Spec.Replicas = n
		if _, err := sts.UpdateScale(ctx, s.Name, sc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("%s: scaling statefulset %s to %d: %w", region, s.Name, n, err)
		}
	}
	return nil
}

// edgeSelector picks the CDN's edge workloads by the labels render puts on
// them.
func edgeSelector(cfg *config.CDN) string {
	return "app.kubernetes.io/component=edge,app.kubernetes.io/managed-by=kubecdn,kubecdn.io/cdn=" + cfg.Metadata.Name
}

func (a *Actuator) clientset(c config.Cluster) (kubernetes.Interface, error) {
	return clientsetFor(a.RESTConfig, c, a.callTimeout())
}

func (a *Actuator) namespace() string { return namespaceOf(a.Deploy.Render) }

func (a *Actuator) callTimeout() time.Duration {
	if a.CallTimeout > 0 {
		return a.CallTimeout
	}
	return 5 * time.Second
}

func regionRef(cfg *config.CDN, name string) (config.RegionRef, bool) {
	for _, r := range cfg.AllRegions() {
		if r.Name == name {
			return r, true
		}
	}
	return config.RegionRef{}, false
}
