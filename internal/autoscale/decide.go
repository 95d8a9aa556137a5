// Package autoscale decides when an autoscale region opens and when it
// closes. Decide is a pure function of the time, the regions' states, the
// recent demand samples and the settings; everything that measures demand or
// changes a region lives elsewhere and calls it, so the rules below can be
// read, table-tested and property-tested on their own.
//
// The rules:
//   - A closed autoscale region opens when the demand it would serve (the
//     requests that open regions serve to clients whose nearest region it
//     is) stays above ScaleUpAbove for the whole Window.
//   - An open autoscale region closes when the load it serves stays below
//     ScaleDownBelow for the whole Window and it has been open at least
//     Cooldown. Always-on regions never close.
//   - No region changes again within Cooldown of its last change, at most
//     MaxOpen autoscale regions run at once, and one action is in flight at
//     a time (a reopen may cut a drain short: its users are waiting).
//   - A failed action backs off, doubling from Backoff up to MaxBackoff.
//   - A stale or incomplete latest sample freezes every decision: kubecdn
//     does not guess demand it cannot see. A window with a gap or an
//     incomplete sample in it is not a window that "stayed above".
//   - A region an operator pinned is driven to its pin and otherwise left
//     alone.
package autoscale

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/kubecdn/kubecdn/internal/units"
)

// Phase is where a region is in its life cycle:
// closed → opening → warming → open → draining → closed.
type Phase string

// The phases.
const (
	Closed   Phase = "closed"
	Opening  Phase = "opening"  // its objects are being applied, edges starting
	Warming  Phase = "warming"  // edges up, fetching the hottest keys, not yet in DNS
	Open     Phase = "open"     // in DNS, serving
	Draining Phase = "draining" // out of DNS, edges serving until load is near zero
)

// busy reports whether the phase is a transition still under way.
func (p Phase) busy() bool { return p == Opening || p == Warming || p == Draining }

// running reports whether the region's edges run (and cost money).
func (p Phase) running() bool { return p != Closed && p != "" }

// Region is one region as the autoscaler knows it.
type Region struct {
	Name     string `json:"name"`
	AlwaysOn bool   `json:"alwaysOn,omitempty"`
	Phase    Phase  `json:"phase"`
	// Since is when Phase began (zero for a region never changed).
	Since time.Time `json:"since"`
	// Pin is Open or Closed when an operator pinned the region by hand
	// (kubecdn region open|close); "" when decisions are free to move it.
	Pin Phase `json:"pin,omitempty"`
	// Failures counts the consecutive failed actions on the region and
	// FailedAt is when the last one failed.
	Failures int       `json:"failures,omitempty"`
	FailedAt time.Time `json:"failedAt"`
	// InDNS is set while the dns answers with the region.
	InDNS bool `json:"inDNS,omitempty"`
}

// Sample is the demand seen at one moment, summed over every dns replica and
// edge.
type Sample struct {
	At time.Time
	// Missing names the sources (edges, dns replicas) that did not report
	// for this sample; a sample with any missing is incomplete.
	Missing []string
	// Displaced is the request rate (per second) that open regions serve to
	// clients whose nearest region is the named one, for regions not open.
	Displaced map[string]float64
	// Served is the request rate (per second) each running region serves.
	Served map[string]float64
	// DisplacedBytes and ServedBytes are the same in body bytes per second,
	// and RTTGain the round trip (ms) opening a region would save its
	// displaced users' requests on average; each absent where the sources
	// do not say (the dns counts queries only).
	DisplacedBytes, ServedBytes, RTTGain map[string]float64
	// DNSRoutes is, by dns replica (its admin URL), whether each region it
	// knows is in its answers; replicas that do not say are absent. The
	// controller reasserts its regions' routing where a replica differs.
	DNSRoutes map[string]map[string]bool
}

// Describe says what the sample saw of region, for status: its displaced
// demand (with the RTT gain opening it would bring) if it has some, else
// the load it serves; "" when the sample has neither.
func (s Sample) Describe(region string) string {
	rate := func(req, bytes map[string]float64) string {
		out := fmt.Sprintf("%.1f req/s", req[region])
		if b, ok := bytes[region]; ok {
			out += ", " + units.FormatSize(int64(b)) + "/s"
		}
		return out
	}
	if v, ok := s.Served[region]; ok && (v > 0 || s.Displaced[region] == 0) {
		return "serves " + rate(s.Served, s.ServedBytes)
	}
	if _, ok := s.Displaced[region]; !ok {
		return ""
	}
	out := "displaced " + rate(s.Displaced, s.DisplacedBytes)
	if g, ok := s.RTTGain[region]; ok {
		out += fmt.Sprintf(", its users %.0f ms closer if open", g)
	}
	return out
}

// Complete reports whether every source reported.
func (s Sample) Complete() bool { return len(s.Missing) == 0 }

// Settings are the thresholds of spec.autoscale and the controller's limits.
type Settings struct {
	ScaleUpAbove   float64 // requests/s of displaced demand that open a region
	ScaleDownBelow float64 // requests/s of served load under which a region closes
	Window         time.Duration
	Cooldown       time.Duration
	// MaxOpen bounds the autoscale regions running at once; 0 means no bound.
	MaxOpen int
	// MaxGap is the longest gap between samples (and the oldest the latest
	// may be) before the autoscaler stops trusting what it sees.
	MaxGap time.Duration
	// Backoff is the wait after a first failed action; it doubles with each
	// further failure up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	Paused              bool
}

// Kind is what an action does.
type Kind string

// The actions.
const (
	ActOpen  Kind = "open"
	ActClose Kind = "close"
)

// Action is one decision, with why it was taken and on what figures.
type Action struct {
	Kind   Kind   `json:"kind"`
	Region string `json:"region"`
	Reason string `json:"reason"`
	// Signal is "displaced" or "served", or "pin" for an operator's pin;
	// Min and Max are its extremes over the window of Samples samples
	// from From to To.
	Signal  string    `json:"signal"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples int       `json:"samples"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	// BytesPerSec is the signal's mean in body bytes per second over the
	// window, and RTTGainMs (opens) the mean round trip opening the
	// region saves each of its users' requests; zero where the samples
	// do not say.
	BytesPerSec float64 `json:"bytesPerSec,omitempty"`
	RTTGainMs   float64 `json:"rttGainMs,omitempty"`
}

func (a Action) String() string {
	if a.Signal == "pin" {
		return fmt.Sprintf("%s %s: %s", a.Kind, a.Region, a.Reason)
	}
	extra := ""
	if a.BytesPerSec > 0 {
		extra += ", " + units.FormatSize(int64(a.BytesPerSec)) + "/s"
	}
	if a.RTTGainMs > 0 {
		extra += fmt.Sprintf(", its users %.0f ms closer", a.RTTGainMs)
	}
	return fmt.Sprintf("%s %s: %s (%s %.1f–%.1f req/s%s over %d samples, %s to %s)", a.Kind, a.Region, a.Reason,
		a.Signal, a.Min, a.Max, extra, a.Samples, a.From.UTC().Format(time.TimeOnly), a.To.UTC().Format(time.TimeOnly))
}

// Decision is what Decide returns: at most one action, or why none.
type Decision struct {
	Action *Action
	// Frozen says why no decision could be made at all (paused, stale or
	// incomplete samples); empty when the autoscaler looked and chose.
	Frozen string
	// Waiting says, per region, why a region that is not moving is not
	// moving when that is not simply "demand is inside the band" (cooldown,
	// backoff, maxOpen, another action in flight); for status and logs.
	Waiting map[string]string
}

// Backoff returns how long after its last failure a region with failures
// consecutive failed actions waits before the next try.
func (s Settings) backoff(failures int) time.Duration {
	if failures <= 0 || s.Backoff <= 0 {
		return 0
	}
	d := s.Backoff
	for i := 1; i < failures && d < s.MaxBackoff; i++ {
		d *= 2
	}
	if s.MaxBackoff > 0 && d > s.MaxBackoff {
		d = s.MaxBackoff
	}
	return d
}

// Decide chooses at most one action from the regions' states and the demand
// samples (in any order; those older than the window are ignored).
func Decide(now time.Time, regions []Region, samples []Sample, s Settings) Decision {
	d := Decision{Waiting: map[string]string{}}
	if s.Paused {
		d.Frozen = "paused"
		return d
	}
	win := windowOf(now, samples, s)
	if win.frozen != "" {
		d.Frozen = win.frozen
		return d
	}
	var inFlight string
	running := 0
	for _, r := range regions {
		if r.Phase.busy() {
			inFlight = r.Name
		}
		if !r.AlwaysOn && r.Phase.running() {
			running++
		}
	}
	var opens, closes []Action
	for _, r := range regions {
		if r.AlwaysOn {
			continue
		}
		if wait := now.Sub(r.FailedAt); r.Failures > 0 && wait < s.backoff(r.Failures) {
			d.Waiting[r.Name] = fmt.Sprintf("backing off after %d failed actions (%s left)", r.Failures, (s.backoff(r.Failures) - wait).Round(time.Second))
			continue
		}
		if r.Pin != "" {
			if a, ok := pinAction(r); ok {
				opens = append(opens, a) // pins go first: an operator asked
			}
			continue
		}
		cool := !r.Since.IsZero() && now.Sub(r.Since) < s.Cooldown
		switch r.Phase {
		case Closed, "", Draining:
			a, ok := win.above(r.Name, s.ScaleUpAbove)
			if !ok {
				continue
			}
			a.Kind, a.Region = ActOpen, r.Name
			a.Reason = fmt.Sprintf("displaced demand above %g req/s for %s", s.ScaleUpAbove, s.Window)
			if r.Phase == Draining {
				a.Reason += "; cancels the drain"
			}
			if cool && r.Phase != Draining {
				d.Waiting[r.Name] = fmt.Sprintf("would open, in cooldown until %s", r.Since.Add(s.Cooldown).UTC().Format(time.TimeOnly))
				continue
			}
			opens = append(opens, a)
		case Open:
			a, ok := win.below(r.Name, s.ScaleDownBelow)
			if !ok {
				continue
			}
			if cool {
				d.Waiting[r.Name] = fmt.Sprintf("would close, open less than the cooldown (until %s)", r.Since.Add(s.Cooldown).UTC().Format(time.TimeOnly))
				continue
			}
			a.Kind, a.Region = ActClose, r.Name
			a.Reason = fmt.Sprintf("served load below %g req/s for %s", s.ScaleDownBelow, s.Window)
			closes = append(closes, a)
		}
	}
	// Opens first: users are being served from afar. Among them, pins, then
	// the most demand; closes the least load first.
	sort.SliceStable(opens, func(i, j int) bool {
		if (opens[i].Signal == "pin") != (opens[j].Signal == "pin") {
			return opens[i].Signal == "pin"
		}
		if opens[i].Min != opens[j].Min {
			return opens[i].Min > opens[j].Min
		}
		return opens[i].Region < opens[j].Region
	})
	sort.SliceStable(closes, func(i, j int) bool {
		if closes[i].Max != closes[j].Max {
			return closes[i].Max < closes[j].Max
		}
		return closes[i].Region < closes[j].Region
	})
	for _, a := range append(opens, closes...) {
		phase := phaseOf(regions, a.Region)
		if inFlight != "" && inFlight != a.Region {
			d.Waiting[a.Region] = fmt.Sprintf("would %s, waiting for %s to finish %s", a.Kind, inFlight, phaseOf(regions, inFlight))
			continue
		}
		if inFlight == a.Region && !(phase == Draining && a.Kind == ActOpen) {
			continue // its own transition is under way
		}
		if a.Kind == ActOpen && phase == Closed && s.MaxOpen > 0 && running >= s.MaxOpen {
			d.Waiting[a.Region] = fmt.Sprintf("would open, %d autoscale regions already run (maxOpen %d)", running, s.MaxOpen)
			continue
		}
		a := a
		d.Action = &a
		delete(d.Waiting, a.Region)
		return d
	}
	return d
}

func phaseOf(regions []Region, name string) Phase {
	for _, r := range regions {
		if r.Name == name {
			if r.Phase == "" {
				return Closed
			}
			return r.Phase
		}
	}
	return Closed
}

// pinAction drives a pinned region towards its pin.
func pinAction(r Region) (Action, bool) {
	phase := r.Phase
	if phase == "" {
		phase = Closed
	}
	switch {
	case r.Pin == Open && (phase == Closed || phase == Draining):
		return Action{Kind: ActOpen, Region: r.Name, Reason: "pinned open by an operator", Signal: "pin"}, true
	case r.Pin == Closed && phase == Open:
		return Action{Kind: ActClose, Region: r.Name, Reason: "pinned closed by an operator", Signal: "pin"}, true
	}
	return Action{}, false
}

// window is the samples of the last Window, checked for gaps.
type window struct {
	samples []Sample // complete, in time order, from the one vouching for the window's start
	covered bool     // the samples cover the whole window without a gap
	frozen  string
}

func windowOf(now time.Time, all []Sample, s Settings) window {
	sorted := append([]Sample(nil), all...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].At.Before(sorted[j].At) })
	var w window
	var latest *Sample
	for i := range sorted {
		if !sorted[i].At.After(now) {
			latest = &sorted[i]
		}
	}
	switch {
	case latest == nil:
		w.frozen = "no demand samples yet"
		return w
	case s.MaxGap > 0 && now.Sub(latest.At) > s.MaxGap:
		w.frozen = fmt.Sprintf("latest demand sample is %s old (more than %s)", now.Sub(latest.At).Round(time.Second), s.MaxGap)
		return w
	case !latest.Complete():
		w.frozen = fmt.Sprintf("latest demand sample lacks %v", latest.Missing)
		return w
	}
	// The window is vouched for by the latest complete sample at or before
	// its start, and every complete sample after it, no two further apart
	// than MaxGap; an incomplete sample inside it voids it.
	start := now.Add(-s.Window)
	first := -1
	for i, x := range sorted {
		if x.At.After(start) {
			break
		}
		if x.Complete() {
			first = i
		}
	}
	if first < 0 {
		return w
	}
	w.covered = true
	for _, x := range sorted[first:] {
		if x.At.After(now) {
			break
		}
		if !x.Complete() {
			w.covered = false
			continue
		}
		if n := len(w.samples); s.MaxGap > 0 && n > 0 && x.At.Sub(w.samples[n-1].At) > s.MaxGap {
			w.covered = false
		}
		w.samples = append(w.samples, x)
	}
	return w
}

// extremes returns the signal's min and max over the window.
func (w window) extremes(signal string, region string) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range w.samples {
		m := x.Displaced
		if signal == "served" {
			m = x.Served
		}
		v := m[region]
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}

func (w window) action(signal, region string) Action {
	lo, hi := w.extremes(signal, region)
	a := Action{Signal: signal, Min: lo, Max: hi, Samples: len(w.samples),
		From: w.samples[0].At, To: w.samples[len(w.samples)-1].At}
	mean := func(m func(Sample) map[string]float64) float64 {
		sum, n := 0.0, 0
		for _, x := range w.samples {
			if v, ok := m(x)[region]; ok {
				sum, n = sum+v, n+1
			}
		}
		if n == 0 {
			return 0
		}
		return sum / float64(n)
	}
	if signal == "served" {
		a.BytesPerSec = mean(func(x Sample) map[string]float64 { return x.ServedBytes })
	} else {
		a.BytesPerSec = mean(func(x Sample) map[string]float64 { return x.DisplacedBytes })
		a.RTTGainMs = mean(func(x Sample) map[string]float64 { return x.RTTGain })
	}
	return a
}

// above reports whether region's displaced demand stayed above limit for the
// whole window.
func (w window) above(region string, limit float64) (Action, bool) {
	if !w.covered || limit <= 0 {
		return Action{}, false
	}
	a := w.action("displaced", region)
	return a, a.Min > limit
}

// below reports whether region's served load stayed below limit for the
// whole window.
func (w window) below(region string, limit float64) (Action, bool) {
	if !w.covered {
		return Action{}, false
	}
	a := w.action("served", region)
	return a, a.Max < limit
}
