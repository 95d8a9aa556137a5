package autoscale

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
)

// A Population is where users are whose demand the simulation replays: where its
// users are, its share of the busiest moment's traffic, and its UTC offset
// (its evening peak follows the sun).
type Population struct {
	Name     string
	Location config.Location
	Share    float64
	UTC      float64 // hours
}

// Populations is the world the simulation replays by default: one population
// centre per continent (two for Asia), shares roughly as CDN traffic splits.
func Populations() []Population {
	return []Population{
		{"north-america", config.Location{Lat: 40.7, Lon: -74.0}, 0.30, -5},
		{"europe", config.Location{Lat: 50.1, Lon: 8.7}, 0.25, 1},
		{"east-asia", config.Location{Lat: 35.7, Lon: 139.7}, 0.15, 9},
		{"south-east-asia", config.Location{Lat: 1.35, Lon: 103.8}, 0.08, 8},
		{"india", config.Location{Lat: 19.1, Lon: 72.9}, 0.08, 5.5},
		{"south-america", config.Location{Lat: -23.5, Lon: -46.6}, 0.07, -3},
		{"oceania", config.Location{Lat: -33.9, Lon: 151.2}, 0.04, 10},
		{"africa", config.Location{Lat: -26.2, Lon: 28.0}, 0.03, 2},
	}
}

// SimConfig is one simulated day.
type SimConfig struct {
	Regions []SimRegion
	Sources []Population
	// Peak is the total request rate at the busiest moment of the day.
	Peak float64
	// Step is the sampling and decision interval.
	Step time.Duration
	// TTL is the dns answers' TTL: a drain lasts two of them.
	TTL  time.Duration
	Seed int64
}

// SimRegion is a region of the file with its location.
type SimRegion struct {
	Name     string
	AlwaysOn bool
	Location config.Location
}

// SimResult is what a day cost and what users got, for one strategy.
type SimResult struct {
	Strategy    string
	RegionHours float64
	// MeanKm is the traffic-weighted great-circle distance from users to
	// the region that served them; RTTms is what that distance costs at
	// least (light in fibre covers about 100 km of round trip per ms).
	MeanKm, RTTms float64
	Actions       int
	HoursOpen     map[string]float64
	// Spike names the source and hour of the day's spike.
	Spike string
}

// SimRegionsOf reads the regions of the file with their locations.
func SimRegionsOf(c *config.CDN) ([]SimRegion, error) {
	var out []SimRegion
	for _, r := range c.AllRegions() {
		loc, ok := config.LocationOf(r.Region)
		if !ok {
			return nil, fmt.Errorf("%s: region %q has no location: give %s.location", r.Path, r.Name, r.Path)
		}
		out = append(out, SimRegion{Name: r.Name, AlwaysOn: !r.Autoscale, Location: loc})
	}
	return out, nil
}

// demand returns each source's request rate at time t of the day: a daily
// wave peaking at 20:00 local time and bottoming out at a quarter of the
// peak, and the day's spike (four times the wave for 45 minutes).
func (sc SimConfig) demand(t time.Duration, spikeSrc int, spikeAt time.Duration) []float64 {
	out := make([]float64, len(sc.Sources))
	for i, s := range sc.Sources {
		local := math.Mod(t.Hours()+s.UTC+24, 24)
		wave := 0.25 + 0.75*(1+math.Cos(2*math.Pi*(local-20)/24))/2
		v := sc.Peak * s.Share * wave
		if i == spikeSrc && t >= spikeAt && t < spikeAt+45*time.Minute {
			v *= 4
		}
		out[i] = v
	}
	return out
}

// Simulate replays one day of demand three ways: every region always on,
// only the always-on regions, and the autoscaler deciding with Decide and
// settings s. Users go to the nearest region in DNS.
func Simulate(sc SimConfig, s Settings) []SimResult {
	rng := rand.New(rand.NewSource(sc.Seed))
	spikeSrc := rng.Intn(len(sc.Sources))
	spikeAt := time.Duration(rng.Intn(22*60)) * time.Minute
	spike := fmt.Sprintf("%s ×4 at %02d:%02d UTC for 45m", sc.Sources[spikeSrc].Name, int(spikeAt.Hours()), int(spikeAt.Minutes())%60)
	fixed := func(name string, on func(SimRegion) bool) SimResult {
		regions := make([]Region, len(sc.Regions))
		for i, r := range sc.Regions {
			regions[i] = Region{Name: r.Name, AlwaysOn: true, Phase: Closed}
			if on(r) {
				regions[i].Phase = Open
			}
		}
		res := sc.run(regions, nil, spikeSrc, spikeAt)
		res.Strategy = name
		return res
	}
	auto := make([]Region, len(sc.Regions))
	for i, r := range sc.Regions {
		auto[i] = Region{Name: r.Name, AlwaysOn: r.AlwaysOn, Phase: Closed}
		if r.AlwaysOn {
			auto[i].Phase = Open
		}
	}
	res := []SimResult{
		fixed("every region always on", func(SimRegion) bool { return true }),
		fixed("only the always-on regions", func(r SimRegion) bool { return r.AlwaysOn }),
	}
	a := sc.run(auto, &s, spikeSrc, spikeAt)
	a.Strategy = "autoscaled"
	res = append(res, a)
	for i := range res {
		res[i].Spike = spike
	}
	return res
}

// run steps through the day. With s nil the regions never change.
func (sc SimConfig) run(regions []Region, s *Settings, spikeSrc int, spikeAt time.Duration) SimResult {
	res := SimResult{HoursOpen: map[string]float64{}}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []Sample
	var weightedKm, total float64
	drain := 2 * sc.TTL
	stepsOpen := map[string]int{}
	for t := time.Duration(0); t < 24*time.Hour; t += sc.Step {
		now := start.Add(t)
		smp := Sample{At: now, Displaced: map[string]float64{}, Served: map[string]float64{}}
		for i, d := range sc.demand(t, spikeSrc, spikeAt) {
			near := sc.nearest(sc.Sources[i].Location, regions, func(Region) bool { return true })
			serve := sc.nearest(sc.Sources[i].Location, regions, func(r Region) bool { return r.Phase == Open })
			if serve < 0 {
				continue
			}
			if near != serve {
				smp.Displaced[regions[near].Name] += d
			}
			smp.Served[regions[serve].Name] += d
			weightedKm += d * config.DistanceKm(sc.Sources[i].Location, sc.Regions[serve].Location)
			total += d
		}
		for _, r := range regions {
			if r.Phase.running() {
				stepsOpen[r.Name]++
			}
		}
		if s == nil {
			continue
		}
		samples = append(samples, smp)
		if cut := now.Add(-s.Window - 2*sc.Step); len(samples) > 0 && samples[0].At.Before(cut) {
			samples = samples[1:]
		}
		// The actuator: opening and warming take a step each, a drain two
		// TTLs.
		for i := range regions {
			r := &regions[i]
			switch {
			case r.Phase == Opening:
				r.Phase, r.Since = Warming, now
			case r.Phase == Warming:
				r.Phase, r.Since = Open, now
			case r.Phase == Draining && now.Sub(r.Since) >= drain:
				r.Phase, r.Since = Closed, now
			}
		}
		d := Decide(now, regions, samples, *s)
		if d.Action == nil {
			continue
		}
		res.Actions++
		for i := range regions {
			if regions[i].Name == d.Action.Region {
				if d.Action.Kind == ActOpen {
					regions[i].Phase, regions[i].Since = Opening, now
				} else {
					regions[i].Phase, regions[i].Since = Draining, now
				}
			}
		}
	}
	steps := 0 // summed as integers: float sums in map order differ run to run
	for n, k := range stepsOpen {
		res.HoursOpen[n] = float64(k) * sc.Step.Hours()
		steps += k
	}
	res.RegionHours = float64(steps) * sc.Step.Hours()
	if total > 0 {
		res.MeanKm = weightedKm / total
		res.RTTms = res.MeanKm / 100
	}
	return res
}

// nearest returns the index of the nearest region that ok accepts, or -1.
func (sc SimConfig) nearest(l config.Location, regions []Region, ok func(Region) bool) int {
	best, bestKm := -1, math.Inf(1)
	for i, r := range regions {
		if !ok(r) {
			continue
		}
		if km := config.DistanceKm(l, sc.Regions[i].Location); km < bestKm {
			best, bestKm = i, km
		}
	}
	return best
}

// FormatSim writes the results as a table, with each region's hours open.
func FormatSim(res []SimResult) string {
	out := fmt.Sprintf("one simulated day; spike: %s\n", res[0].Spike)
	out += fmt.Sprintf("%-28s %12s %10s %12s %8s\n", "STRATEGY", "REGION-HOURS", "MEAN KM", "RTT (≥ ms)", "ACTIONS")
	for _, r := range res {
		out += fmt.Sprintf("%-28s %12.1f %10.0f %12.1f %8d\n", r.Strategy, r.RegionHours, r.MeanKm, r.RTTms, r.Actions)
	}
	last := res[len(res)-1]
	names := make([]string, 0, len(last.HoursOpen))
	for n := range last.HoursOpen {
		names = append(names, n)
	}
	sort.Strings(names)
	out += "autoscaled hours open:"
	for _, n := range names {
		out += fmt.Sprintf(" %s %.1f", n, last.HoursOpen[n])
	}
	return out + "\n"
}
