// Package local runs the whole CDN on one machine, in one process: the
// origin (the embedded demo, a directory, or the file's URL), one group of
// edge servers per region, each region on its own loopback IP so the dns
// answers differ per region, the dns itself, and a control API with the
// status page. It is `kubecdn up`.
//
// PlanLayout decides every address from the file and the flags (pure);
// New binds them all before anything starts, so a port in use is an error
// that names it and nothing runs; Run serves until its context ends, then
// stops everything and frees every port. Regions can be stopped and started
// while it runs (SetRegion), and an edge whose Run returns on its own is
// restarted.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	_ "embed"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/gslb"
	"github.com/kubecdn/kubecdn/internal/local/demo"
	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/rtt"
	"github.com/kubecdn/kubecdn/internal/units"
)

// The rtt feed's Collector is what every edge of up is given to observe
// its connections.
var _ edge.ConnObserver = (*rtt.Collector)(nil)

//go:embed example.yaml
var exampleYAML []byte

// Example returns the built-in example file (a copy).
func Example() []byte { return append([]byte(nil), exampleYAML...) }

// Options configure Up. Zero values get the documented defaults.
type Options struct {
	PlanOptions
	// AdminToken is the edges' purge token, which the dns also requires of
	// the edges' rtt reports; if empty, a random one.
	AdminToken string
	// TokenFile is where the token is written (mode 0600); if empty, a file
	// in a new temporary directory, removed when Run ends.
	TokenFile string
	// DemoLargeSize is the demo's large file size; if zero, 64 MiB.
	DemoLargeSize int64
	// DemoVideo configures the demo's video (ffmpeg's, when installed).
	DemoVideo demo.VideoOptions
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
	// Rand is the source of the random token and hop key; if nil,
	// crypto/rand.
	Rand io.Reader
	// RestartBackoff is the first wait before restarting an edge that
	// stopped on its own (doubling up to 5 s); if zero, 200ms.
	RestartBackoff time.Duration
	// RTTReportInterval is how often each edge reports its clients'
	// round-trip times to the dns (latency policy); if zero, the rtt
	// Reporter's default (10s).
	RTTReportInterval time.Duration
	// StatusPage, if set, is served at / of the control listener.
	StatusPage func(src Source) http.Handler
	// Autoscale configures the autoscaler of the file's autoscale regions.
	Autoscale AutoscaleOptions
}

// Source is what the status page reads: every region as a target.
type Source interface {
	Regions(ctx context.Context) ([]ops.Target, error)
}

// Up is the whole CDN on this machine.
type Up struct {
	cfg       *config.CDN
	lay       Layout
	o         Options
	log       *slog.Logger
	token     string
	hopKey    string // every edge's: they authenticate their hops to each other with it
	tokenFile string
	tokenDir  string // removed at the end when up created it

	dns     *gslb.Server
	origin  http.Handler
	video   *demo.Video // the demo origin's; nil for other origins
	originL net.Listener
	control net.Listener

	mu      sync.Mutex // guards regions' state changes
	regions map[string]*regionRun
	runCtx  context.Context
	wg      sync.WaitGroup

	as *autoscaler // nil when the file has no autoscale regions
}

// regionRun is one region's current state and, while open, its edges.
type regionRun struct {
	plan   RegionPlan
	state  string
	cancel context.CancelFunc
	done   chan struct{} // closed once every edge of the current run stopped
	// pre are listeners bound ahead (at New or by SetRegion), two per edge.
	pre []net.Listener
}

// PortError is returned by New when addresses cannot be bound; nothing was
// started.
type PortError struct {
	Failed []ListenFailure
}

// ListenFailure is one address that could not be bound.
type ListenFailure struct {
	Listener
	Err error
}

func (e *PortError) Error() string {
	s := "cannot bind every address, nothing was started:"
	for _, f := range e.Failed {
		s += fmt.Sprintf("\n  %s/%s (%s): %v", f.Addr, f.Net, f.Role, describe(f.Err))
	}
	return s
}

// New plans the layout, binds every address (or returns a *PortError
// naming each one that is taken, with nothing bound), builds the origin and
// the dns, and writes the admin token file. cfg must come from
// config.Load or config.Parse.
func New(cfg *config.CDN, o Options) (*Up, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.RestartBackoff <= 0 {
		o.RestartBackoff = 200 * time.Millisecond
	}
	lay, err := PlanLayout(cfg, o.PlanOptions)
	if err != nil {
		return nil, err
	}
	u := &Up{cfg: cfg, lay: lay, o: o, log: o.Logger, regions: map[string]*regionRun{}}
	for _, r := range lay.Regions {
		u.regions[r.Name] = &regionRun{plan: r, state: r.Initial}
	}

	// Origin content first: nothing is bound yet if it fails.
	switch lay.OriginKind {
	case OriginDemo:
		vo := o.DemoVideo
		if vo.Logger == nil {
			vo.Logger = o.Logger.With("part", "origin")
		}
		u.video = demo.NewVideo(vo)
		d, err := demo.New(demo.Options{LargeSize: o.DemoLargeSize, Video: u.video})
		if err != nil {
			return nil, fmt.Errorf("demo origin: %w", err)
		}
		u.origin = d
	case OriginDir:
		if fi, err := os.Stat(lay.OriginDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("spec.origin.dir: %q is not a directory", lay.OriginDir)
		}
		u.origin = http.FileServer(http.Dir(lay.OriginDir))
	}

	bound, err := bindAll(lay.Listeners())
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			bound.closeAll()
		}
	}()
	u.originL = bound.tcp[lay.OriginAddr]
	u.control = bound.tcp[lay.Control]
	for _, r := range lay.Regions {
		rr := u.regions[r.Name]
		if rr.state != StateOpen {
			continue
		}
		for _, e := range r.Edges {
			rr.pre = append(rr.pre, bound.tcp[e.Listen], bound.tcp[e.Admin])
		}
	}
	if err := u.pickToken(); err != nil {
		return nil, err
	}
	// The dns takes the edges' rtt reports with the edges' admin token.
	u.dns, err = gslb.New(lay.DNSConfig(cfg, u.states()), gslb.Options{
		PacketConn: bound.udp[lay.DNS], Listener: bound.tcp[lay.DNS], AdminListener: bound.tcp[lay.DNSAdmin],
		AdminToken: u.token, Logger: o.Logger.With("part", "dns"),
	})
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if err := u.writeToken(); err != nil {
		return nil, err
	}
	hk := make([]byte, 32)
	if _, err := io.ReadFull(u.o.Rand, hk); err != nil {
		return nil, fmt.Errorf("hop key: %w", err)
	}
	u.hopKey = hex.EncodeToString(hk)
	if u.as, err = newAutoscaler(u); err != nil {
		return nil, err
	}
	ok = true
	return u, nil
}

// pickToken sets the admin token: Options.AdminToken, else a random one.
func (u *Up) pickToken() error {
	u.token = u.o.AdminToken
	if u.token == "" {
		b := make([]byte, 16)
		if _, err := io.ReadFull(u.o.Rand, b); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		u.token = hex.EncodeToString(b)
	}
	return nil
}

// writeToken writes the token to its file.
func (u *Up) writeToken() error {
	u.tokenFile = u.o.TokenFile
	if u.tokenFile == "" {
		dir, err := os.MkdirTemp("", "kubecdn-up-")
		if err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
		u.tokenDir = dir
		u.tokenFile = filepath.Join(dir, "admin-token")
	}
	if err := os.WriteFile(u.tokenFile, []byte(u.token+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing admin token: %w", err)
	}
	return nil
}

// Layout is the planned layout.
func (u *Up) Layout() Layout { return u.lay }

// Config is the file up runs.
func (u *Up) Config() *config.CDN { return u.cfg }

// Token is the admin token of every edge; TokenFile is where it is written.
func (u *Up) Token() string     { return u.token }
func (u *Up) TokenFile() string { return u.tokenFile }

func (u *Up) states() map[string]string {
	out := map[string]string{}
	for n, r := range u.regions {
		out[n] = r.state
	}
	return out
}

// Run serves until ctx ends, then stops every part and frees every port.
// It returns the first error that stopped it early (the dns, the origin or
// the control listener failing), else nil.
func (u *Up) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer u.removeToken()
	errc := make(chan error, 4)
	var servers []*http.Server
	serve := func(name string, h http.Handler, ln net.Listener) {
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(u.log.Handler(), slog.LevelWarn),
			// Requests end with Run: the status page's event streams
			// would otherwise hold Shutdown for its whole timeout.
			BaseContext: func(net.Listener) context.Context { return ctx }}
		servers = append(servers, hs)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if u.originL != nil {
		serve("origin", u.origin, u.originL)
	}
	if u.video != nil {
		// ffmpeg's processes are stopped before Run returns (u.wg).
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.video.Run(ctx)
		}()
	}
	serve("control", u.controlHandler(), u.control)
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		if err := u.dns.Run(ctx); err != nil {
			errc <- fmt.Errorf("dns: %w", err)
		}
	}()

	u.mu.Lock()
	u.runCtx = ctx
	for _, name := range u.order() {
		if rr := u.regions[name]; rr.state == StateOpen {
			u.startLocked(rr)
		}
	}
	u.mu.Unlock()
	if u.as != nil {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.as.run(ctx)
		}()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	u.mu.Lock()
	for _, rr := range u.regions {
		if rr.cancel != nil {
			rr.cancel()
		}
	}
	u.mu.Unlock()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	for _, hs := range servers {
		_ = hs.Shutdown(sctx)
	}
	u.wg.Wait()
	for _, rr := range u.regions {
		for _, ln := range rr.pre {
			ln.Close()
		}
	}
	return err
}

func (u *Up) removeToken() {
	if u.tokenDir != "" {
		os.RemoveAll(u.tokenDir)
	}
}

func (u *Up) order() []string {
	var out []string
	for _, r := range u.lay.Regions {
		out = append(out, r.Name)
	}
	return out
}

// startLocked starts the edges of rr with its pre-bound listeners. u.mu
// must be held and Run must have started.
func (u *Up) startLocked(rr *regionRun) {
	ctx, cancel := context.WithCancel(u.runCtx)
	rr.cancel, rr.done, rr.state = cancel, make(chan struct{}), StateOpen
	pre := rr.pre
	rr.pre = nil
	var wg sync.WaitGroup
	for j := range rr.plan.Edges {
		var ln, aln net.Listener
		if len(pre) >= 2*j+2 {
			ln, aln = pre[2*j], pre[2*j+1]
		}
		wg.Add(1)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer wg.Done()
			u.superviseEdge(ctx, rr.plan, j, ln, aln)
		}()
	}
	done := rr.done
	go func() { wg.Wait(); close(done) }()
}

// edgeSettings are the settings of edge j of region r: the edge's
// defaults with what up decides.
func (u *Up) edgeSettings(r RegionPlan, j int) edge.Settings {
	e := r.Edges[j]
	s := edge.DefaultSettings()
	s.Listen, s.Admin, s.Origin = e.Listen, e.Admin, u.lay.OriginURL
	s.Hostnames = append([]string(nil), u.cfg.Spec.Hostnames...)
	s.Self = "http://" + e.Listen
	s.Name = fmt.Sprintf("kubecdn-%s-%d", r.Name, j)
	s.AdminToken, s.HopKeys = u.token, []string{u.hopKey}
	// The terminal is up's own log; access logs would drown it.
	s.AccessLog = "off"
	if m := u.cfg.Spec.Cache.Memory; m > 0 {
		s.Memory = units.Size(m)
	}
	s.Video = u.cfg.Spec.Cache.Video.WithDefaults()
	if len(r.Edges) > 1 {
		for _, p := range r.Edges {
			s.Peers = append(s.Peers, "http://"+p.Listen)
		}
	}
	if r.Parent != "" {
		if p, ok := u.lay.Region(r.Parent); ok && len(p.Edges) > 0 {
			s.Parent = "http://" + p.Edges[0].Listen
		}
	}
	if d := u.cfg.Spec.Cache.Disk; d.Path != "" {
		s.CacheDir = filepath.Join(u.cfg.ResolvePath(d.Path), r.Name+"-"+strconv.Itoa(j))
		if d.Size > 0 {
			s.Disk = units.Size(d.Size)
		}
	}
	s.Region = r.Name // named in its demand report (and rtt feed)
	if u.cfg.Spec.Routing.Policy == config.PolicyLatency {
		// The dns learns this region's clients' round-trip times.
		s.RTTReport = []string{"http://" + u.lay.DNSAdmin + adminapi.RTTPath}
	}
	s.SetDemandFrom(u.cfg) // demand by the client's nearest region, as the dns places it
	return s
}

// superviseEdge runs edge j of region r until ctx ends; when the edge's Run
// returns on its own, it is rebuilt and restarted after a backoff. ln and
// aln (pre-bound, may be nil) serve the first run only.
func (u *Up) superviseEdge(ctx context.Context, r RegionPlan, j int, ln, aln net.Listener) {
	set := u.edgeSettings(r, j)
	log := u.log.With("part", "edge", "region", r.Name)
	run := func(ctx context.Context) error {
		opts := edge.Options{Logger: log, Listener: ln, AdminListener: aln}
		ln, aln = nil, nil // a restart binds again
		if len(set.RTTReport) > 0 {
			col, stop := rtt.Feed(ctx, rtt.ReporterOptions{Region: set.Region, Targets: set.RTTReport, Token: set.AdminToken,
				Interval: u.o.RTTReportInterval, Logger: log})
			defer stop()
			opts.Observer = col
		}
		cfg, err := set.Config()
		var srv *edge.Server
		if err == nil {
			srv, err = edge.New(cfg, opts)
		}
		if err != nil {
			if opts.Listener != nil {
				opts.Listener.Close()
				opts.AdminListener.Close()
			}
			return err
		}
		return srv.Run(ctx)
	}
	supervise(ctx, run, u.o.RestartBackoff, 5*time.Second, func(err error, wait time.Duration) {
		log.Error("edge stopped on its own; restarting it", "err", err, "in", wait)
	})
}

// supervise calls run until ctx ends; each time run returns while ctx is
// still live it reports the exit and calls run again after a backoff that
// doubles from first up to max (back to first after a run of a minute).
// It is the restart policy of every edge.
func supervise(ctx context.Context, run func(context.Context) error, first, max time.Duration, onExit func(err error, wait time.Duration)) {
	wait := first
	for {
		started := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			wait = first
		}
		if err == nil {
			err = errors.New("returned without error")
		}
		onExit(err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, max)
	}
}

// ErrUnknownRegion is returned by SetRegion for a name not in the file.
var ErrUnknownRegion = errors.New("unknown region")

// SetRegion stops (open=false) or starts (open=true) a region's edges.
// Stopping waits until every edge of the region has stopped and its ports
// are free; the dns keeps probing them and drops the region by itself.
// Starting binds the region's addresses first (an address in use is an
// error and nothing starts); a region that was closed is added to the
// dns's answers once its edges serve.
func (u *Up) SetRegion(name string, open bool) (ops.Target, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	rr, ok := u.regions[name]
	if !ok {
		return ops.Target{}, fmt.Errorf("%w %q", ErrUnknownRegion, name)
	}
	if open && rr.state == StateClosed && u.as != nil {
		// The autoscaler owns when an autoscale region opens.
		return ops.Target{}, fmt.Errorf("%w: %s is an autoscale region; open it with `kubecdn region open %s` (pins it until `kubecdn region release %s`)",
			ErrAutoscaled, name, name, name)
	}
	if u.runCtx == nil || u.runCtx.Err() != nil {
		return ops.Target{}, errors.New("not running")
	}
	switch {
	case !open && rr.state == StateOpen:
		u.stopLocked(rr, StateDown)
		u.log.Info("region down: edges stopped", "region", name)
	case open && rr.state != StateOpen:
		if err := u.openLocked(rr); err != nil {
			return ops.Target{}, err
		}
		u.log.Info("region up: edges started", "region", name)
	}
	return u.targetLocked(rr), nil
}

// ErrAutoscaled is returned by SetRegion for opening a closed autoscale
// region while the autoscaler runs.
var ErrAutoscaled = errors.New("autoscaled region")

// openLocked binds rr's addresses (an address in use is an error and
// nothing starts) and starts its edges; a region that was closed joins the
// dns's configuration, so the dns probes its edges. u.mu must be held.
func (u *Up) openLocked(rr *regionRun) error {
	if u.runCtx == nil || u.runCtx.Err() != nil {
		return errors.New("not running")
	}
	var ls []Listener
	for _, l := range u.lay.Listeners() {
		if l.Region == rr.plan.Name {
			l.Later = false
			ls = append(ls, l)
		}
	}
	b, err := bindAll(ls)
	if err != nil {
		return err
	}
	for _, e := range rr.plan.Edges {
		rr.pre = append(rr.pre, b.tcp[e.Listen], b.tcp[e.Admin])
	}
	wasClosed := rr.state == StateClosed
	u.startLocked(rr)
	if wasClosed {
		if err := u.dns.Reload(u.lay.DNSConfig(u.cfg, u.states())); err != nil {
			u.log.Error("adding the region to the dns", "region", rr.plan.Name, "err", err)
		}
	}
	return nil
}

// stopLocked stops rr's edges, waits until every one stopped and its ports
// are free, and leaves rr in state (StateDown: the dns keeps probing and
// sees it fail; StateClosed: the dns forgets its edges). u.mu must be held.
func (u *Up) stopLocked(rr *regionRun, state string) {
	if rr.cancel != nil {
		rr.cancel()
		<-rr.done
	}
	wasClosed := rr.state == StateClosed
	rr.cancel, rr.done, rr.state = nil, nil, state
	if (state == StateClosed) != wasClosed {
		if err := u.dns.Reload(u.lay.DNSConfig(u.cfg, u.states())); err != nil {
			u.log.Error("taking the region's edges out of the dns", "region", rr.plan.Name, "err", err)
		}
	}
}

// Regions lists every region as an ops.Target (the status page's Source
// and GET /v1/regions).
func (u *Up) Regions(context.Context) ([]ops.Target, error) {
	views := u.as.views() // before u.mu: the autoscaler's lock is its own
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []ops.Target
	for _, name := range u.order() {
		t := u.targetLocked(u.regions[name])
		t.Autoscale = views[name]
		out = append(out, t)
	}
	return out, nil
}

func (u *Up) targetLocked(rr *regionRun) ops.Target {
	t := ops.Target{Region: rr.plan.Name, State: rr.state, DNSAdmin: "http://" + u.lay.DNSAdmin,
		Admin: []string{}, Public: []string{}}
	for _, e := range rr.plan.Edges {
		t.Admin = append(t.Admin, "http://"+e.Admin)
		t.Public = append(t.Public, e.Listen)
	}
	return t
}

var _ Source = (*Up)(nil)
