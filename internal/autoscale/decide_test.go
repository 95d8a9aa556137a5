package autoscale

import (
	"math/rand"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func settings() Settings {
	return Settings{ScaleUpAbove: 50, ScaleDownBelow: 10, Window: time.Minute, Cooldown: 5 * time.Minute,
		MaxOpen: 2, MaxGap: 15 * time.Second, Backoff: 30 * time.Second, MaxBackoff: 8 * time.Minute}
}

// series returns one complete sample every 10 s over the minute before now,
// with the given displaced and served rates for region r.
func series(now time.Time, r string, displaced, served float64) []Sample {
	var out []Sample
	for at := now.Add(-70 * time.Second); !at.After(now); at = at.Add(10 * time.Second) {
		out = append(out, Sample{At: at, Displaced: map[string]float64{r: displaced}, Served: map[string]float64{r: served}})
	}
	return out
}

func TestDecide(t *testing.T) {
	now := t0.Add(time.Hour)
	closed := func(name string) Region { return Region{Name: name, Phase: Closed} }
	open := func(name string, since time.Duration) Region {
		return Region{Name: name, Phase: Open, Since: now.Add(-since)}
	}
	tests := []struct {
		name     string
		regions  []Region
		samples  []Sample
		mod      func(*Settings)
		want     string // "open eu" / "close eu" / "" for none
		frozen   string // substring of Frozen
		waitingR string // region that must be listed as waiting
	}{
		{name: "demand above for the window opens",
			regions: []Region{closed("eu")}, samples: series(now, "eu", 80, 0), want: "open eu"},
		{name: "demand inside the band does nothing",
			regions: []Region{closed("eu")}, samples: series(now, "eu", 30, 0)},
		{name: "one dip below the threshold in the window holds the open",
			regions: []Region{closed("eu")}, samples: func() []Sample {
				s := series(now, "eu", 80, 0)
				s[3].Displaced["eu"] = 49
				return s
			}()},
		{name: "a window not yet full holds the open",
			regions: []Region{closed("eu")}, samples: series(now, "eu", 80, 0)[3:]},
		{name: "a gap in the window holds the open",
			regions: []Region{closed("eu")}, samples: func() []Sample {
				s := series(now, "eu", 80, 0)
				return append(s[:3:3], s[5:]...)
			}()},
		{name: "an incomplete sample inside the window holds the open",
			regions: []Region{closed("eu")}, samples: func() []Sample {
				s := series(now, "eu", 80, 0)
				s[3].Missing = []string{"dns-eu"}
				return s
			}()},
		{name: "an incomplete latest sample freezes",
			regions: []Region{closed("eu")}, samples: func() []Sample {
				s := series(now, "eu", 80, 0)
				s[len(s)-1].Missing = []string{"edge us-east-1/0"}
				return s
			}(), frozen: "lacks [edge us-east-1/0]"},
		{name: "a stale latest sample freezes",
			regions: []Region{closed("eu")}, samples: series(now.Add(-time.Minute), "eu", 80, 0), frozen: "old"},
		{name: "no samples freeze", regions: []Region{closed("eu")}, frozen: "no demand samples"},
		{name: "paused freezes", regions: []Region{closed("eu")}, samples: series(now, "eu", 80, 0),
			mod: func(s *Settings) { s.Paused = true }, frozen: "paused"},
		{name: "idle open region past cooldown closes",
			regions: []Region{open("eu", time.Hour)}, samples: series(now, "eu", 0, 3), want: "close eu"},
		{name: "idle open region inside cooldown stays",
			regions: []Region{open("eu", 2*time.Minute)}, samples: series(now, "eu", 0, 3), waitingR: "eu"},
		{name: "always-on region never closes",
			regions: []Region{{Name: "us", AlwaysOn: true, Phase: Open}}, samples: series(now, "us", 0, 0)},
		{name: "closed region inside cooldown does not reopen",
			regions: []Region{{Name: "eu", Phase: Closed, Since: now.Add(-time.Minute)}}, samples: series(now, "eu", 80, 0), waitingR: "eu"},
		{name: "maxOpen holds the open",
			regions: []Region{open("a", time.Hour), open("b", time.Hour), closed("eu")},
			samples: func() []Sample {
				s := series(now, "eu", 80, 0)
				for i := range s {
					s[i].Served["a"], s[i].Served["b"] = 100, 100
				}
				return s
			}(), mod: func(s *Settings) { s.MaxOpen = 2 }, waitingR: "eu"},
		{name: "one action in flight",
			regions: []Region{{Name: "a", Phase: Warming, Since: now}, closed("eu")},
			samples: series(now, "eu", 80, 0), waitingR: "eu"},
		{name: "a reopen cancels a drain",
			regions: []Region{{Name: "eu", Phase: Draining, Since: now.Add(-10 * time.Second)}},
			samples: series(now, "eu", 80, 0), want: "open eu"},
		{name: "backoff after a failure",
			regions: []Region{{Name: "eu", Phase: Closed, Failures: 2, FailedAt: now.Add(-40 * time.Second)}},
			samples: series(now, "eu", 80, 0), waitingR: "eu"},
		{name: "retry once the backoff ran out",
			regions: []Region{{Name: "eu", Phase: Closed, Failures: 2, FailedAt: now.Add(-61 * time.Second)}},
			samples: series(now, "eu", 80, 0), want: "open eu"},
		{name: "a pin opens without demand",
			regions: []Region{{Name: "eu", Phase: Closed, Pin: Open}}, samples: series(now, "eu", 0, 0), want: "open eu"},
		{name: "a pin holds a region open",
			regions: []Region{{Name: "eu", Phase: Open, Pin: Open}}, samples: series(now, "eu", 0, 0)},
		{name: "a pin closes despite demand",
			regions: []Region{{Name: "eu", Phase: Open, Since: now, Pin: Closed}}, samples: series(now, "eu", 0, 500), want: "close eu"},
		{name: "the most displaced demand opens first",
			regions: []Region{closed("ap"), closed("eu")},
			samples: func() []Sample {
				s := series(now, "eu", 80, 0)
				for i := range s {
					s[i].Displaced["ap"] = 200
				}
				return s
			}(), want: "open ap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := settings()
			if tc.mod != nil {
				tc.mod(&s)
			}
			d := Decide(now, tc.regions, tc.samples, s)
			got := ""
			if d.Action != nil {
				got = string(d.Action.Kind) + " " + d.Action.Region
				if d.Action.Reason == "" {
					t.Errorf("action %s has no reason", got)
				}
			}
			if got != tc.want {
				t.Errorf("action = %q, want %q (decision %+v)", got, tc.want, d)
			}
			if !strings.Contains(d.Frozen, tc.frozen) || (tc.frozen == "") != (d.Frozen == "") {
				t.Errorf("frozen = %q, want %q", d.Frozen, tc.frozen)
			}
			if tc.waitingR != "" && d.Waiting[tc.waitingR] == "" {
				t.Errorf("region %s not listed as waiting: %v", tc.waitingR, d.Waiting)
			}
		})
	}
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	s := settings()
	want := []time.Duration{0, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 8 * time.Minute}
	for n, w := range want {
		if got := s.backoff(n); got != w {
			t.Errorf("backoff(%d) = %s, want %s", n, got, w)
		}
	}
}

// TestDecideProperties runs seeded random demand through Decide and a
// simulated actuator that takes random time and sometimes fails, and checks
// the rules no input may break.
func TestDecideProperties(t *testing.T) {
	for seed := int64(1); seed <= 200; seed++ {
		checkRun(t, seed)
	}
}

func checkRun(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	s := settings()
	s.MaxOpen = 1 + rng.Intn(3)
	s.Window = time.Duration(20+rng.Intn(60)) * time.Second
	s.Cooldown = s.Window + time.Duration(rng.Intn(120))*time.Second
	names := []string{"us", "eu", "ap", "sa", "af"}
	regions := []Region{{Name: "us", AlwaysOn: true, Phase: Open}}
	for _, n := range names[1:] {
		regions = append(regions, Region{Name: n, Phase: Closed})
	}
	level := map[string]float64{}
	var samples []Sample
	// lastAction is when each region last began a change that took; a
	// failed action is no change, so a retry after the backoff may come
	// inside the cooldown.
	lastAction, prevAction := map[string]time.Time{}, map[string]time.Time{}
	lastKind := map[string]Kind{}
	var busyUntil time.Time
	now := t0
	for step := 0; step < 600; step++ {
		now = now.Add(5 * time.Second)
		// Demand wanders, sometimes jumps; a region's demand is served by
		// itself when running, else displaced to the always-on region.
		smp := Sample{At: now, Displaced: map[string]float64{}, Served: map[string]float64{}}
		for _, n := range names {
			if rng.Intn(20) == 0 {
				level[n] = float64(rng.Intn(120))
			}
			v := level[n] * (0.8 + 0.4*rng.Float64())
			r := &regions[indexOf(regions, n)]
			if r.Phase == Open || r.Phase == Opening || r.Phase == Warming {
				smp.Served[n] = v
			} else {
				smp.Displaced[n] = v
				smp.Served["us"] += v
			}
		}
		if rng.Intn(50) == 0 {
			smp.Missing = []string{"dns-x"}
		}
		if rng.Intn(40) != 0 { // sometimes a sample is lost
			samples = append(samples, smp)
		}
		// The actuator finishes transitions after a random delay.
		for i := range regions {
			r := &regions[i]
			if r.Phase.busy() && !now.Before(busyUntil) {
				if rng.Intn(6) == 0 { // failed: back where it was
					r.Failures++
					r.FailedAt = now
					lastAction[r.Name] = prevAction[r.Name]
					if r.Phase == Draining {
						r.Phase = Open
					} else {
						r.Phase = Closed
					}
					continue
				}
				r.Failures = 0
				switch r.Phase {
				case Opening:
					r.Phase = Warming
					busyUntil = now.Add(5 * time.Second)
				case Warming:
					r.Phase, r.Since = Open, now
				case Draining:
					r.Phase, r.Since = Closed, now
				}
			}
		}
		if len(samples) > 40 {
			samples = samples[len(samples)-40:]
		}
		d := Decide(now, regions, samples, s)
		if d.Action == nil {
			continue
		}
		a := *d.Action
		r := &regions[indexOf(regions, a.Region)]
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d step %d: %s: "+format, append([]any{seed, step, a}, args...)...)
		}
		if r.AlwaysOn {
			fail("acted on an always-on region")
		}
		for _, o := range regions {
			if o.Phase.busy() && o.Name != a.Region {
				fail("%s is %s: one action in flight", o.Name, o.Phase)
			}
		}
		win := windowOf(now, samples, s)
		switch a.Kind {
		case ActOpen:
			lo, _ := win.extremes("displaced", a.Region)
			if !win.covered || lo <= s.ScaleUpAbove {
				fail("opened without demand above %g for the window (min %g, covered %v)", s.ScaleUpAbove, lo, win.covered)
			}
			running := 0
			for _, o := range regions {
				if !o.AlwaysOn && o.Phase.running() {
					running++
				}
			}
			if r.Phase == Closed && running >= s.MaxOpen {
				fail("opened beyond maxOpen %d", s.MaxOpen)
			}
		case ActClose:
			_, hi := win.extremes("served", a.Region)
			if !win.covered || hi >= s.ScaleDownBelow {
				fail("closed with load not below %g for the window (max %g)", s.ScaleDownBelow, hi)
			}
			if now.Sub(r.Since) < s.Cooldown {
				fail("closed %s after opening, inside cooldown %s", now.Sub(r.Since), s.Cooldown)
			}
		}
		cancelDrain := a.Kind == ActOpen && r.Phase == Draining
		if last := lastAction[a.Region]; !last.IsZero() && !cancelDrain && now.Sub(last) < s.Cooldown {
			fail("two actions %s apart (%s then %s), inside cooldown %s", now.Sub(last), lastKind[a.Region], a.Kind, s.Cooldown)
		}
		if r.Failures > 0 && now.Sub(r.FailedAt) < s.backoff(r.Failures) {
			fail("retried inside the backoff")
		}
		prevAction[a.Region] = lastAction[a.Region]
		lastAction[a.Region], lastKind[a.Region] = now, a.Kind
		busyUntil = now.Add(time.Duration(rng.Intn(30)) * time.Second)
		if a.Kind == ActOpen {
			r.Phase, r.Since = Opening, now
		} else {
			r.Phase, r.Since = Draining, now
		}
	}
}

func indexOf(rs []Region, name string) int {
	for i, r := range rs {
		if r.Name == name {
			return i
		}
	}
	panic("no region " + name)
}

// TestActionCarriesBytesAndRTTGain: an action says the signal's bytes per
// second and, for an open, how much closer the region brings its users:
// means over the window's samples that have them.
func TestActionCarriesBytesAndRTTGain(t *testing.T) {
	now := t0.Add(time.Hour)
	smps := series(now, "eu", 80, 0)
	for i := range smps {
		smps[i].DisplacedBytes = map[string]float64{"eu": 2e6}
		if i%2 == 0 { // the gain is known in some samples only
			smps[i].RTTGain = map[string]float64{"eu": 61}
		}
	}
	d := Decide(now, []Region{{Name: "eu", Phase: Closed}}, smps, settings())
	if d.Action == nil || d.Action.Kind != ActOpen {
		t.Fatalf("decision %+v, want an open", d)
	}
	if a := d.Action; a.BytesPerSec != 2e6 || a.RTTGainMs != 61 {
		t.Fatalf("bytes %.0f/s, gain %.1f ms; want 2000000 and 61", a.BytesPerSec, a.RTTGainMs)
	}
	if s := d.Action.String(); !strings.Contains(s, "displaced 80.0–80.0 req/s, 1.9MiB/s, its users 61 ms closer over") {
		t.Errorf("action reads %q", s)
	}
	// Without them the line is as before.
	d = Decide(now, []Region{{Name: "eu", Phase: Closed}}, series(now, "eu", 80, 0), settings())
	if s := d.Action.String(); !strings.Contains(s, "(displaced 80.0–80.0 req/s over 7 samples") {
		t.Errorf("action reads %q", s)
	}
}
