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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
