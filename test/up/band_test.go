package up_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/autoscale"
	"github.com/kubecdn/kubecdn/internal/loadgen"
	"github.com/kubecdn/kubecdn/internal/local"
)

// step is one stretch of load from Dublin at one rate.
type step struct {
	rps float64
	dur time.Duration
}

// dublinLoad sends steps one after the other, as users from Dublin
// resolving through the dns, and fails the test on any failed request.
func dublinLoad(t *testing.T, c *autoscaleCDN, steps ...step) {
	t.Helper()
	twin, _ := loadgen.LoopbackTwin(netip.MustParsePrefix(dublin))
	for _, s := range steps {
		sum, err := loadgen.Run(context.Background(), loadgen.Options{URL: fmt.Sprintf("http://%s:%s/", hostname, c.port), DNS: c.dns,
			From: netip.MustParsePrefix(dublin), Source: twin, Rate: s.rps, Duration: s.dur, Timeout: 5 * time.Second, Seed: 3}, discard{})
		if err != nil || sum.Failed > 0 {
			t.Errorf("load %g req/s for %s: %v, %d of %d failed: %v", s.rps, s.dur, err, sum.Failed, sum.Requests, sum.Errors)
		}
	}
}

func decisionsOf(v local.AutoscaleView, region string) []autoscale.Record {
	var out []autoscale.Record
	for _, d := range v.State.Decisions {
		if d.Action.Region == region {
			out = append(out, d)
		}
	}
	return out
}

// TestUpAutoscaleSwingsInsideTheBandCauseNoAction is the hysteresis
// check end to end: demand from Dublin swinging below scaleUpAbove, with
// spikes above it shorter than the window, opens nothing; sustained demand
// opens eu-west-1 once; its load then swinging above scaleDownBelow, with
// dips below it shorter than the window, for longer than the cooldown,
// closes nothing. One action in all, read from up's autoscale state.
func TestUpAutoscaleSwingsInsideTheBandCauseNoAction(t *testing.T) {
	c := newAutoscaleCDN(t, true, func(c *autoscaleCDN) {
		c.eastIP, c.euIP = "127.0.0.122", "127.0.0.124"
		c.window, c.cooldown = 4*time.Second, 8*time.Second
	})
	p := startUp(t, c.args...)
	p.WaitBanner(t, c.control)
	if !edgesCountDemand(t, c) {
		t.Skip("the edges do not count demand by nearest region; the thresholds here are users' requests per second")
	}
	spike := step{2.5 * c.up, 1500 * time.Millisecond} // above scaleUpAbove, shorter than the window
	inBand := func(f float64) step { return step{c.down + f*(c.up-c.down), 3 * time.Second} }

	// Closed: swings under scaleUpAbove with short spikes over it.
	dublinLoad(t, c, inBand(0.3), inBand(0.8), spike, inBand(0.5), spike, inBand(0.2), spike, inBand(0.9))
	v := autoscaleView(t, c.control)
	if d := decisionsOf(v, "eu-west-1"); len(d) > 0 || phaseOf(v, "eu-west-1") != "closed" {
		t.Fatalf("demand inside the band with spikes shorter than the window (%s) moved eu-west-1: phase %s, decisions %+v",
			c.window, phaseOf(v, "eu-west-1"), d)
	}

	// Sustained demand opens it.
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		for deadline := time.Now().Add(c.window + 10*time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if phaseOf(autoscaleView(t, c.control), "eu-west-1") == "open" {
				return
			}
		}
	}()
	dublinLoad(t, c, step{1.5 * c.up, c.window + 6*time.Second})
	<-opened
	if ph := phaseOf(autoscaleView(t, c.control), "eu-west-1"); ph != "open" {
		t.Fatalf("sustained %g req/s for %s: eu-west-1 %s", 1.5*c.up, c.window+6*time.Second, ph)
	}

	// Open: its load swings above scaleDownBelow, with dips under it
	// shorter than the window, for longer than the cooldown.
	dip := step{c.down / 3, 1500 * time.Millisecond}
	start := time.Now()
	for time.Since(start) < c.cooldown+c.window+2*time.Second {
		dublinLoad(t, c, inBand(0.2), dip, inBand(0.6), inBand(0.1), dip)
	}
	v = autoscaleView(t, c.control)
	d := decisionsOf(v, "eu-west-1")
	if len(d) != 1 || d[0].Action.Kind != autoscale.ActOpen || phaseOf(v, "eu-west-1") != "open" {
		t.Errorf("want one action (the open) and eu-west-1 open; phase %s, decisions %+v", phaseOf(v, "eu-west-1"), d)
	}
	if len(d) > 0 {
		t.Logf("one action: %s; then %s of load swinging inside the band (cooldown %s, window %s)",
			d[0].Action, time.Since(start).Round(time.Second), c.cooldown, c.window)
	}
	p.Stop(t)
}
