package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"

	"github.com/kubecdn/kubecdn/internal/apps"
	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/deploy"
	"github.com/kubecdn/kubecdn/internal/infra"
	"github.com/kubecdn/kubecdn/internal/ops/kubeops"
)

// Names of the autoscaler's objects in the first always-on region: the
// Lease its replicas elect a leader on and the ConfigMap its state lives
// in (render names them too).
const (
	LeaseName = autoscale.KubeStateName
	StateName = autoscale.KubeStateName
)

// Defaults of Options.
const (
	DefaultEvery       = 10 * time.Second
	DefaultStepTimeout = 15 * time.Minute
	DefaultDrainMax    = 10 * time.Minute
)

// Options configure Run. Zero values take the documented defaults.
type Options struct {
	// Deploy are the options of the deploys that open and close regions
	// (render options, timeouts, the external publisher).
	Deploy deploy.Options
	// Reach are the options of the kubeops.Source that reaches the pods;
	// Render is taken from Deploy, Token is always set.
	Reach kubeops.Options
	// RESTConfig reaches a region's cluster for the Lease, the state and
	// the pods (Reach); if nil, deploy.RESTConfig. Deploy.Connect decides
	// how deploys connect.
	RESTConfig func(config.Cluster) (*rest.Config, error)
	// StateFile keeps the state in a file instead of the cluster; then
	// there is no leader election (one autoscaler, run by hand).
	StateFile string
	// DryRun decides and logs, and changes nothing: no Lease is taken and
	// no state written.
	DryRun bool
	// Every is the sampling interval; if zero, DefaultEvery.
	Every time.Duration
	// StepTimeout bounds one life-cycle step (a deploy and its rollouts);
	// if zero, DefaultStepTimeout.
	StepTimeout time.Duration
	// DrainMax bounds a drain; if zero, DefaultDrainMax. A drain lasts at
	// least two of the file's TTLs.
	DrainMax time.Duration
	// Identity names this replica in the Lease; if empty, host name and
	// process id.
	Identity string
	// Metrics, if set, is the listener of /metrics, /healthz and /readyz
	// (ready as soon as the process runs, leader or not).
	Metrics net.Listener
	// Infra runs kubecdn infra on one region in cold mode (see
	// Actuator.Infra); the leader also destroys, every Every, the clusters
	// closed longer than spec.autoscale.retain.
	Infra func(ctx context.Context, action infra.Action, region string) error
	// Leading, if not nil, is told when this replica starts and stops
	// leading (tests, logs).
	Leading func(bool)
	Log     *slog.Logger
	Now     func() time.Time
}

// Run runs the autoscaler of cfg until ctx ends: under the Lease (unless
// StateFile or DryRun), a Controller with the state in the first always-on
// region's cluster, sampling through a Source and acting through an
// Actuator.
func Run(ctx context.Context, cfg *config.CDN, o Options) error {
	if len(cfg.Spec.Regions.Autoscale) == 0 {
		return errors.New("the file has no autoscale regions (spec.regions.autoscale)")
	}
	if cfg.Spec.Autoscale.Mode == config.ModeCold && o.Infra == nil && !o.DryRun {
		return ErrNoInfra
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.DrainMax <= 0 {
		o.DrainMax = DefaultDrainMax
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RESTConfig == nil {
		o.RESTConfig = deploy.RESTConfig
	}
	if o.Identity == "" {
		host, _ := os.Hostname()
		o.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	for _, a := range cfg.Spec.Apps {
		if _, err := apps.Load(cfg, a); err != nil {
			// Every step is a deploy, which refuses (changing nothing)
			// without the apps it would otherwise prune: say so now.
			// In a pod, render put them beside the file; a file whose
			// manifests could not be read when rendered has none.
			o.Log.Error("autoscaler cannot open or close regions: deploy needs the apps' manifests beside the file", "app", a.Name, "err", err)
		}
	}
	ro := o.Reach
	ro.Render, ro.Token, ro.RESTConfig = o.Deploy.Render, true, o.RESTConfig
	reach, err := kubeops.New(cfg, ro)
	if err != nil {
		return err
	}
	var current atomic.Pointer[autoscale.Controller]
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Name: "kubecdn_autoscale_leader",
		Help: "1 while this autoscaler replica leads (decides and acts), 0 while it stands by."})
	if o.Metrics != nil {
		stop := serveMetrics(o.Metrics, &current, leader)
		defer stop()
	}
	// lead makes one term's runner: a fresh controller that loads the
	// state the last leader saved in store.
	lead := func(store autoscale.Store) func(context.Context) {
		return func(ctx context.Context) {
			leader.Set(1)
			defer leader.Set(0)
			if o.Leading != nil {
				o.Leading(true)
				defer o.Leading(false)
			}
			o.Log.Info("autoscaler leading", "identity", o.Identity)
			ctrl, act := newController(cfg, o, reach, store)
			if err := ctrl.Load(ctx, autoscale.RegionsOf(cfg)); err != nil {
				o.Log.Error("autoscaler cannot start", "err", err)
				return // the Lease is released; a replica tries again
			}
			current.Store(ctrl)
			defer current.Store(nil) // a standby reports no phases it does not decide
			if cfg.Spec.Autoscale.Mode == config.ModeCold && !o.DryRun {
				stop := reapEvery(ctx, o, ctrl, act)
				defer stop()
			}
			_ = ctrl.Run(ctx)
		}
	}
	if o.StateFile != "" {
		return runTerms(ctx, o, lead(autoscale.FileStore{Path: o.StateFile}))
	}
	// A pod keeps running (and ready) while its kubeconfig is missing or
	// wrong, saying so, rather than crash-looping and holding every
	// deploy on its rollout; it starts once the Secret is there.
	home := cfg.Spec.Regions.AlwaysOn[0]
	cs, err := clientsetFor(o.RESTConfig, home.Cluster, 10*time.Second)
	for err != nil {
		o.Log.Error("autoscaler cannot reach the region of its state and lease", "region", home.Name, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(o.Every, 30*time.Second)):
		}
		cs, err = clientsetFor(o.RESTConfig, home.Cluster, 10*time.Second)
	}
	ns := namespaceOf(o.Deploy.Render)
	run := lead(autoscale.KubeStore{Client: cs, Namespace: ns, Name: StateName})
	if o.DryRun {
		return runTerms(ctx, o, run)
	}
	return autoscale.Lead(ctx, cs, ns, LeaseName, o.Identity, run)
}

// runTerms runs terms one after the other without a Lease (a state file,
// or a dry run) until ctx ends; a term that could not start is tried
// again after o.Every.
func runTerms(ctx context.Context, o Options, term func(context.Context)) error {
	for ctx.Err() == nil {
		term(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(o.Every):
		}
	}
	return nil
}

// newController wires a Controller to the Kubernetes Source and Actuator,
// each asking it where the regions are.
// reapEvery runs act.Reap every o.Every (cold mode) until the term ends;
// the returned func waits for it to stop.
func reapEvery(ctx context.Context, o Options, ctrl *autoscale.Controller, act *Actuator) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	regions := func() []autoscale.Region { st, _, _ := ctrl.Snapshot(); return st.Regions }
	go func() {
		defer close(done)
		t := time.NewTicker(o.Every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			destroyed, err := act.Reap(ctx, o.Now(), regions)
			for _, r := range destroyed {
				o.Log.Info("autoscale: destroyed the cluster of a region closed longer than spec.autoscale.retain", "region", r, "retain", act.CDN.Spec.Autoscale.RetainOr())
			}
			if err != nil {
				o.Log.Error("autoscale: cold mode could not destroy a closed region's cluster; trying again", "err", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func newController(cfg *config.CDN, o Options, reach Reach, store autoscale.Store) (*autoscale.Controller, *Actuator) {
	ctrl := &autoscale.Controller{
		Settings:    autoscale.SettingsOf(cfg, o.Every),
		Every:       o.Every,
		StepTimeout: o.StepTimeout,
		Store:       store,
		Log:         o.Log,
		DryRun:      o.DryRun,
		Now:         o.Now,
	}
	ttl := cfg.Spec.Routing.TTL.D()
	ctrl.DrainMin, ctrl.DrainMax = 2*ttl, max(o.DrainMax, 2*ttl)
	ctrl.NearZero = min(1, ctrl.Settings.ScaleDownBelow/10)
	phase := func(region string) autoscale.Phase {
		st, _, _ := ctrl.Snapshot()
		for _, r := range st.Regions {
			if r.Name == region {
				if r.Phase == "" {
					return autoscale.Closed
				}
				return r.Phase
			}
		}
		return autoscale.Closed
	}
	ctrl.Source = &Source{CDN: cfg, Reach: reach, Phase: phase, Now: o.Now}
	act := &Actuator{CDN: cfg, Deploy: o.Deploy, Reach: reach, RESTConfig: o.RESTConfig, Phase: phase, Log: o.Log, Infra: o.Infra}
	ctrl.Actuator = act
	// A restarted dns replica forgot which regions are out of its answers.
	ctrl.Reroute = func(ctx context.Context, replica, region string, in bool) error {
		src := &autoscale.DNSSource{Client: reach.Client(), Timeout: act.callTimeout()}
		return src.RouteReplica(ctx, replica, region, in)
	}
	return ctrl, act
}

// serveMetrics serves the leading controller's kubecdn_autoscale_* series
// (none while standing by), the leader gauge, /healthz and /readyz.
func serveMetrics(l net.Listener, current *atomic.Pointer[autoscale.Controller], leader prometheus.Gauge) func() {
	own := prometheus.NewRegistry()
	own.MustRegister(leader)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gs := prometheus.Gatherers{own}
		if c := current.Load(); c != nil {
			gs = append(gs, c.Registry())
		}
		promhttp.HandlerFor(gs, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok) // a standby is ready: it is the replacement
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}
