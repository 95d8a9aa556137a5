package autoscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSource is a test double for the dns replicas and edges: it returns
// whatever demand the test sets.
type fakeSource struct {
	mu        sync.Mutex
	displaced map[string]float64
	served    map[string]float64
	err       error
}

func (f *fakeSource) set(displaced, served map[string]float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.displaced, f.served = displaced, served
}

func (f *fakeSource) Sample(context.Context) (Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Sample{}, f.err
	}
	s := Sample{Displaced: map[string]float64{}, Served: map[string]float64{}}
	for k, v := range f.displaced {
		s.Displaced[k] = v
	}
	for k, v := range f.served {
		s.Served[k] = v
	}
	return s, nil
}

// fakeActuator is a test double for a region's cluster: it records the
// steps asked of it and fails those the test names.
type fakeActuator struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error
}

func (f *fakeActuator) do(step string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, step)
	return f.fail[step]
}
func (f *fakeActuator) Start(_ context.Context, r string) error { return f.do("start " + r) }
func (f *fakeActuator) Warm(_ context.Context, r string) error  { return f.do("warm " + r) }
func (f *fakeActuator) Stop(_ context.Context, r string) error  { return f.do("stop " + r) }
func (f *fakeActuator) Route(_ context.Context, r string, in bool) error {
	if in {
		return f.do("route-in " + r)
	}
	return f.do("route-out " + r)
}
func (f *fakeActuator) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ", ")
}

type harness struct {
	c   *Controller
	src *fakeSource
	act *fakeActuator
	now time.Time
}

func newHarness(t *testing.T, path string) *harness {
	t.Helper()
	h := &harness{src: &fakeSource{}, act: &fakeActuator{fail: map[string]error{}}, now: t0}
	h.c = &Controller{
		Settings: Settings{ScaleUpAbove: 50, ScaleDownBelow: 10, Window: time.Minute, Cooldown: 3 * time.Minute,
			MaxGap: 30 * time.Second, Backoff: 30 * time.Second, MaxBackoff: 5 * time.Minute},
		Every: 10 * time.Second, DrainMin: time.Minute, DrainMax: 5 * time.Minute, NearZero: 1,
		StepTimeout: 5 * time.Second, Source: h.src, Actuator: h.act, Store: FileStore{Path: path},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return h.now },
	}
	if err := h.c.Load(context.Background(), []Region{{Name: "us", AlwaysOn: true, Phase: Open, InDNS: true}, {Name: "eu", Phase: Closed}}); err != nil {
		t.Fatal(err)
	}
	return h
}

// tick advances the clock by one interval, samples, decides, and lets every
// actuator step that starts finish before returning.
func (h *harness) tick(t *testing.T) {
	t.Helper()
	h.now = h.now.Add(h.c.Every)
	h.c.Tick(context.Background())
	for i := 0; i < 10; i++ {
		h.c.mu.Lock()
		busy := h.c.busy
		h.c.mu.Unlock()
		if !busy {
			return
		}
		select {
		case r := <-h.c.done:
			h.c.finish(context.Background(), r)
		case <-time.After(5 * time.Second):
			t.Fatal("actuator step did not finish")
		}
	}
}

func (h *harness) ticks(t *testing.T, d time.Duration) {
	t.Helper()
	for end := h.now.Add(d); h.now.Before(end); {
		h.tick(t)
	}
}

func (h *harness) phase(name string) Phase {
	st, _, _ := h.c.Snapshot()
	for _, r := range st.Regions {
		if r.Name == name {
			return r.Phase
		}
	}
	return ""
}

func TestControllerOpensWarmsThenRoutesAndClosesByDraining(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	h := newHarness(t, path)
	h.src.set(map[string]float64{"eu": 80}, map[string]float64{"us": 100})
	h.ticks(t, 50*time.Second)
	if p := h.phase("eu"); p != Closed {
		t.Fatalf("eu is %s before the window filled", p)
	}
	h.ticks(t, 30*time.Second)
	if p := h.phase("eu"); p != Open {
		t.Fatalf("eu is %s after demand stayed above for the window; steps: %s", p, h.act.log())
	}
	if got, want := h.act.log(), "start eu, warm eu, route-in eu"; got != want {
		t.Fatalf("steps = %q, want %q", got, want)
	}
	// A restarted controller resumes from the stored state.
	h2 := newHarness(t, path)
	if p := h2.phase("eu"); p != Open {
		t.Fatalf("restarted controller sees eu %s, want open", p)
	}
	st, _, _ := h2.c.Snapshot()
	if len(st.Decisions) != 1 || st.Decisions[0].Result != "done" || st.Decisions[0].Action.Kind != ActOpen {
		t.Fatalf("stored decisions = %+v", st.Decisions)
	}

	// Load leaves: the region closes only after the cooldown, leaves the
	// answers first, serves its stragglers at least DrainMin, then stops.
	h.src.set(map[string]float64{}, map[string]float64{"us": 100, "eu": 3})
	h.ticks(t, 2*time.Minute)
	if p := h.phase("eu"); p != Open {
		t.Fatalf("eu is %s inside the cooldown", p)
	}
	h.ticks(t, 70*time.Second)
	if p := h.phase("eu"); p != Draining {
		t.Fatalf("eu is %s, want draining", p)
	}
	if !strings.HasSuffix(h.act.log(), "route-out eu") {
		t.Fatalf("a drain must leave the answers first: %s", h.act.log())
	}
	h.ticks(t, 30*time.Second) // load 3 > NearZero: still draining
	if p := h.phase("eu"); p != Draining {
		t.Fatalf("eu is %s while its stragglers are served", p)
	}
	h.src.set(map[string]float64{}, map[string]float64{"us": 100, "eu": 0})
	h.ticks(t, time.Minute)
	if p := h.phase("eu"); p != Closed || !strings.HasSuffix(h.act.log(), "route-out eu, stop eu") {
		t.Fatalf("eu is %s, steps %s; want closed after route-out, stop", p, h.act.log())
	}
}

func TestControllerDrainMaxStopsAStretchedDrain(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.json"))
	h.c.st.Regions[1] = Region{Name: "eu", Phase: Open, InDNS: true, Since: t0.Add(-time.Hour)}
	h.src.set(nil, map[string]float64{"eu": 5}) // below 10, above NearZero forever
	h.ticks(t, 70*time.Second)
	if p := h.phase("eu"); p != Draining {
		t.Fatalf("eu is %s, want draining", p)
	}
	h.ticks(t, 4*time.Minute)
	if p := h.phase("eu"); p != Draining {
		t.Fatalf("eu is %s before DrainMax with load left", p)
	}
	h.ticks(t, 70*time.Second)
	if p := h.phase("eu"); p != Closed {
		t.Fatalf("eu is %s after DrainMax", p)
	}
}

func TestControllerReopenCancelsADrain(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.json"))
	h.c.st.Regions[1] = Region{Name: "eu", Phase: Open, InDNS: true, Since: t0.Add(-time.Hour)}
	h.src.set(nil, map[string]float64{"eu": 5})
	h.ticks(t, 70*time.Second)
	if p := h.phase("eu"); p != Draining {
		t.Fatalf("eu is %s, want draining", p)
	}
	// Its users come back (served elsewhere now, so displaced).
	h.src.set(map[string]float64{"eu": 90}, map[string]float64{"eu": 5})
	h.ticks(t, 70*time.Second)
	if p := h.phase("eu"); p != Open {
		t.Fatalf("eu is %s, want open again", p)
	}
	if strings.Contains(h.act.log(), "stop eu") || strings.Contains(h.act.log(), "start eu") {
		t.Fatalf("a reopen must neither stop nor restart the edges: %s", h.act.log())
	}
}

func TestControllerFailedOpenBacksOff(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.json"))
	h.act.fail["start eu"] = errors.New("cluster unreachable")
	h.src.set(map[string]float64{"eu": 80}, nil)
	h.ticks(t, 80*time.Second)
	st, _, waiting := h.c.Snapshot()
	if p := h.phase("eu"); p != Closed || st.Regions[1].Failures != 1 {
		t.Fatalf("after a failed start eu is %s with %d failures", p, st.Regions[1].Failures)
	}
	if !strings.Contains(st.Decisions[0].Result, "cluster unreachable") {
		t.Fatalf("decision result = %q", st.Decisions[0].Result)
	}
	if !strings.Contains(h.act.log(), "stop eu") {
		t.Fatalf("half-started edges not stopped: %s", h.act.log())
	}
	if !strings.Contains(waiting["eu"], "backing off") {
		t.Fatalf("waiting = %v", waiting)
	}
	delete(h.act.fail, "start eu")
	h.ticks(t, 30*time.Second)
	if p := h.phase("eu"); p != Open {
		t.Fatalf("eu is %s after the backoff", p)
	}
}

func TestControllerFreezesOnAMissingSourceAndDryRunChangesNothing(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "s.json"))
	h.src.set(map[string]float64{"eu": 80}, nil)
	h.ticks(t, 70*time.Second)
	h.src.err = fmt.Errorf("dns eu-west-1 replica 0: connection refused")
	h.c.st.Regions[1].Phase = Closed // undo, and see that nothing reopens it while frozen
	h.act.calls = nil
	h.ticks(t, time.Minute)
	_, frozen, _ := h.c.Snapshot()
	if !strings.Contains(frozen, "connection refused") || h.act.log() != "" {
		t.Fatalf("frozen = %q, steps %q", frozen, h.act.log())
	}

	d := newHarness(t, filepath.Join(t.TempDir(), "d.json"))
	d.c.DryRun = true
	d.src.set(map[string]float64{"eu": 80}, nil)
	d.ticks(t, 3*time.Minute)
	st, _, _ := d.c.Snapshot()
	if d.act.log() != "" || d.phase("eu") != Closed || len(st.Decisions) != 1 || st.Decisions[0].Result != "dry run" {
		t.Fatalf("dry run: steps %q, phase %s, decisions %+v", d.act.log(), d.phase("eu"), st.Decisions)
	}
}
