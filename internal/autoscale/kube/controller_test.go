package kube

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/autoscale"
)

// demand is a Source that reports displaced demand for eu-west-1 until it
// has opened once, then no load at all: one open, one close.
type demand struct{ opened *atomic.Bool }

func (d demand) Sample(context.Context) (autoscale.Sample, error) {
	s := autoscale.Sample{Displaced: map[string]float64{}, Served: map[string]float64{"us-east-1": 10, "eu-west-1": 0}}
	if !d.opened.Load() {
		s.Displaced["eu-west-1"] = 100
	}
	return s, nil
}

// steps records the actuator's steps and checks, at each, what the dns and
// the cluster show.
type steps struct {
	*Actuator
	e      *env
	opened *atomic.Bool
	mu     sync.Mutex
	log    []string
}

func (s *steps) add(step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, step)
}

func (s *steps) Start(ctx context.Context, r string) error {
	s.add("start")
	return s.Actuator.Start(ctx, r)
}
func (s *steps) Warm(ctx context.Context, r string) error {
	s.add("warm")
	return s.Actuator.Warm(ctx, r)
}
func (s *steps) Route(ctx context.Context, r string, in bool) error {
	s.add(map[bool]string{true: "route in", false: "route out"}[in])
	err := s.Actuator.Route(ctx, r, in)
	if in && err == nil {
		s.opened.Store(true)
	}
	return err
}
func (s *steps) Stop(ctx context.Context, r string) error {
	s.add("stop")
	// The region left every dns replica's answers before its objects go.
	if got := s.e.routed(r); slices.Contains(got, true) {
		s.e.t.Errorf("stopping %s while dns replicas answer it: %v", r, got)
	}
	if n := s.e.edgeReplicas(); n != 2 {
		s.e.t.Errorf("at stop, %s's edges = %d: pruned before the drain ended", r, n)
	}
	return s.Actuator.Stop(ctx, r)
}

// TestControllerOpensAndClosesOnKubernetes: the controller, sampling
// demand for eu-west-1, opens it through the Kubernetes actuator (deployed,
// then in the dns answers), and when its load stays at zero, takes it out
// of the answers, drains, and prunes it; the state file says closed.
func TestControllerOpensAndClosesOnKubernetes(t *testing.T) {
	e := newEnv(t, "")
	var opened atomic.Bool
	rec := &steps{Actuator: e.actuator(), e: e, opened: &opened}
	every := 100 * time.Millisecond
	c := &autoscale.Controller{
		Settings: autoscale.SettingsOf(e.cfg, every), Every: every,
		DrainMin: 2 * time.Second, DrainMax: 5 * time.Second, NearZero: 1, StepTimeout: time.Minute,
		Source: demand{&opened}, Actuator: rec, Store: autoscale.FileStore{Path: filepath.Join(t.TempDir(), "state.json")},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now,
	}
	rec.Phase = func(r string) autoscale.Phase {
		st, _, _ := c.Snapshot()
		for _, x := range st.Regions {
			if x.Name == r {
				return x.Phase
			}
		}
		return autoscale.Closed
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	if err := c.Load(ctx, autoscale.RegionsOf(e.cfg)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for {
		if opened.Load() && rec.Phase("eu-west-1") == autoscale.Closed {
			break
		}
		if ctx.Err() != nil {
			rec.mu.Lock()
			t.Fatalf("eu-west-1 did not open and close in time: steps %v, phase %s", rec.log, rec.Phase("eu-west-1"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec.mu.Lock()
	got := slices.Clone(rec.log)
	rec.mu.Unlock()
	if want := []string{"start", "warm", "route in", "route out", "stop"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	if n := e.edgeReplicas(); n != -1 {
		t.Errorf("closed region's edges: %d, want pruned", n)
	}
	st, err := c.Store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Decisions) != 2 || st.Decisions[0].Result != "done" || st.Decisions[1].Result != "done" {
		t.Errorf("stored decisions: %+v", st.Decisions)
	}
}
