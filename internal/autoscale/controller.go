package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/prometheus/client_golang/prometheus"
)

// Source measures demand: one Sample summed over every dns replica and edge,
// with the ones that did not answer named in Sample.Missing.
type Source interface {
	Sample(ctx context.Context) (Sample, error)
}

// Actuator changes a region. Each call does one step of the life cycle and
// returns when it is done (or failed); the controller runs them one at a
// time, off its sampling loop.
type Actuator interface {
	// Start brings the region's edges up and returns once they are ready.
	Start(ctx context.Context, region string) error
	// Warm fetches into the region's edges the objects its users have been
	// asking for, so they meet hits.
	Warm(ctx context.Context, region string) error
	// Route puts the region into the dns answers (in) or takes it out.
	Route(ctx context.Context, region string, in bool) error
	// Stop takes the region's edges down.
	Stop(ctx context.Context, region string) error
}

// Store keeps the regions' states and recent decisions across restarts (a
// state file locally, an object in the cluster in Kubernetes).
type Store interface {
	Load(ctx context.Context) (State, error)
	Save(ctx context.Context, st State) error
}

// State is what survives a restart.
type State struct {
	Regions []Region `json:"regions"`
	// Decisions are the most recent, newest last.
	Decisions []Record `json:"decisions,omitempty"`
	Paused    bool     `json:"paused,omitempty"`
}

// Record is one decision and how it went.
type Record struct {
	At     time.Time `json:"at"`
	Action Action    `json:"action"`
	// Result is "done", "failed: …", "dry run" or "" while in flight.
	Result string `json:"result,omitempty"`
}

// keepDecisions bounds State.Decisions.
const keepDecisions = 50

// Controller samples demand, decides, and walks regions through their life
// cycle: closed → opening → warming → open → draining → closed.
type Controller struct {
	Settings Settings
	// Every is the sampling interval.
	Every time.Duration
	// DrainMin and DrainMax bound a drain: the edges serve at least
	// DrainMin after leaving the dns answers (two TTLs: resolvers keep the
	// old answer that long), and once their load is at most NearZero, or
	// DrainMax has passed (some resolvers stretch TTLs), they stop.
	DrainMin, DrainMax time.Duration
	NearZero           float64
	// StepTimeout bounds each actuator call.
	StepTimeout time.Duration
	Source      Source
	Actuator    Actuator
	Store       Store
	Log         *slog.Logger
	// Reroute, if not nil, sets one dns replica's routing of a region. The
	// dns keeps a region's routing in memory: a restarted replica answers
	// with every region, closed and draining ones included, so when a
	// sample shows a replica (Sample.DNSRoutes) that disagrees with an
	// autoscale region's state, the controller sets it again, as a step of
	// its own between the others.
	Reroute func(ctx context.Context, replica, region string, in bool) error
	// DryRun decides and logs, and changes nothing.
	DryRun bool
	Now    func() time.Time

	mu      sync.Mutex
	st      State
	samples []Sample
	frozen  string
	waiting map[string]string
	busy    bool // an actuator step runs
	// prevSince is when a region in transition last changed before it:
	// a failed transition is no change, so its cooldown runs from there.
	prevSince map[string]time.Time
	done      chan stepResult
	metrics   *ctrlMetrics
}

type stepResult struct {
	region string
	from   Phase
	routed bool
	err    error
	// reroute: the step set dns replicas' routing again (see Reroute).
	reroute bool
}

// Load reads the stored state and merges it with the file's regions: a
// region the file dropped is forgotten, a new one starts closed (or open
// if always-on). A transition that was under way when the last controller
// died is taken up again from its start.
func (c *Controller) Load(ctx context.Context, file []Region) error {
	st, err := c.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("autoscale: load state: %w", err)
	}
	old := map[string]Region{}
	for _, r := range st.Regions {
		old[r.Name] = r
	}
	merged := make([]Region, 0, len(file))
	for _, r := range file {
		if o, ok := old[r.Name]; ok && !r.AlwaysOn {
			o.AlwaysOn = false
			r = o
		}
		merged = append(merged, r)
	}
	st.Regions = merged
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st = st
	c.done = make(chan stepResult, 1)
	c.prevSince = map[string]time.Time{}
	if c.metrics == nil {
		c.metrics = newCtrlMetrics()
	}
	c.publishMetricsLocked()
	return nil
}

// Run samples and decides every Every until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.Every)
	defer t.Stop()
	c.Tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.Tick(ctx)
		case r := <-c.done:
			c.finish(ctx, r)
		}
	}
}

// Tick takes one sample, moves in-flight transitions on, and decides.
func (c *Controller) Tick(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, c.Every)
	smp, err := c.Source.Sample(sctx)
	cancel()
	now := c.Now()
	if err != nil {
		smp = Sample{At: now, Missing: []string{err.Error()}}
	}
	smp.At = now
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, smp)
	c.metrics.observe(smp)
	// Keep the window and a sample before it, which vouches for its start.
	for len(c.samples) > 2 && c.samples[1].At.Before(now.Add(-c.Settings.Window)) {
		c.samples = c.samples[1:]
	}
	c.advanceLocked(ctx, now)
	c.rerouteLocked(ctx, smp)
	s := c.Settings
	s.Paused = s.Paused || c.st.Paused
	d := Decide(now, c.st.Regions, c.samples, s)
	c.frozen, c.waiting = d.Frozen, d.Waiting
	c.metrics.frozen.Set(b2f(d.Frozen != ""))
	if d.Action == nil {
		return
	}
	a := *d.Action
	rec := Record{At: now, Action: a}
	if c.DryRun {
		if c.sameDryRunLocked(a) {
			return // said once; nothing changed, so the decision stands
		}
		rec.Result = "dry run"
		c.Log.Info("autoscale decision (dry run: nothing changed)", "action", a.Kind, "region", a.Region, "reason", a.Reason, "inputs", a.String())
		c.recordLocked(ctx, rec)
		return
	}
	c.Log.Info("autoscale decision", "action", a.Kind, "region", a.Region, "reason", a.Reason, "inputs", a.String())
	r := c.regionLocked(a.Region)
	c.prevSince[r.Name] = r.Since
	if a.Kind == ActOpen {
		if r.Phase == Draining {
			// A reopen cuts the drain short: the edges still run, so
			// the region only needs its place in the answers back.
			c.setPhaseLocked(r, Warming, now)
		} else {
			c.setPhaseLocked(r, Opening, now)
		}
	} else {
		c.setPhaseLocked(r, Draining, now)
	}
	c.recordLocked(ctx, rec)
	c.advanceLocked(ctx, now)
}

// sameDryRunLocked reports whether the region's latest decision is this
// one, taken in a dry run: a dry run changes no state, so the same decision
// comes back every tick and is logged once.
func (c *Controller) sameDryRunLocked(a Action) bool {
	for i := len(c.st.Decisions) - 1; i >= 0; i-- {
		if d := c.st.Decisions[i]; d.Action.Region == a.Region {
			return d.Result == "dry run" && d.Action.Kind == a.Kind
		}
	}
	return false
}

// advanceLocked starts the next actuator step of a region in transition,
// unless one runs or the region backs off after a failed step.
func (c *Controller) advanceLocked(ctx context.Context, now time.Time) {
	if c.busy || c.DryRun {
		return
	}
	for i := range c.st.Regions {
		r := &c.st.Regions[i]
		if r.Failures > 0 && now.Sub(r.FailedAt) < c.Settings.backoff(r.Failures) {
			continue
		}
		name := r.Name
		var step func(context.Context) error
		switch {
		case r.Phase == Opening:
			step = func(ctx context.Context) error { return c.stopOnError(ctx, name, c.Actuator.Start(ctx, name)) }
		case r.Phase == Warming:
			step = func(ctx context.Context) error {
				if err := c.Actuator.Warm(ctx, name); err != nil {
					// A cold region still serves; warming is a courtesy.
					c.Log.Warn("autoscale: warming failed; opening the region cold", "region", name, "err", err)
				}
				return c.stopOnError(ctx, name, c.Actuator.Route(ctx, name, true))
			}
		case r.Phase == Draining && r.InDNS:
			// A drain begins by leaving the answers.
			step = func(ctx context.Context) error { return c.Actuator.Route(ctx, name, false) }
		case r.Phase == Draining && c.drainedLocked(r, now):
			step = func(ctx context.Context) error { return c.Actuator.Stop(ctx, name) }
		default:
			continue
		}
		c.busy = true
		res := stepResult{region: name, from: r.Phase, routed: r.InDNS}
		go func() {
			sctx, cancel := context.WithTimeout(ctx, c.StepTimeout)
			defer cancel()
			res.err = step(sctx)
			c.done <- res
		}()
		return
	}
}

// wantInDNS is whether an autoscale region belongs in the dns answers in
// its phase; known is false for a region whose routing a pending step is
// about to change, or that the controller does not route (always-on).
func wantInDNS(r *Region) (in, known bool) {
	switch {
	case r.AlwaysOn:
		return false, false
	case r.Phase == Open:
		return true, true
	case r.Phase == Draining && r.InDNS:
		return false, false // its first step takes it out
	default:
		// Closed, and the edges of opening, warming and draining
		// regions that are not answered (yet, or any more).
		return false, true
	}
}

// rerouteLocked starts a step that sets the routing of every autoscale
// region on every dns replica of smp that disagrees with its phase, when
// no other step runs (steps change routing, so a sample taken while one
// ran may be stale; finish starts no reroute, the next tick does).
func (c *Controller) rerouteLocked(ctx context.Context, smp Sample) {
	if c.Reroute == nil || c.busy || c.DryRun || len(smp.DNSRoutes) == 0 {
		return
	}
	type fix struct {
		replica, region string
		in              bool
	}
	var fixes []fix
	for i := range c.st.Regions {
		r := &c.st.Regions[i]
		want, ok := wantInDNS(r)
		if !ok {
			continue
		}
		for replica, routes := range smp.DNSRoutes {
			if got, known := routes[r.Name]; known && got != want {
				fixes = append(fixes, fix{replica, r.Name, want})
			}
		}
	}
	if len(fixes) == 0 {
		return
	}
	c.busy = true
	go func() {
		sctx, cancel := context.WithTimeout(ctx, c.StepTimeout)
		defer cancel()
		var errs []error
		for _, f := range fixes {
			err := c.Reroute(sctx, f.replica, f.region, f.in)
			c.Log.Warn("autoscale: a dns replica's routing disagreed with the region's phase; set again",
				"replica", f.replica, "region", f.region, "in", f.in, "err", err)
			errs = append(errs, err)
		}
		c.done <- stepResult{reroute: true, err: errors.Join(errs...)}
	}()
}

// drainedLocked reports whether a draining region, out of the answers, may
// stop: after DrainMin once its load is near zero, or after DrainMax
// whatever its load.
func (c *Controller) drainedLocked(r *Region, now time.Time) bool {
	age := now.Sub(r.Since)
	if age < c.DrainMin {
		return false
	}
	if age >= c.DrainMax {
		return true
	}
	if len(c.samples) == 0 {
		return false
	}
	last := c.samples[len(c.samples)-1]
	return last.Complete() && last.Served[r.Name] <= c.NearZero
}

// finish records the end of an actuator step and moves the region on.
func (c *Controller) finish(ctx context.Context, res stepResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	now := c.Now()
	if res.reroute {
		// Failures are logged; the next sample shows what still differs.
		c.advanceLocked(ctx, now)
		return
	}
	r := c.regionLocked(res.region)
	defer c.advanceLocked(ctx, now)
	if r.Phase != res.from || r.InDNS != res.routed {
		return // a reopen overtook the step
	}
	if res.err != nil {
		r.Failures++
		r.FailedAt = now
		c.Log.Warn("autoscale step failed", "region", r.Name, "phase", r.Phase, "failures", r.Failures, "err", res.err)
		c.metrics.steps.WithLabelValues(r.Name, string(r.Phase), "error").Inc()
		switch {
		case r.Phase == Opening || r.Phase == Warming:
			// A failed open leaves the region closed (the step stopped
			// its half-started edges).
			c.setPhaseLocked(r, Closed, c.prevSince[r.Name])
			c.resultLocked(ctx, r.Name, "failed: "+res.err.Error())
		case r.Phase == Draining && r.InDNS:
			// Still in the answers: the region stays open.
			c.setPhaseLocked(r, Open, c.prevSince[r.Name])
			c.resultLocked(ctx, r.Name, "failed: "+res.err.Error())
		default:
			// Out of the answers but its edges would not stop: keep
			// draining and try again after the backoff.
			c.saveLocked(ctx)
		}
		return
	}
	c.metrics.steps.WithLabelValues(r.Name, string(r.Phase), "ok").Inc()
	switch {
	case r.Phase == Opening:
		c.setPhaseLocked(r, Warming, now)
	case r.Phase == Warming:
		r.Failures, r.InDNS = 0, true
		c.setPhaseLocked(r, Open, now)
		c.resultLocked(ctx, r.Name, "done")
	case r.Phase == Draining && r.InDNS:
		r.InDNS = false // the drain's clock runs from the decision
	case r.Phase == Draining:
		r.Failures = 0
		c.setPhaseLocked(r, Closed, now)
		c.resultLocked(ctx, r.Name, "done")
	}
	c.saveLocked(ctx)
}

// stopOnError stops, best effort, the edges of a region whose open failed
// with err, within the same step, so they do not run unseen.
func (c *Controller) stopOnError(ctx context.Context, name string, err error) error {
	if err == nil {
		return nil
	}
	if serr := c.Actuator.Stop(ctx, name); serr != nil && !errors.Is(serr, context.Canceled) {
		c.Log.Warn("autoscale: stopping a region that failed to open", "region", name, "err", serr)
	}
	return err
}

func (c *Controller) regionLocked(name string) *Region {
	for i := range c.st.Regions {
		if c.st.Regions[i].Name == name {
			return &c.st.Regions[i]
		}
	}
	panic("autoscale: decision on unknown region " + name)
}

func (c *Controller) setPhaseLocked(r *Region, p Phase, since time.Time) {
	r.Phase, r.Since = p, since
	c.publishMetricsLocked()
}

func (c *Controller) recordLocked(ctx context.Context, rec Record) {
	c.st.Decisions = append(c.st.Decisions, rec)
	if n := len(c.st.Decisions); n > keepDecisions {
		c.st.Decisions = c.st.Decisions[n-keepDecisions:]
	}
	c.metrics.decisions.WithLabelValues(rec.Action.Region, string(rec.Action.Kind)).Inc()
	c.saveLocked(ctx)
}

// resultLocked fills in the result of the region's latest decision.
func (c *Controller) resultLocked(ctx context.Context, region, result string) {
	for i := len(c.st.Decisions) - 1; i >= 0; i-- {
		if c.st.Decisions[i].Action.Region == region {
			if c.st.Decisions[i].Result == "" {
				c.st.Decisions[i].Result = result
			}
			break
		}
	}
	c.saveLocked(ctx)
}

func (c *Controller) saveLocked(ctx context.Context) {
	if c.DryRun {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, c.StepTimeout)
	defer cancel()
	if err := c.Store.Save(sctx, c.st); err != nil {
		c.Log.Warn("autoscale: saving state failed; it is kept in memory and saved with the next change", "err", err)
	}
}

// Snapshot returns the state, why decisions are frozen (if they are) and
// why waiting regions wait, for status.
func (c *Controller) Snapshot() (State, string, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.Regions = append([]Region(nil), c.st.Regions...)
	st.Decisions = append([]Record(nil), c.st.Decisions...)
	w := make(map[string]string, len(c.waiting))
	for k, v := range c.waiting {
		w[k] = v
	}
	return st, c.frozen, w
}

// Views are the autoscale regions as status shows them (ops.Target's
// Autoscale): phase, since when, pin, the latest decision with its inputs
// and result, why the region waits or decisions are frozen, and what the
// latest sample saw of it (zero Sample: nothing).
func Views(st State, frozen string, waiting map[string]string, latest Sample) map[string]*ops.Autoscale {
	out := map[string]*ops.Autoscale{}
	for _, r := range st.Regions {
		if r.AlwaysOn {
			continue
		}
		v := &ops.Autoscale{Phase: string(r.Phase), Since: r.Since, Pin: string(r.Pin), Waiting: waiting[r.Name], Frozen: frozen,
			Demand: latest.Describe(r.Name)}
		if v.Phase == "" {
			v.Phase = string(Closed)
		}
		for i := len(st.Decisions) - 1; i >= 0; i-- {
			if d := st.Decisions[i]; d.Action.Region == r.Name {
				v.Decision, v.Result = d.Action.String(), d.Result
				break
			}
		}
		out[r.Name] = v
	}
	return out
}

// Latest is the newest demand sample (zero before the first): what status
// shows of each region's demand now.
func (c *Controller) Latest() Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.samples) == 0 {
		return Sample{}
	}
	return c.samples[len(c.samples)-1]
}

// Registry is the controller's metrics registry.
func (c *Controller) Registry() *prometheus.Registry { return c.metrics.reg }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
