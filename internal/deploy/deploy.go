// Package deploy puts the CDN on one Kubernetes cluster per region and keeps
// every cluster in sync with the CDN file (kubecdn deploy).
//
// For each region, in parallel (bounded), Run applies the objects render
// makes plus the user's apps with server-side apply (field manager
// "kubecdn"), labels all of them as kubecdn's, prunes what an earlier deploy
// applied and the file no longer names, waits for the rollouts and reads the
// load balancers' addresses. Then it publishes DNS: kubecdn's own dns in
// every region gets every region's addresses, or an external Publisher
// (Route 53, RFC 2136) gets one record set per region. A region removed from
// the file leaves DNS first; its objects are deleted a TTL later, so no
// resolver is still sending users to it.
//
// Secrets are never applied: the edges' admin token (one per region) and
// the hop key (one for the whole CDN, read from every region before any is
// applied, see hopkey.go) are created where missing and never changed.
//
// What deploy must remember between runs (the inventory for pruning, how to
// reach each region, the last known addresses) lives in a ConfigMap in each
// region (StateName), so there is no local state file to lose.
package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/render"
)

// Options tune a deploy. Zero values take the documented defaults.
type Options struct {
	// Render chooses the image, namespace, replica counts, TLS secrets...
	// (Regions is ignored: deploy decides which regions are active.)
	Render render.Options
	// DryRun sends every change as a server-side dry run and reports what
	// would change; nothing in any cluster or DNS changes.
	DryRun bool
	// Parallel is how many regions are worked on at once; if zero, 4.
	Parallel int
	// Timeout bounds one region's rollouts and load-balancer addresses; if
	// zero, 10 minutes.
	Timeout time.Duration
	// Poll is the interval of rollout and address checks; if zero, 1s.
	Poll time.Duration
	// Drain is how long a removed region stays up after leaving DNS, so
	// that cached answers expire; if zero, the file's routing TTL. Negative
	// means no wait.
	Drain time.Duration
	// Open and Close name autoscale regions to open (deploy) and close
	// (leave DNS, then tear down). Opened regions stay open in later runs.
	Open, Close []string
	// Publisher is the external DNS provider for spec.publish.provider
	// route53 or rfc2136; nil with provider kubecdn.
	Publisher publish.Publisher
	// Out gets one progress line per event, prefixed with the region.
	Out io.Writer
	Log *slog.Logger
	// Connect reaches a region's cluster; if nil, Connect.
	Connect func(config.Cluster) (*Cluster, error)
	// Resolver resolves load-balancer host names for kubecdn's dns; if
	// nil, net.DefaultResolver.
	Resolver Resolver
	Now      func() time.Time
	// Rand makes the admin tokens and the hop key; if nil, crypto/rand.
	Rand io.Reader
	// Sleep waits d or until ctx ends; if nil, a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o Options) withDefaults(cfg *config.CDN) Options {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Drain == 0 {
		o.Drain = cfg.Spec.Routing.TTL.D()
	}
	if o.Drain < 0 {
		o.Drain = 0
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Connect == nil {
		o.Connect = Connect
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Sleep == nil {
		o.Sleep = publish.Sleep
	}
	o.Render.Regions = nil
	if o.Render.Namespace == "" {
		o.Render.Namespace = render.DefaultNamespace
	}
	return o
}

// Change is one object created, configured (changed), pruned or deleted.
type Change struct {
	Action string // "created", "configured", "pruned", "deleted"
	Ref    Ref
}

// RegionResult is what happened in one region.
type RegionResult struct {
	Region string
	// Removed is set for a region removed from the file (or closed).
	Removed bool
	Changes []Change
	// Unchanged counts objects applied that did not change.
	Unchanged int
	// Addresses read from the load balancers (when the region got that far).
	Addresses *RegionState
	Took      time.Duration
	Err       error
}

// Count returns how many changes have the action.
func (r RegionResult) Count(action string) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == action {
			n++
		}
	}
	return n
}

// Result is the outcome of a deploy.
type Result struct {
	Regions []RegionResult
	// DNS lists what the external publisher changed (or would change);
	// empty with provider kubecdn, whose changes are the regions'
	// kubecdn-config ConfigMaps (reported in the output).
	DNS []publish.Change
	// DNSErr is why DNS was not fully published (then removed regions are
	// not torn down).
	DNSErr error
	// HopErr is what about the regions' hop key Secrets needs a person:
	// they disagree (then none is created anywhere), or one holds no
	// usable key. Deploy never changes a hop Secret that exists.
	HopErr error
}

// Err joins every region's error, the DNS error and the hop key error; nil
// when all went well.
func (r Result) Err() error {
	var errs []error
	for _, rr := range r.Regions {
		if rr.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rr.Region, rr.Err))
		}
	}
	if r.DNSErr != nil {
		errs = append(errs, fmt.Errorf("dns: %w", r.DNSErr))
	}
	if r.HopErr != nil {
		errs = append(errs, fmt.Errorf("hop key: %w", r.HopErr))
	}
	return errors.Join(errs...)
}

// Failed counts the regions that failed.
func (r Result) Failed() int {
	n := 0
	for _, rr := range r.Regions {
		if rr.Err != nil {
			n++
		}
	}
	return n
}

type deployer struct {
	cfg  *config.CDN
	opts Options
	mu   sync.Mutex // guards out
	// state is the freshest state found in the regions.
	state    State
	clusters map[string]*Cluster
	apps     []*apps.App
	// hop is the CDN's hop key, chosen before any region is applied.
	hop hopPlan
}

func (d *deployer) printf(region, format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.opts.Out, "%-14s %s\n", region, fmt.Sprintf(format, args...))
}

// Run deploys cfg to every active region: the always-on regions and the
// open autoscale ones. A region that fails is reported in its RegionResult
// and the others go on; Result.Err says whether anything failed. An error
// return means nothing was attempted (a bad option or file).
func Run(ctx context.Context, cfg *config.CDN, opts Options) (Result, error) {
	opts = opts.withDefaults(cfg)
	if p := cfg.Spec.Publish.Provider; p != config.PublishKubecdn && opts.Publisher == nil {
		return Result{}, fmt.Errorf("deploy: spec.publish.provider is %s but no publisher was set up", p)
	}
	autoscale := map[string]bool{}
	for _, r := range cfg.Spec.Regions.Autoscale {
		autoscale[r.Name] = true
	}
	for _, n := range append(slices.Clone(opts.Open), opts.Close...) {
		if !autoscale[n] {
			return Result{}, fmt.Errorf("deploy: %q is not an autoscale region of the file (only those open and close)", n)
		}
	}
	if _, err := render.Render(cfg, opts.Render); err != nil {
		return Result{}, fmt.Errorf("deploy: %w", err)
	}
	d := &deployer{cfg: cfg, opts: opts, clusters: map[string]*Cluster{}}
	for _, a := range cfg.Spec.Apps {
		loaded, err := apps.Load(cfg, a)
		if err != nil {
			return Result{}, fmt.Errorf("deploy: %w", err)
		}
		d.apps = append(d.apps, loaded)
	}
	return d.run(ctx)
}

func (d *deployer) run(ctx context.Context) (Result, error) {
	var res Result
	results := map[string]*RegionResult{}
	fail := func(name string, err error) {
		r := results[name]
		if r == nil {
			r = &RegionResult{Region: name}
			results[name] = r
		}
		if r.Err == nil {
			r.Err = err
		}
	}

	// 1. Reach the always-on regions and learn the state: which autoscale
	// regions are open, which regions were removed from the file.
	always := d.cfg.Spec.Regions.AlwaysOn
	states := make([]State, len(always))
	errs := make([]error, len(always))
	d.parallel(ctx, len(always), func(i int) {
		c, err := d.opts.Connect(always[i].Cluster)
		if err != nil {
			errs[i] = err
			return
		}
		st, _, err := c.readState(ctx, d.opts.Render.Namespace)
		if err != nil {
			errs[i] = err
			return
		}
		d.mu.Lock()
		d.clusters[always[i].Name] = c
		d.mu.Unlock()
		states[i] = st
	})
	for i, err := range errs {
		if err != nil {
			fail(always[i].Name, err)
			d.printf(always[i].Name, "failed: %v", err)
		}
		if states[i].Updated.After(d.state.Updated) {
			d.state = states[i]
		}
	}
	if d.state.Regions == nil {
		d.state.Regions = map[string]RegionState{}
	}
	active, removed := d.activeRegions()

	// The hop key every region must share, from the regions that hold one,
	// decided before any region is applied (they are applied in parallel).
	skip := map[string]bool{}
	for name := range results {
		skip[name] = true
	}
	var hopFailed map[string]error
	d.hop, hopFailed = d.planHopKey(ctx, active, skip)
	res.HopErr = d.hop.err
	for _, r := range active {
		if err := hopFailed[r.Name]; err != nil {
			fail(r.Name, err)
			d.printf(r.Name, "failed: %v", err)
		}
	}

	// 2. Apply every active region, wait for it, read its addresses.
	unreachable := map[string]bool{}
	for name := range results {
		unreachable[name] = true
	}
	known := d.addressed(ctx, d.knownAddresses())
	d.parallel(ctx, len(active), func(i int) {
		r := active[i]
		if unreachable[r.Name] {
			return // reported
		}
		rr := d.deployRegion(ctx, r, known)
		d.mu.Lock()
		results[r.Name] = &rr
		d.mu.Unlock()
	})
	for _, r := range active {
		if results[r.Name] == nil {
			results[r.Name] = &RegionResult{Region: r.Name, Err: ctx.Err()}
		}
	}

	// 3. Addresses: fresh where read, else the last known ones.
	addrs := map[string]RegionState{}
	now := d.opts.Now()
	next := State{CDN: d.cfg.Metadata.Name, Updated: now, Regions: map[string]RegionState{}}
	for _, r := range active {
		st := d.state.Regions[r.Name]
		st.Kubeconfig, st.Context, st.Provider, st.Open = r.Cluster.Kubeconfig, r.Cluster.Context, r.Provider, r.Autoscale
		st.LeftDNS = nil
		if a := results[r.Name].Addresses; a != nil {
			st.Edges, st.DNS, st.Endpoints = a.Edges, a.DNS, a.Endpoints
		}
		next.Regions[r.Name] = st
		if len(st.Edges) > 0 || len(st.Endpoints) > 0 {
			addrs[r.Name] = st
		}
	}
	for _, name := range removed {
		st := d.state.Regions[name]
		if st.LeftDNS == nil {
			st.LeftDNS = &now
		}
		next.Regions[name] = st
	}

	// 4. DNS, without the removed regions.
	res.DNS, res.DNSErr = d.publishDNS(ctx, active, results, addrs)

	// 5. Removed regions: after the TTL, delete their objects.
	if len(removed) > 0 && res.DNSErr != nil {
		for _, name := range removed {
			results[name] = &RegionResult{Region: name, Removed: true, Err: fmt.Errorf("not torn down: it may still be in DNS (%v)", res.DNSErr)}
		}
	} else {
		for _, name := range removed {
			rr := d.removeRegion(ctx, name, next.Regions[name])
			results[name] = &rr
			if rr.Err == nil && !d.opts.DryRun {
				delete(next.Regions, name)
			}
		}
	}

	// 6. Remember it all in every active region.
	if !d.opts.DryRun {
		for _, r := range active {
			rr := results[r.Name]
			if c := d.clusters[r.Name]; c != nil {
				if err := d.writeRegions(ctx, c, r.Name, next); err != nil && rr.Err == nil {
					rr.Err = err
				}
			}
		}
	}
	for _, r := range active {
		res.Regions = append(res.Regions, *results[r.Name])
	}
	for _, name := range removed {
		res.Regions = append(res.Regions, *results[name])
	}
	for name, rr := range results { // unreachable regions not active (closed)
		if !slices.ContainsFunc(res.Regions, func(x RegionResult) bool { return x.Region == name }) {
			res.Regions = append(res.Regions, *rr)
		}
	}
	return res, nil
}

// activeRegions returns the regions to deploy (always-on, then open
// autoscale ones, in file order) and the regions to remove (in the state
// but no longer in the file, or closed), sorted.
func (d *deployer) activeRegions() ([]config.RegionRef, []string) {
	var active []config.RegionRef
	inFile := map[string]bool{}
	for _, r := range d.cfg.AllRegions() {
		inFile[r.Name] = true
		switch {
		case !r.Autoscale:
			active = append(active, r)
		case slices.Contains(d.opts.Close, r.Name):
		case slices.Contains(d.opts.Open, r.Name) || d.state.Regions[r.Name].Open:
			active = append(active, r)
		}
	}
	var removed []string
	for name := range d.state.Regions {
		if !inFile[name] || slices.Contains(d.opts.Close, name) {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	return active, removed
}

// parallel runs f(0..n-1) with at most Options.Parallel at once.
func (d *deployer) parallel(ctx context.Context, n int, f func(i int)) {
	sem := make(chan struct{}, d.opts.Parallel)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

// addressed is the CDN file with the addresses in addrs (WithAddresses);
// a load-balancer name that does not resolve is reported, not fatal.
func (d *deployer) addressed(ctx context.Context, addrs map[string]RegionState) *config.CDN {
	cfg, errs := WithAddresses(ctx, d.cfg, addrs, d.opts.Resolver)
	for _, err := range errs {
		d.printf("dns", "%v", err)
	}
	return cfg
}

// objectsFor is everything one region gets: render's objects for it from
// cfg (the file with the addresses known so far, see addressed) and the
// apps that run there.
func (d *deployer) objectsFor(region string, cfg *config.CDN) ([]*unstructured.Unstructured, error) {
	ro := d.opts.Render
	ro.Regions = []string{region}
	out, err := render.Render(cfg, ro)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, o := range out[region] {
		u, err := render.Unstructured(o)
		if err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
	for _, a := range d.apps {
		if !slices.Contains(a.Regions(d.cfg), region) {
			continue
		}
		more, err := a.ForRegion(region)
		if err != nil {
			return nil, err
		}
		objs = append(objs, more...)
	}
	return objs, nil
}

func (d *deployer) knownAddresses() map[string]RegionState {
	out := map[string]RegionState{}
	for name, st := range d.state.Regions {
		if st.LeftDNS == nil && (len(st.Edges) > 0 || len(st.Endpoints) > 0) {
			out[name] = st
		}
	}
	return out
}

// setLabels marks u as kubecdn's: the CDN, region and managed-by labels
// always win (pruning and teardown find objects by them); the others only
// where the object has none of its own.
func (d *deployer) setLabels(u *unstructured.Unstructured, region string) {
	ls := u.GetLabels()
	if ls == nil {
		ls = map[string]string{}
	}
	for k, v := range d.labels(region) {
		if _, ok := ls[k]; !ok || k == "kubecdn.io/cdn" || k == "kubecdn.io/region" || k == "app.kubernetes.io/managed-by" {
			ls[k] = v
		}
	}
	u.SetLabels(ls)
}

func (d *deployer) labels(region string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/managed-by": "kubecdn",
		"app.kubernetes.io/part-of":    "kubecdn",
		"kubecdn.io/cdn":               d.cfg.Metadata.Name,
		"kubecdn.io/region":            region,
	}
}

func (d *deployer) deployRegion(ctx context.Context, r config.RegionRef, known *config.CDN) (rr RegionResult) {
	start := d.opts.Now()
	rr.Region = r.Name
	defer func() {
		rr.Took = d.opts.Now().Sub(start)
		switch {
		case rr.Err != nil:
			d.printf(r.Name, "failed: %v", rr.Err)
		case d.opts.DryRun:
			d.printf(r.Name, "dry run: %s", summary(rr))
		default:
			d.printf(r.Name, "ready in %s: %s", rr.Took.Round(100*time.Millisecond), addressLine(rr.Addresses))
		}
	}()
	d.mu.Lock()
	c := d.clusters[r.Name]
	d.mu.Unlock()
	if c == nil {
		var err error
		if c, err = d.opts.Connect(r.Cluster); err != nil {
			rr.Err = err
			return rr
		}
		d.mu.Lock()
		d.clusters[r.Name] = c
		d.mu.Unlock()
	}
	ns := d.opts.Render.Namespace
	prev, _, err := c.readState(ctx, ns)
	if err != nil {
		rr.Err = err
		return rr
	}
	objs, err := d.objectsFor(r.Name, known)
	if err != nil {
		rr.Err = err
		return rr
	}
	for _, o := range objs {
		d.setLabels(o, r.Name)
	}
	if objs, err = d.withNamespaces(ctx, c, r.Name, objs, prev.Inventory); err != nil {
		rr.Err = err
		return rr
	}
	SortForApply(objs)
	scaled := ScaledByHPA(objs)

	// Apply, classifying each object by comparing with what was there.
	var desired []Ref
	secretsDone := false
	for _, o := range objs {
		if !secretsDone && o.GetKind() != "Namespace" {
			// The Secrets the edges and the dns read at start (optional
			// there): made once the namespace is there and before
			// anything that runs, so no pod starts without them.
			secretsDone = true
			refs, created, err := d.ensureSecrets(ctx, c, r.Name)
			desired = append(desired, refs...)
			for _, ref := range created {
				rr.Changes = append(rr.Changes, Change{"created", ref})
			}
			if err != nil {
				return d.applyFailed(ctx, c, r.Name, rr, err, union(prev.Inventory, desired))
			}
		}
		live, err := c.Get(ctx, o, "default")
		if err != nil {
			rr.Err = err
			return rr
		}
		if live != nil && scaled.Has(o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()) {
			// The autoscaler owns the count: send what it chose, so the
			// field stays set (dropping it would reset it to 1).
			if n, found, _ := unstructured.NestedInt64(live.Object, "spec", "replicas"); found {
				_ = unstructured.SetNestedField(o.Object, n, "spec", "replicas")
			}
		}
		out, err := c.Apply(ctx, o, "default", d.opts.DryRun)
		if err != nil {
			if d.opts.DryRun && live == nil && o.GetKind() != "Namespace" && isNamespaceMissing(err) {
				// The namespace would be created first; a dry run cannot
				// see it, so it cannot validate what lives in it.
				rr.Changes = append(rr.Changes, Change{"created", RefOf(o)})
				desired = append(desired, RefOf(o))
				continue
			}
			return d.applyFailed(ctx, c, r.Name, rr, err, union(prev.Inventory, desired))
		}
		desired = append(desired, RefOf(o))
		switch {
		case live == nil:
			rr.Changes = append(rr.Changes, Change{"created", RefOf(o)})
		case !Same(live, out): // field ownership moving alone is no change
			rr.Changes = append(rr.Changes, Change{"configured", RefOf(o)})
		default:
			rr.Unchanged++
		}
	}

	// Prune what an earlier deploy applied and the file no longer names.
	var kept []Ref
	for _, p := range Prune(prev.Inventory, desired) {
		if err := c.Delete(ctx, p, d.opts.DryRun); err != nil {
			kept = append(kept, p)
			rr.Err = errors.Join(rr.Err, err)
			continue
		}
		rr.Changes = append(rr.Changes, Change{"pruned", p})
	}
	if !d.opts.DryRun {
		st := d.state
		st.CDN, st.Inventory = d.cfg.Metadata.Name, append(desired, kept...)
		if err := d.writeState(ctx, c, r.Name, st); err != nil {
			rr.Err = errors.Join(rr.Err, err)
		}
	}
	if rr.Err != nil {
		return rr
	}
	verb := map[string]string{"created": "created", "configured": "configured", "pruned": "pruned"}
	if d.opts.DryRun {
		verb = map[string]string{"created": "would create", "configured": "would change", "pruned": "would prune"}
	}
	for _, ch := range rr.Changes {
		d.printf(r.Name, "%s %s", verb[ch.Action], ch.Ref)
	}
	if d.opts.DryRun {
		return rr // the deferred line sums it up
	}
	d.printf(r.Name, "applied %d objects: %s", len(desired), summary(rr))

	// Wait for the rollouts and the load balancers.
	wctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	if err := d.waitRollouts(wctx, c, r.Name, objs); err != nil {
		rr.Err = err
		return rr
	}
	a, err := d.readAddresses(wctx, c, r.Name, objs)
	rr.Addresses = a
	if err != nil {
		rr.Err = err
	}
	return rr
}

// applyFailed ends a region whose apply failed with err: what this run
// created stays in the inventory (with what was there), so a later run can
// prune it; nothing is pruned now.
func (d *deployer) applyFailed(ctx context.Context, c *Cluster, region string, rr RegionResult, err error, inventory []Ref) RegionResult {
	rr.Err = err
	if !d.opts.DryRun {
		st := d.state
		st.CDN, st.Inventory = d.cfg.Metadata.Name, inventory
		if werr := d.writeState(ctx, c, region, st); werr != nil {
			rr.Err = errors.Join(rr.Err, werr)
		}
	}
	return rr
}

// ensureSecrets makes the region's generated Secrets where missing: the
// admin token (one per region) and the hop key (one for the CDN). It
// returns the refs of those kubecdn owns, which are desired at every
// deploy and so never pruned while the region is in the file, and those
// created (or that a dry run would create).
func (d *deployer) ensureSecrets(ctx context.Context, c *Cluster, region string) (owned, created []Ref, err error) {
	for _, ensure := range []func(context.Context, *Cluster, string) (*Ref, bool, error){d.ensureAdminSecret, d.ensureHopSecret} {
		ref, made, err := ensure(ctx, c, region)
		if err != nil {
			return owned, created, err
		}
		if ref != nil {
			owned = append(owned, *ref)
		}
		if made {
			created = append(created, *ref)
		}
	}
	return owned, created, nil
}

// union returns a followed by the refs of b not in a.
func union(a, b []Ref) []Ref {
	out := slices.Clone(a)
	seen := map[string]bool{}
	for _, r := range a {
		seen[r.key()] = true
	}
	for _, r := range b {
		if !seen[r.key()] {
			seen[r.key()] = true
			out = append(out, r)
		}
	}
	return out
}

// withNamespaces adds a Namespace for every namespace the objects live in
// that none of them declares and that does not exist yet (or that an
// earlier deploy created): `kubectl apply` would fail on those, and a user
// expects their app's namespace to come and go with the app. A namespace
// that exists and is not kubecdn's is left alone.
func (d *deployer) withNamespaces(ctx context.Context, c *Cluster, region string, objs []*unstructured.Unstructured, inventory []Ref) ([]*unstructured.Unstructured, error) {
	declared := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" {
			declared[o.GetName()] = true
		}
	}
	owned := map[string]bool{}
	for _, r := range inventory {
		if r.Kind == "Namespace" && r.Group == "" {
			owned[r.Name] = true
		}
	}
	var extra []*unstructured.Unstructured
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" || declared[ns] {
			continue
		}
		declared[ns] = true
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		u.SetLabels(d.labels(region))
		if !owned[ns] {
			live, err := c.Get(ctx, u, "")
			if err != nil {
				return nil, err
			}
			if live != nil {
				continue // someone else's
			}
		}
		extra = append(extra, u)
	}
	return append(objs, extra...), nil
}

// ensureAdminSecret creates the Secret holding the edges' admin bearer
// token (render.Options.AdminSecret, key "token") with a random token when
// the region has none (see ensureSecret).
func (d *deployer) ensureAdminSecret(ctx context.Context, c *Cluster, region string) (*Ref, bool, error) {
	name := d.opts.Render.AdminSecret
	if name == "" {
		name = render.DefaultAdminSecret
	}
	return d.ensureSecret(ctx, c, region, name, func() (map[string]any, error) {
		b := make([]byte, 32)
		if _, err := io.ReadFull(d.opts.Rand, b); err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		return map[string]any{"token": hex.EncodeToString(b)}, nil
	})
}

// ensureSecret creates the Secret name in the region with the data that
// data returns (stringData) when the region has none; nil data creates
// none. A Secret that exists, made by kubecdn or by the user, is never
// changed: it holds a key others share or a token someone uses. It returns
// the Secret's ref when kubecdn owns it (so it is kept in the inventory and
// goes with the region), and whether it was (or, in a dry run, would be)
// created. Create, not apply: apply would take it over at every deploy.
func (d *deployer) ensureSecret(ctx context.Context, c *Cluster, region, name string, data func() (map[string]any, error)) (*Ref, bool, error) {
	ns := d.opts.Render.Namespace
	u := secretObject(ns, name)
	ref := RefOf(u)
	live, err := c.Get(ctx, u, ns)
	if err != nil {
		return nil, false, err
	}
	if live != nil {
		if live.GetLabels()["kubecdn.io/cdn"] == d.cfg.Metadata.Name {
			return &ref, false, nil
		}
		return nil, false, nil // the user's own
	}
	sd, err := data()
	if err != nil || sd == nil {
		return nil, false, err
	}
	if d.opts.DryRun {
		return &ref, true, nil
	}
	u.SetLabels(d.labels(region))
	u.Object["type"] = "Opaque"
	u.Object["stringData"] = sd
	if _, err := c.Create(ctx, u, ns); err != nil {
		return nil, false, err
	}
	return &ref, true, nil
}

// isNamespaceMissing reports whether the API server refused an object
// because its namespace does not exist.
func isNamespaceMissing(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	st := se.Status()
	return st.Reason == metav1.StatusReasonNotFound && st.Details != nil && st.Details.Kind == "namespaces"
}

func summary(rr RegionResult) string {
	return fmt.Sprintf("%d created, %d configured, %d unchanged, %d pruned",
		rr.Count("created"), rr.Count("configured"), rr.Unchanged, rr.Count("pruned"))
}

func addressLine(a *RegionState) string {
	if a == nil {
		return "no addresses"
	}
	f := func(as []Address) string {
		var s []string
		for _, x := range as {
			if x.Hostname != "" {
				s = append(s, x.Hostname)
			} else {
				s = append(s, x.IP)
			}
		}
		return strings.Join(s, ",")
	}
	out := "edges " + f(a.Edges)
	if len(a.DNS) > 0 {
		out += "  dns " + f(a.DNS)
	}
	hosts := make([]string, 0, len(a.Endpoints))
	for h := range a.Endpoints {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		out += "  " + h + " " + f(a.Endpoints[h])
	}
	return out
}

// writeState saves the region's state (inventory and regions).
func (d *deployer) writeState(ctx context.Context, c *Cluster, region string, st State) error {
	u, err := stateObject(d.opts.Render.Namespace, d.labels(region), st)
	if err != nil {
		return err
	}
	_, err = c.Apply(ctx, u, d.opts.Render.Namespace, false)
	return err
}

// writeRegions replaces the regions part of a region's state, keeping its
// inventory.
func (d *deployer) writeRegions(ctx context.Context, c *Cluster, region string, next State) error {
	cur, _, err := c.readState(ctx, d.opts.Render.Namespace)
	if err != nil {
		return err
	}
	next.Inventory = cur.Inventory
	return d.writeState(ctx, c, region, next)
}

// waitRollouts polls every workload until its rollout is done, printing a
// line whenever one's progress changes.
func (d *deployer) waitRollouts(ctx context.Context, c *Cluster, region string, objs []*unstructured.Unstructured) error {
	last := map[string]string{}
	for {
		pending := 0
		var worst string
		for _, o := range objs {
			if !IsWorkload(o.GetKind()) {
				continue
			}
			live, err := c.Get(ctx, o, "default")
			if err != nil {
				return err
			}
			if live == nil {
				return fmt.Errorf("%s disappeared during the rollout", RefOf(o))
			}
			ro := RolloutOf(live)
			key := RefOf(o).String()
			if s := ro.String(); last[key] != s {
				last[key] = s
				d.printf(region, "%s %s", key, s)
			}
			if !ro.Done {
				pending++
				worst = key + " " + ro.String()
			}
		}
		if pending == 0 {
			return nil
		}
		if err := d.opts.Sleep(ctx, d.opts.Poll); err != nil {
			return fmt.Errorf("rollout not done after %s: %s", d.opts.Timeout, worst)
		}
	}
}

var serviceGVK = schema.GroupVersionKind{Version: "v1", Kind: "Service"}

// readAddresses waits until the edge and dns load balancers, and those of
// the app services in this region, have an address.
func (d *deployer) readAddresses(ctx context.Context, c *Cluster, region string, objs []*unstructured.Unstructured) (*RegionState, error) {
	type want struct {
		ns, name string
		port     int32
		put      func(*RegionState, []Address)
	}
	ns := d.opts.Render.Namespace
	wants := []want{
		{ns, edgePublicService, edgePublicPort, func(s *RegionState, a []Address) { s.Edges = a }},
		{ns, dnsPublicService, dnsPublicPort, func(s *RegionState, a []Address) { s.DNS = a }},
	}
	for _, s := range d.cfg.AppServices() {
		if !s.InRegion(region) {
			continue
		}
		var svc *corev1.Service
		for _, o := range objs {
			if o.GetKind() == "Service" && o.GetName() == s.Service && (s.Namespace == "" || o.GetNamespace() == s.Namespace) {
				svc = &corev1.Service{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, svc); err != nil {
					return nil, fmt.Errorf("service %s: %w", s.Service, err)
				}
				break
			}
		}
		if svc == nil {
			return nil, fmt.Errorf("%s: no Service %q among the app's objects in this region", s.Path, s.Service)
		}
		port, err := apps.ServicePort(svc, s.AppService)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		host := s.Hostname
		wants = append(wants, want{svc.Namespace, svc.Name, port, func(st *RegionState, a []Address) {
			if st.Endpoints == nil {
				st.Endpoints = map[string][]Address{}
			}
			st.Endpoints[host] = a
		}})
	}
	out := &RegionState{}
	for _, w := range wants {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(serviceGVK)
		u.SetNamespace(w.ns)
		u.SetName(w.name)
		announced := false
		for {
			live, err := c.Get(ctx, u, "default")
			if err != nil {
				return out, err
			}
			var as []Address
			if live != nil {
				ing, _, _ := unstructured.NestedSlice(live.Object, "status", "loadBalancer", "ingress")
				for _, x := range ing {
					m, _ := x.(map[string]any)
					ip, _ := m["ip"].(string)
					host, _ := m["hostname"].(string)
					if ip != "" || host != "" {
						as = append(as, Address{IP: ip, Hostname: host, Port: w.port})
					}
				}
			}
			if len(as) > 0 {
				w.put(out, as)
				break
			}
			if !announced {
				d.printf(region, "waiting for the load balancer of service/%s/%s", w.ns, w.name)
				announced = true
			}
			if err := d.opts.Sleep(ctx, d.opts.Poll); err != nil {
				return out, fmt.Errorf("service/%s/%s has no load-balancer address after %s", w.ns, w.name, d.opts.Timeout)
			}
		}
	}
	return out, nil
}

// publishDNS gives DNS the addresses of the regions in addrs: every
// region's kubecdn dns gets them in its file (whatever the provider, so the
// dns in each region can always answer), and an external publisher, if the
// file names one, gets one record set per region.
func (d *deployer) publishDNS(ctx context.Context, active []config.RegionRef, results map[string]*RegionResult, addrs map[string]RegionState) ([]publish.Change, error) {
	var errs []error
	updated := 0
	var targets []string
	for _, r := range active {
		if rr := results[r.Name]; d.clusters[r.Name] != nil && (rr.Err == nil || rr.Addresses != nil) {
			targets = append(targets, r.Name)
		}
	}
	var out map[string][]render.Object
	if len(targets) > 0 {
		ro := d.opts.Render
		ro.Regions = targets
		var err error
		if out, err = render.Render(d.addressed(ctx, addrs), ro); err != nil {
			return nil, err
		}
	}
	for _, name := range targets {
		c := d.clusters[name]
		for _, obj := range out[name] {
			if obj.GetObjectKind().GroupVersionKind().Kind != "ConfigMap" || obj.GetName() != render.ConfigName {
				continue
			}
			o, err := render.Unstructured(obj)
			if err != nil {
				return nil, err
			}
			d.setLabels(o, name)
			live, err := c.Get(ctx, o, "default")
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			applied, err := c.Apply(ctx, o, "default", d.opts.DryRun)
			if err != nil && d.opts.DryRun && live == nil && isNamespaceMissing(err) {
				updated++ // would be created with the namespace
				continue
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			if live == nil || !Same(live, applied) {
				updated++
			}
		}
	}
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	d.printf("dns", "kubecdn: %d regions' dns given new addresses (regions in DNS: %s)", updated, strings.Join(names, ", "))
	if d.opts.Publisher == nil {
		return nil, errors.Join(errs...)
	}
	changes, err := d.opts.Publisher.Publish(ctx, Desired(d.cfg, addrs), d.opts.DryRun)
	for _, c := range changes {
		d.printf("dns", "%s", c)
	}
	verb := "made"
	if d.opts.DryRun {
		verb = "would be made"
	}
	if err != nil {
		d.printf("dns", "%s: %v", d.cfg.Spec.Publish.Provider, err)
		errs = append(errs, err)
	} else {
		d.printf("dns", "%s: %d record changes %s", d.cfg.Spec.Publish.Provider, len(changes), verb)
	}
	return changes, errors.Join(errs...)
}

// removeRegion tears down a region that left the file (or was closed):
// DNS no longer names it; once Drain has passed since then, every object in
// its inventory is deleted, the namespace last.
func (d *deployer) removeRegion(ctx context.Context, name string, st RegionState) (rr RegionResult) {
	rr = RegionResult{Region: name, Removed: true}
	start := d.opts.Now()
	defer func() { rr.Took = d.opts.Now().Sub(start) }()
	if d.opts.DryRun {
		d.printf(name, "dry run: would leave DNS, then be torn down %s later", d.opts.Drain)
		return rr
	}
	c := d.clusters[name]
	if c == nil {
		var err error
		if c, err = d.opts.Connect(config.Cluster{Kubeconfig: st.Kubeconfig, Context: st.Context}); err != nil {
			rr.Err = fmt.Errorf("removed from the file, but its cluster cannot be reached to tear it down: %w", err)
			d.printf(name, "failed: %v", rr.Err)
			return rr
		}
	}
	if wait := st.LeftDNS.Add(d.opts.Drain).Sub(d.opts.Now()); wait > 0 {
		d.printf(name, "left DNS; tearing down in %s, when cached answers have expired", wait.Round(time.Second))
		if err := d.opts.Sleep(ctx, wait); err != nil {
			rr.Err = fmt.Errorf("interrupted before teardown: %w", err)
			return rr
		}
	}
	ns := d.opts.Render.Namespace
	cur, _, err := c.readState(ctx, ns)
	if err != nil {
		rr.Err = err
		return rr
	}
	for _, p := range Prune(cur.Inventory, nil) {
		if err := c.Delete(ctx, p, false); err != nil {
			rr.Err = errors.Join(rr.Err, err)
			continue
		}
		rr.Changes = append(rr.Changes, Change{"deleted", p})
	}
	if rr.Err == nil {
		state := Ref{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: StateName}
		if err := c.Delete(ctx, state, false); err != nil {
			rr.Err = err
		}
	}
	if rr.Err != nil {
		d.printf(name, "teardown failed: %v", rr.Err)
	} else {
		d.printf(name, "torn down: %d objects deleted", len(rr.Changes))
	}
	return rr
}
