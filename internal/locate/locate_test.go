package locate

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/config"
)

const testFile = `apiVersion: kubecdn.io/v1alpha1
kind: CDN
metadata: {name: test}
spec:
  zone: cdn.example.com
  hostnames: [www.cdn.example.com]
  origin: {url: "http://127.0.0.1:1"}
  routing:
    policy: geo
    geo:
      networks:
        - {cidr: 198.51.100.0/24, location: {lat: 40.7, lon: -74.0}}   # New York
        - {cidr: 203.0.113.0/24, location: {lat: 53.3, lon: -6.3}}     # Dublin
        - {cidr: 192.0.2.0/24, location: {lat: 37.8, lon: -122.4}}    # San Francisco
        - {cidr: "2001:db8:1::/48", location: {lat: 53.3, lon: -6.3}}  # Dublin
%s
  regions:
    alwaysOn:
      - {name: us-east-1, provider: aws, edges: ["127.0.0.2:80"]}
      - {name: us-west-2, provider: aws, edges: ["127.0.0.3:80"]}
    autoscale:
      - {name: eu-west-1, provider: aws}
`

func load(t *testing.T, extra string) *config.CDN {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubecdn.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(testFile, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newFinder(t *testing.T, cfg *config.CDN, o Options) *Finder {
	t.Helper()
	f, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestNearest(t *testing.T) {
	cfg := load(t, "")
	// us-east-1 measured as far from New York (a bad path) and us-west-2 as
	// close to Dublin: measurements beat the distance's estimate.
	measured := func(a netip.Addr, region string) (float64, bool) {
		switch {
		case netip.MustParsePrefix("198.51.100.0/24").Contains(a) && region == "us-east-1":
			return 200, true
		case netip.MustParsePrefix("203.0.113.0/24").Contains(a) && region == "us-west-2":
			return 3, true
		case netip.MustParsePrefix("100.64.0.0/24").Contains(a) && region == "us-west-2":
			return 40, true
		}
		return 0, false
	}
	tests := []struct {
		name string
		rtt  RTTFunc
		addr string
		want string
		ok   bool
	}{
		{"new york is nearest us-east-1", nil, "198.51.100.7", "us-east-1", true},
		{"dublin is nearest the closed eu-west-1", nil, "203.0.113.9", "eu-west-1", true},
		{"san francisco", nil, "192.0.2.1", "us-west-2", true},
		{"ipv6 dublin", nil, "2001:db8:1::5", "eu-west-1", true},
		{"v4-mapped", nil, "::ffff:198.51.100.7", "us-east-1", true},
		{"unplaced", nil, "100.64.0.1", "", false},
		{"measured rtt beats distance", measured, "198.51.100.7", "us-west-2", true},
		{"measured rtt beats estimate of a closed region", measured, "203.0.113.9", "us-west-2", true},
		{"unplaced but measured", measured, "100.64.0.1", "us-west-2", true},
		{"no measurement for this client: estimates decide", measured, "192.0.2.1", "us-west-2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFinder(t, cfg, Options{RTT: tt.rtt})
			got, ok := f.Nearest(netip.MustParseAddr(tt.addr))
			if got != tt.want || ok != tt.ok {
				t.Errorf("Nearest(%s) = %q, %v; want %q, %v", tt.addr, got, ok, tt.want, tt.ok)
			}
			label := tt.want
			if !tt.ok {
				label = Unknown
			}
			if l := f.Label(netip.MustParseAddr(tt.addr)); l != label {
				t.Errorf("Label(%s) = %q, want %q", tt.addr, l, label)
			}
		})
	}
}

func TestNearestIndex(t *testing.T) {
	a, b := config.Location{Lat: 0, Lon: 0}, config.Location{Lat: 0, Lon: 10}
	pts := []Point{{Name: "a", Loc: a, HasLoc: true}, {Name: "nowhere"}, {Name: "b", Loc: b, HasLoc: true}, {Name: "a2", Loc: a, HasLoc: true}}
	only := func(i int, ms float64) func(int) (float64, bool) {
		return func(j int) (float64, bool) { return ms, i == j }
	}
	tests := []struct {
		name    string
		loc     config.Location
		located bool
		rtt     func(int) (float64, bool)
		want    int
	}{
		{"nearest by distance", config.Location{Lat: 0, Lon: 9}, true, nil, 2},
		{"tie goes to the earlier", a, true, nil, 0},
		{"unlocated without rtt", a, false, nil, -1},
		{"a region without location is chosen only when measured", a, true, only(1, 1), 1},
		{"measured worse than the other's estimate", a, true, only(0, 5000), 3},
		{"unlocated with one measurement", a, false, only(2, 80), 2},
		{"no regions", a, true, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			regions := pts
			if tt.name == "no regions" {
				regions = nil
			}
			if got := NearestIndex(tt.loc, tt.located, regions, tt.rtt); got != tt.want {
				t.Errorf("NearestIndex = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestLabelsBounded checks that whatever the address, Label returns one of
// Labels: a counter labelled with it cannot grow beyond the file's regions.
func TestLabelsBounded(t *testing.T) {
	f := newFinder(t, load(t, ""), Options{RTT: func(netip.Addr, string) (float64, bool) { return 0, false }})
	labels := f.Labels()
	if want := []string{"us-east-1", "us-west-2", "eu-west-1", Unknown}; !slices.Equal(labels, want) {
		t.Fatalf("Labels() = %v, want %v", labels, want)
	}
	for i := range 2000 {
		b := [4]byte{byte(i * 7), byte(i * 13), byte(i), byte(i * 31)}
		if l := f.Label(netip.AddrFrom4(b)); !slices.Contains(labels, l) {
			t.Fatalf("Label(%v) = %q, not among %v", netip.AddrFrom4(b), l, labels)
		}
	}
}

// TestFinderChain checks the order: a custom locator, then the file's
// networks, then the database.
func TestFinderChain(t *testing.T) {
	db := writeMMDB(t, map[string]config.Location{
		"198.51.100.0/24": {Lat: 53.3, Lon: -6.3}, // the table says New York: the table wins
		"100.64.0.0/24":   {Lat: 45.5, Lon: -122.7},
	})
	cfg := load(t, "      database: "+db)
	custom := Func(func(a netip.Addr) (config.Location, bool) {
		if a == netip.MustParseAddr("192.0.2.1") {
			return config.Location{Lat: 53.3, Lon: -6.3}, true
		}
		return config.Location{}, false
	})
	f := newFinder(t, cfg, Options{Locator: custom})
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.1", "eu-west-1"},    // custom beats the table (San Francisco)
		{"192.0.2.2", "us-west-2"},    // table
		{"198.51.100.1", "us-east-1"}, // table beats database
		{"100.64.0.9", "us-west-2"},   // database (Portland)
		{"100.65.0.9", Unknown},
	} {
		if got := f.Label(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Label(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestNewErrorsNameTheField(t *testing.T) {
	cfg := load(t, "")
	cfg.Spec.Routing.Geo.Database = filepath.Join(t.TempDir(), "missing.mmdb")
	_, err := New(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "spec.routing.geo.database") {
		t.Errorf("New with a missing database: %v, want an error naming spec.routing.geo.database", err)
	}
}

func TestPlaceGain(t *testing.T) {
	cfg := load(t, "")
	dublin, nyc := config.Location{Lat: 53.3, Lon: -6.3}, config.Location{Lat: 40.7, Lon: -74.0}
	euW1, _ := config.LocationOf(cfg.Spec.Regions.Autoscale[0])
	usE1, _ := config.LocationOf(cfg.Spec.Regions.AlwaysOn[0])
	measured := func(a netip.Addr, region string) (float64, bool) {
		if netip.MustParsePrefix("203.0.113.0/24").Contains(a) && region == "us-east-1" {
			return 95, true
		}
		return 0, false
	}
	tests := []struct {
		name, addr, serving string
		rtt                 RTTFunc
		want                string
		gain                float64
		known               bool
	}{
		{"dublin served from us-east-1", "203.0.113.9", "us-east-1", nil, "eu-west-1",
			EstimateRTT(config.DistanceKm(dublin, usE1)) - EstimateRTT(config.DistanceKm(dublin, euW1)), true},
		{"served by its nearest region: no gain", "203.0.113.9", "eu-west-1", nil, "eu-west-1", 0, true},
		{"new york served from eu-west-1 (nearest us-east-1)", "198.51.100.7", "eu-west-1", nil, "us-east-1",
			EstimateRTT(config.DistanceKm(nyc, euW1)) - EstimateRTT(config.DistanceKm(nyc, usE1)), true},
		{"a measured rtt is used where there is one", "203.0.113.9", "us-east-1", measured, "eu-west-1",
			95 - EstimateRTT(config.DistanceKm(dublin, euW1)), true},
		{"unplaced client: no gain", "100.64.0.1", "us-east-1", nil, "", 0, false},
		{"serving region not in the file: nearest, no gain", "203.0.113.9", "ap-south-1", nil, "eu-west-1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFinder(t, cfg, Options{RTT: tt.rtt})
			got, ok, gain, known := f.Place(netip.MustParseAddr(tt.addr), tt.serving)
			if got != tt.want || ok != (tt.want != "") || known != tt.known || math.Abs(gain-tt.gain) > 1e-9 {
				t.Errorf("Place(%s, %s) = %q, %v, %.3f ms, %v; want %q, %.3f ms, %v", tt.addr, tt.serving, got, ok, gain, known, tt.want, tt.gain, tt.known)
			}
			if tt.known && tt.serving != tt.want && gain < 30 {
				t.Errorf("gain %.1f ms across the Atlantic: too small to be right", gain)
			}
		})
	}
}
