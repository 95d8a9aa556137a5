package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/bearer"
	"github.com/kubecdn/kubecdn/internal/ops"
)

// AutoscaleOptions configure the autoscaler up runs for the file's
// autoscale regions. Zero values get the documented defaults.
type AutoscaleOptions struct {
	// StateFile keeps the regions' states and recent decisions across
	// restarts; if empty, autoscale-state.json beside Options.TokenFile when
	// that is given, else kubecdn/autoscale-NAME.json under the user's
	// cache directory.
	StateFile string
	// Every is the sampling interval; if zero, 1s.
	Every time.Duration
	// DryRun decides and logs, and changes nothing.
	DryRun bool
	// WarmKeys and WarmBytes bound what a region opening fetches before it
	// enters the dns answers; if zero, 500 keys and 256 MiB.
	WarmKeys  int
	WarmBytes int64
	// DNS are more dns replicas of the file (admin base URLs, such as a
	// secondary `kubecdn dns -f` of the same file) that the autoscaler
	// samples and routes besides up's own: a replica that does not answer
	// freezes the decisions, as in a deployed CDN.
	DNS []string
	// NoWarm opens regions cold: they enter the dns answers as soon as
	// their edges serve (to measure what warming buys).
	NoWarm bool
	// DrainMax bounds a drain whatever the load left; if zero, the longer
	// of 30s and four TTLs.
	DrainMax time.Duration
}

// autoscaler runs internal/autoscale inside up: its Source reads the dns
// and the edges over their admin listeners as a deployed autoscaler does,
// and it is its own Actuator, starting and stopping edges in this process.
type autoscaler struct {
	u      *Up
	ctrl   *autoscale.Controller
	demand *autoscale.Demand
	o      AutoscaleOptions
	client *http.Client
	// others are the dns replicas besides up's own (AutoscaleOptions.DNS).
	others *autoscale.DNSSource
}

// newAutoscaler builds the autoscaler of u's autoscale regions; nil when
// the file has none or sets no spec.autoscale.scaleUpAbove (its autoscale
// regions are then opened by hand, with `kubecdn region up`).
func newAutoscaler(u *Up) (*autoscaler, error) {
	if len(u.cfg.Spec.Regions.Autoscale) == 0 || u.cfg.Spec.Autoscale.ScaleUpAbove <= 0 {
		return nil, nil
	}
	o := u.o.Autoscale
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.WarmKeys <= 0 {
		o.WarmKeys = 500
	}
	if o.WarmBytes <= 0 {
		o.WarmBytes = 256 << 20
	}
	ttl := u.cfg.Spec.Routing.TTL.D()
	if o.DrainMax <= 0 {
		o.DrainMax = max(30*time.Second, 4*ttl)
	}
	if o.StateFile == "" {
		var err error
		if o.StateFile, err = defaultStateFile(u); err != nil {
			return nil, err
		}
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}}
	a := &autoscaler{u: u, o: o, client: client, others: &autoscale.DNSSource{Admins: o.DNS, Token: u.token, Client: client}}
	log := u.log.With("part", "autoscale")
	dnsSrc := &autoscale.DNSSource{Admins: append([]string{"http://" + u.lay.DNSAdmin}, o.DNS...), Token: u.token, Client: client}
	a.demand = &autoscale.Demand{
		DNS:     dnsSrc,
		Edges:   &autoscale.EdgeSource{Token: u.token, Client: client},
		Regions: a.regionViews,
		Log:     log,
	}
	s := autoscale.SettingsOf(u.cfg, o.Every)
	a.ctrl = &autoscale.Controller{
		Settings: s, Every: o.Every,
		// Resolvers keep the old answer a TTL; two let the slow ones move.
		DrainMin: 2 * ttl, DrainMax: o.DrainMax, NearZero: s.ScaleDownBelow / 4,
		// Start waits for the dns to probe the new edges healthy.
		StepTimeout: 30*time.Second + 4*u.cfg.Spec.Routing.Health.Interval.D(),
		Source:      a.demand, Actuator: a, Store: autoscale.FileStore{Path: o.StateFile}, Reroute: dnsSrc.RouteReplica,
		Log: log, DryRun: o.DryRun, Now: time.Now,
	}
	if err := a.ctrl.Load(context.Background(), autoscale.RegionsOf(u.cfg)); err != nil {
		return nil, err
	}
	return a, nil
}

func defaultStateFile(u *Up) (string, error) {
	if u.o.TokenFile != "" {
		return filepath.Join(filepath.Dir(u.o.TokenFile), "autoscale-state.json"), nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("autoscale state: %w (give --autoscale-state)", err)
	}
	dir = filepath.Join(dir, "kubecdn")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("autoscale state: %w", err)
	}
	return filepath.Join(dir, "autoscale-"+u.cfg.Metadata.Name+".json"), nil
}

// run brings the regions to the stored state (a region stored open runs
// and is answered again), then samples and decides until ctx ends.
func (a *autoscaler) run(ctx context.Context) {
	st, _, _ := a.ctrl.Snapshot()
	for _, r := range st.Regions {
		switch {
		case r.AlwaysOn || a.o.DryRun:
			continue
		case r.Phase == autoscale.Warming || r.Phase == autoscale.Open || r.Phase == autoscale.Draining:
			if err := a.startEdges(r.Name); err != nil {
				a.u.log.Error("autoscale: restarting a region stored running", "region", r.Name, "phase", r.Phase, "err", err)
				continue
			}
			if r.InDNS {
				a.u.dns.SetRouted(r.Name, true)
			}
			a.u.log.Info("autoscale: region resumed from the stored state", "region", r.Name, "phase", r.Phase, "inDNS", r.InDNS)
		}
	}
	_ = a.ctrl.Run(ctx)
}

// regionViews is every region as the demand source sees it.
func (a *autoscaler) regionViews(context.Context) ([]autoscale.RegionView, error) {
	u := a.u
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []autoscale.RegionView
	for _, name := range u.order() {
		rr := u.regions[name]
		v := autoscale.RegionView{Name: name, Running: rr.state == StateOpen}
		v.Routed = v.Running && u.dns.Routed(name)
		if v.Running {
			v.Admin = adminURLs(rr.plan)
		}
		out = append(out, v)
	}
	return out, nil
}

func adminURLs(p RegionPlan) []string {
	var out []string
	for _, e := range p.Edges {
		out = append(out, "http://"+e.Admin)
	}
	return out
}

func (a *autoscaler) region(name string) (*regionRun, error) {
	rr, ok := a.u.regions[name]
	if !ok || !rr.plan.Autoscale {
		return nil, fmt.Errorf("%w %q", ErrUnknownRegion, name)
	}
	return rr, nil
}

// startEdges starts the region's edges outside the dns answers: the dns
// learns them (and probes them) but answers with them only once routed.
func (a *autoscaler) startEdges(name string) error {
	rr, err := a.region(name)
	if err != nil {
		return err
	}
	// Out before the dns learns the edges, or it would answer with them
	// at their first passing probe, cold.
	if err := a.u.dns.SetRouted(name, false); err != nil {
		return fmt.Errorf("taking %s out of the answers: %w", name, err)
	}
	a.u.mu.Lock()
	defer a.u.mu.Unlock()
	if rr.state == StateOpen {
		return nil
	}
	return a.u.openLocked(rr)
}

// Start implements autoscale.Actuator: the edges run, are ready, and the
// dns has probed them healthy, so routing them in serves at once.
func (a *autoscaler) Start(ctx context.Context, name string) error {
	if err := a.startEdges(name); err != nil {
		return err
	}
	rr, _ := a.region(name)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		why := a.notServing(ctx, rr.plan)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("starting %s: %s: %w", name, why, ctx.Err())
		case <-t.C:
		}
	}
}

// notServing says why the region cannot serve yet, "" once it can.
func (a *autoscaler) notServing(ctx context.Context, p RegionPlan) string {
	for _, admin := range adminURLs(p) {
		if err := a.call(ctx, http.MethodGet, admin+"/readyz", nil, nil); err != nil {
			return fmt.Sprintf("edge %s not ready: %v", admin, err)
		}
	}
	for _, r := range a.u.dns.State().Regions {
		if r.Name != p.Name {
			continue
		}
		// An edge not probed yet reads healthy in the state, but the
		// dns answers with it only from its first passing probe.
		probed := 0
		for _, e := range r.Edges {
			if e.Probed && e.Healthy {
				probed++
			}
		}
		if !r.Healthy || probed < len(p.Edges) {
			return fmt.Sprintf("the dns has probed %d of its %d edges healthy", probed, len(p.Edges))
		}
	}
	return ""
}

// Route implements autoscale.Actuator with the dns's drain switch. Leaving
// the answers also tells the edges to drain (Connection: close), so kept
// connections move where the dns now sends their clients; entering them
// ends a drain (a reopen).
func (a *autoscaler) Route(ctx context.Context, name string, in bool) error {
	rr, err := a.region(name)
	if err != nil {
		return err
	}
	if in {
		a.u.mu.Lock()
		running := rr.state == StateOpen
		a.u.mu.Unlock()
		if !running {
			return fmt.Errorf("routing %s in: its edges do not run", name)
		}
		a.drain(ctx, rr.plan, false)
		if err := a.others.Route(ctx, name, true); err != nil {
			return err
		}
		return a.u.dns.SetRouted(name, true)
	}
	if err := a.u.dns.SetRouted(name, false); err != nil {
		return err
	}
	if err := a.others.Route(ctx, name, false); err != nil {
		return err
	}
	a.drain(ctx, rr.plan, true)
	return nil
}

// Stop implements autoscale.Actuator: the edges stop (the drain told them
// to close their connections), and the dns forgets them.
func (a *autoscaler) Stop(ctx context.Context, name string) error {
	rr, err := a.region(name)
	if err != nil {
		return err
	}
	a.drain(ctx, rr.plan, true)
	a.u.mu.Lock()
	defer a.u.mu.Unlock()
	a.u.stopLocked(rr, StateClosed)
	return nil
}

// drain asks each edge of p to drain or not, best effort: an edge without
// the endpoint still serves and stops, only without closing its
// keep-alive connections first.
func (a *autoscaler) drain(ctx context.Context, p RegionPlan, on bool) {
	for _, admin := range adminURLs(p) {
		if err := a.call(ctx, http.MethodPost, admin+adminapi.DrainPath, adminapi.DrainRequest{Drain: on}, nil); err != nil {
			a.u.log.Warn("autoscale: edge drain switch", "edge", admin, "drain", on, "err", err)
		}
	}
}

// Warm implements autoscale.Actuator: the hottest keys of the edges that
// served the region's users (all routed edges when the edges do not say
// whose users they served), merged and bounded by count and bytes, are
// fetched by each of the region's edges.
func (a *autoscaler) Warm(ctx context.Context, name string) error {
	rr, err := a.region(name)
	if err != nil {
		return err
	}
	if a.o.NoWarm {
		a.u.log.Info("autoscale: warming off; the region opens cold", "region", name)
		return nil
	}
	sources := a.demand.ServedUsersOf(name)
	if len(sources) == 0 {
		views, _ := a.regionViews(ctx)
		for _, v := range views {
			if v.Routed && v.Name != name {
				sources = append(sources, v.Admin...)
			}
		}
	}
	q := url.Values{"n": {strconv.Itoa(a.o.WarmKeys)}, "bytes": {strconv.FormatInt(a.o.WarmBytes, 10)}}
	var lists [][]adminapi.HotKey
	var errs []error
	for _, src := range sources {
		var hk adminapi.HotKeys
		if err := a.call(ctx, http.MethodGet, src+adminapi.HotPath+"?"+q.Encode(), nil, &hk); err != nil {
			errs = append(errs, fmt.Errorf("hot keys of %s: %w", src, err))
			continue
		}
		lists = append(lists, hk.Keys)
	}
	if len(lists) == 0 {
		return fmt.Errorf("no hot keys from %d edges: %w", len(sources), errors.Join(errs...))
	}
	urls := pickWarm(lists, a.o.WarmKeys, a.o.WarmBytes)
	if len(urls) == 0 {
		return nil
	}
	var total adminapi.WarmResult
	for _, admin := range adminURLs(rr.plan) {
		var res adminapi.WarmResult
		if err := a.call(ctx, http.MethodPost, admin+adminapi.WarmPath, adminapi.WarmRequest{URLs: urls}, &res); err != nil {
			return fmt.Errorf("warming %s: %w", admin, err)
		}
		total.Fetched, total.Failed, total.Bytes = total.Fetched+res.Fetched, total.Failed+res.Failed, total.Bytes+res.Bytes
	}
	a.u.log.Info("autoscale: region warmed", "region", name, "keys", len(urls), "fetched", total.Fetched,
		"failed", total.Failed, "bytes", total.Bytes, "from", len(lists))
	return nil
}

// pickWarm merges hot-key lists (a key's hits summed over the edges) and
// returns the most-hit URLs, at most n of them and bytes in all; a key too
// large for what is left is skipped for smaller ones.
func pickWarm(lists [][]adminapi.HotKey, n int, bytes int64) []string {
	merged := map[string]*adminapi.HotKey{}
	for _, l := range lists {
		for _, k := range l {
			if m := merged[k.URL]; m != nil {
				m.Hits += k.Hits
				m.Bytes = max(m.Bytes, k.Bytes)
				continue
			}
			k := k
			merged[k.URL] = &k
		}
	}
	keys := make([]*adminapi.HotKey, 0, len(merged))
	for _, k := range merged {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Hits != keys[j].Hits {
			return keys[i].Hits > keys[j].Hits
		}
		return keys[i].URL < keys[j].URL
	})
	var out []string
	for _, k := range keys {
		if len(out) >= n {
			break
		}
		if k.Bytes > bytes {
			continue
		}
		bytes -= k.Bytes
		out = append(out, k.URL)
	}
	return out
}

// call sends one admin request with the token; in, if not nil, is sent as
// JSON and a 200 answer is decoded into out if not nil.
func (a *autoscaler) call(ctx context.Context, method, target string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	bearer.Set(req, a.u.token)
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b[:min(len(b), 200)])))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// views are the autoscale regions' states for ops.Target; nil without an
// autoscaler.
func (a *autoscaler) views() map[string]*ops.Autoscale {
	if a == nil {
		return nil
	}
	st, frozen, waiting := a.ctrl.Snapshot()
	return autoscale.Views(st, frozen, waiting, a.ctrl.Latest())
}

// AutoscaleView is the JSON of GET /v1/autoscale on the control API.
type AutoscaleView struct {
	State   autoscale.State   `json:"state"`
	Frozen  string            `json:"frozen,omitempty"`
	Waiting map[string]string `json:"waiting,omitempty"`
	DryRun  bool              `json:"dryRun,omitempty"`
	// Signal is where displaced demand comes from: "edges" or "dns".
	Signal string `json:"signal"`
}

// handle adds the autoscaler's routes to the control API:
//
//	GET  /v1/autoscale                   an AutoscaleView
//	POST /v1/regions/{name}/open|close   pin the region open or closed
//	POST /v1/regions/{name}/release      free it for the decisions again
//	POST /v1/autoscale/pause|resume      stop or restart deciding
//	GET  /metrics                        kubecdn_autoscale_*
func (a *autoscaler) handle(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/autoscale", func(w http.ResponseWriter, _ *http.Request) {
		st, frozen, waiting := a.ctrl.Snapshot()
		writeJSON(w, http.StatusOK, AutoscaleView{State: st, Frozen: frozen, Waiting: waiting, DryRun: a.o.DryRun, Signal: a.demand.Signal()})
	})
	pin := func(p autoscale.Phase) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			err := a.ctrl.Pin(r.Context(), r.PathValue("name"), p)
			switch {
			case errors.Is(err, autoscale.ErrUnknownRegion):
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case err != nil:
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			default:
				ts, _ := a.u.Regions(r.Context())
				for _, t := range ts {
					if t.Region == r.PathValue("name") {
						writeJSON(w, http.StatusOK, t)
					}
				}
			}
		}
	}
	mux.HandleFunc("POST /v1/regions/{name}/open", pin(autoscale.Open))
	mux.HandleFunc("POST /v1/regions/{name}/close", pin(autoscale.Closed))
	mux.HandleFunc("POST /v1/regions/{name}/release", pin(""))
	pause := func(p bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			a.ctrl.SetPaused(r.Context(), p)
			st, frozen, _ := a.ctrl.Snapshot()
			writeJSON(w, http.StatusOK, map[string]any{"paused": st.Paused, "frozen": frozen})
		}
	}
	mux.HandleFunc("POST /v1/autoscale/pause", pause(true))
	mux.HandleFunc("POST /v1/autoscale/resume", pause(false))
}

var _ autoscale.Actuator = (*autoscaler)(nil)
