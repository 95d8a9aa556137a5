package autoscale

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
)

func simFixture(t *testing.T, seed int64) SimConfig {
	t.Helper()
	var regions []SimRegion
	for i, n := range []string{"us-east-1", "eu-west-1", "ap-northeast-1", "ap-southeast-1", "sa-east-1", "ap-south-1"} {
		l, ok := config.BuiltinLocation(n)
		if !ok {
			t.Fatalf("no built-in location for %s", n)
		}
		regions = append(regions, SimRegion{Name: n, AlwaysOn: i == 0, Location: l})
	}
	return SimConfig{Regions: regions, Sources: Populations(), Peak: 1000, Step: time.Minute, TTL: 30 * time.Second, Seed: seed}
}

func simSettings() Settings {
	return Settings{ScaleUpAbove: 50, ScaleDownBelow: 20, Window: 5 * time.Minute, Cooldown: 30 * time.Minute,
		MaxGap: 3 * time.Minute, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff}
}

func TestSimulateSavesRegionHoursAndKeepsUsersNear(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		res := Simulate(simFixture(t, seed), simSettings())
		all, fixed, auto := res[0], res[1], res[2]
		t.Logf("seed %d:\n%s", seed, FormatSim(res))
		if all.RegionHours != 6*24 || fixed.RegionHours != 24 {
			t.Fatalf("fixed strategies' region-hours = %.1f, %.1f; want 144, 24", all.RegionHours, fixed.RegionHours)
		}
		if !(auto.RegionHours > fixed.RegionHours && auto.RegionHours < all.RegionHours) {
			t.Errorf("autoscaled region-hours %.1f not between %.1f and %.1f", auto.RegionHours, fixed.RegionHours, all.RegionHours)
		}
		if !(auto.MeanKm < fixed.MeanKm && auto.MeanKm >= all.MeanKm) {
			t.Errorf("autoscaled mean distance %.0f km not between %.0f and %.0f", auto.MeanKm, all.MeanKm, fixed.MeanKm)
		}
		if auto.Actions == 0 || auto.Actions > 40 {
			t.Errorf("autoscaled took %d actions", auto.Actions)
		}
	}
}

func TestSimulateIsDeterministic(t *testing.T) {
	a := Simulate(simFixture(t, 7), simSettings())
	b := Simulate(simFixture(t, 7), simSettings())
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different days:\n%s\n%s", FormatSim(a), FormatSim(b))
	}
	if !strings.Contains(FormatSim(a), "autoscaled hours open:") {
		t.Fatalf("table lacks the hours open:\n%s", FormatSim(a))
	}
}
