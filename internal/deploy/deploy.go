// Package deploy puts the CDN on one Kubernetes cluster per region and keeps
// every cluster in sync with the CDN file (kubecdn deploy).
//
// For each region, in parallel (bounded), Run applies the objects render
// makes plus the user's apps with server-side apply (field manager
// "kubecdn"), labels all of them as kubecdn's, prunes what an earlier deploy
// applied and the file no longer names, waits for the rollouts and reads the
// load balancers' addresses. Then it publishes DNS: kubecdn's own dns in
// every region gets every region's addresses, and an external Publisher
// (Route 53, RFC 2136), if the file names one, gets one record set per
// region. A region removed from the file leaves DNS first; its objects are
// deleted a TTL later, so no resolver is still sending users to it.
//
// Secrets are never applied: the edges' admin token (one per region) and
// the hop key (one for the whole CDN, read from every region before any is
// applied, see hopkey.go) are created where missing and never changed.
//
// What deploy must remember between runs (the inventory for pruning, how to
// reach each region, the last known addresses) lives in a ConfigMap in each
// region (StateName), so there is no local state file to lose.
//
// deploy.go is the orchestration, Run's numbered steps; each step lives in
// a file of its own, in the order Run takes them:
//
//   - connect.go: reach the always-on regions (each checked, see
//     check.go), adopt the freshest state, tell the active regions from
//     the removed ones (step 1);
//   - hopkey.go: choose the hop key every region shares, before any region
//     is applied;
//   - apply.go: a region's objects, labelled, with their namespaces,
//     applied in order (step 2);
//   - secrets.go: the generated Secrets, created where missing;
//   - prune.go: delete what an earlier deploy applied and the file no
//     longer names, save the inventory;
//   - rollout.go: wait for the workloads' rollouts;
//   - addresses.go: read the load balancers' addresses, keep the last known
//     ones of the regions not read (step 3);
//   - dnspub.go: publish DNS, to every region's dns and the external
//     publisher (step 4);
//   - teardown.go: tear down the removed regions once they left DNS a
//     drain ago (step 5);
//   - state.go: the state ConfigMap, read first and written last (step 6).
//
// Beside them, options.go and result.go hold what Run takes and returns,
// plan.go the pure decisions (what to prune, the apply order, rollout
// progress, whether an object changed, the replicas an autoscaled workload
// gets) and cluster.go the Kubernetes API of one region, every call with a
// timeout; check.go asks a region's server whether it is Kubernetes at
// all, warnings.go keeps what its answers warn about.
package deploy

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/progress"
	"github.com/kubecdn/kubecdn/internal/render"
)

type deployer struct {
	cfg  *config.CDN
	opts Options
	mu   sync.Mutex // guards results and clusters
	out  *progress.Lines
	// state is the freshest state found in the regions.
	state    State
	clusters map[string]*Cluster
	apps     []*apps.App
	// hop is the CDN's hop key, chosen before any region is applied.
	hop hopPlan
}

func (d *deployer) printf(region, format string, args ...any) {
	d.out.Printf(region, format, args...)
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
	d := &deployer{cfg: cfg, opts: opts, out: progress.New(opts.Out), clusters: map[string]*Cluster{}}
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
	d.connect(ctx, fail)
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
	addrs, next := d.nextState(active, removed, results)

	// 4. DNS, without the removed regions.
	res.DNS, res.DNSErr = d.publishDNS(ctx, active, results, addrs)

	// 5. Removed regions: after the TTL, delete their objects.
	d.teardown(ctx, removed, res.DNSErr, results, next.Regions)

	// 6. Remember it all in every active region.
	d.remember(ctx, active, results, next)

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
	progress.Parallel(ctx, n, d.opts.Parallel, f)
}

// deployRegion is step 2 for one active region: apply its objects (and
// its Secrets), prune what an earlier deploy applied and the file no
// longer names, wait for the rollouts and read the load balancers'
// addresses. known is the file with the addresses known so far.
func (d *deployer) deployRegion(ctx context.Context, r config.RegionRef, known *config.CDN) (rr RegionResult) {
	start := d.opts.Now()
	rr.Region = r.Name
	var c *Cluster
	defer func() {
		rr.Took = d.opts.Now().Sub(start)
		if c != nil {
			for _, w := range c.warnings.take() {
				d.printf(r.Name, "warning from the API server: %s", w)
			}
		}
		switch {
		case rr.Err != nil:
			d.printf(r.Name, "failed: %v", rr.Err)
		case d.opts.DryRun:
			d.printf(r.Name, "dry run: %s", summary(rr, true))
		default:
			d.printf(r.Name, "ready in %s: %s", rr.Took.Round(100*time.Millisecond), addressLine(rr.Addresses))
		}
	}()
	c, err := d.cluster(ctx, r)
	if err != nil {
		rr.Err = err
		return rr
	}
	ns := d.opts.Render.Namespace
	prev, _, err := c.readState(ctx, ns)
	if err != nil {
		rr.Err = err
		return rr
	}
	objs, err := d.regionObjects(ctx, c, r.Name, known, prev.Inventory)
	if err != nil {
		rr.Err = err
		return rr
	}

	desired, ok := d.apply(ctx, c, r.Name, objs, prev.Inventory, &rr)
	if !ok {
		return rr
	}
	d.prune(ctx, c, r.Name, prev.Inventory, desired, &rr)
	if rr.Err != nil {
		return rr
	}
	d.reportChanges(r.Name, rr)
	if d.opts.DryRun {
		return rr // the deferred line sums it up
	}
	d.printf(r.Name, "applied %d objects: %s", len(desired), summary(rr, false))

	// Wait for the rollouts and the load balancers.
	wctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	if err := d.waitRollouts(wctx, c, r.Name, objs); err != nil {
		rr.Err = err
		rr.EdgesDown = d.edgesDown(ctx, c, r.Name)
		return rr
	}
	a, err := d.readAddresses(wctx, c, r.Name, objs)
	rr.Addresses = a
	if err != nil {
		rr.Err = err
	}
	return rr
}
