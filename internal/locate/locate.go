// Package locate answers one question for every part of kubecdn that asks
// it: which region of the CDN file is nearest to this client? The dns counts
// its demand per nearest region with it, and the edges label their request
// counters with it, so that the autoscaler compares like with like.
//
// A client is placed by the file's CIDR table (spec.routing.geo.networks,
// most specific match), then by the MaxMind-format database
// (spec.routing.geo.database), after an optional custom Locator. The
// nearest region is the one at the shortest great-circle distance
// (config.DistanceKm) among the file's regions with a known location, open
// or closed; where measured round-trip times are given, a region's cost is
// its measured RTT, else the RTT its distance suggests (EstimateRTT).
//
// The answer is always a region name of the file or Unknown, so a metric
// labelled with it has a bounded label set (Labels).
package locate

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Unknown is the label of a client no region could be chosen for.
const Unknown = "unknown"

// Point is a region and, when known, where it is.
type Point struct {
	Name   string
	Loc    config.Location
	HasLoc bool
}

// EstimateRTT guesses a round-trip time in ms from a distance: light in
// fibre covers about 100 km of distance per ms of round trip, real paths
// are about twice as long as the great circle, plus a few ms of access.
func EstimateRTT(km float64) float64 { return 5 + km/50 }

// NearestIndex is the index in regions of the region nearest to a client at
// loc (located false: where the client is, is unknown), or -1 when none can
// be chosen. Without rtt the cost is the distance; with rtt it is the
// measured round trip where rtt has one and the estimate from the distance
// otherwise (a region without either is skipped). Ties go to the earlier
// region, so the file's order decides.
func NearestIndex(loc config.Location, located bool, regions []Point, rtt func(i int) (ms float64, ok bool)) int {
	best, bestCost := -1, 0.0
	for i, r := range regions {
		var cost float64
		switch {
		case rtt != nil:
			ms, ok := rtt(i)
			switch {
			case ok:
				cost = ms
			case located && r.HasLoc:
				cost = EstimateRTT(config.DistanceKm(loc, r.Loc))
			default:
				continue
			}
		case located && r.HasLoc:
			cost = config.DistanceKm(loc, r.Loc)
		default:
			continue
		}
		if best < 0 || cost < bestCost {
			best, bestCost = i, cost
		}
	}
	return best
}

// RTTFunc returns the measured round-trip time in ms from the network of
// client to region, if there is a measurement.
type RTTFunc func(client netip.Addr, region string) (ms float64, ok bool)

// Options configure a Finder. Zero values get the documented defaults.
type Options struct {
	// Locator, if set, is asked before the file's geo networks and
	// database (tests, or a custom source).
	Locator Locator
	// RTT, if set, gives measured round-trip times; if nil, the nearest
	// region is the nearest by distance.
	RTT RTTFunc
}

// Finder places clients and names their nearest region, for one version of
// the CDN file. It is safe for concurrent use; Close releases the geo
// database.
type Finder struct {
	loc     Chain
	regions []Point
	rtt     RTTFunc
	closer  io.Closer
}

// New builds a Finder from the file's regions and geo settings. cfg must
// come from config.Load or config.Parse; a geo network or database that
// cannot be read is an error naming its field.
func New(cfg *config.CDN, o Options) (*Finder, error) {
	f := &Finder{rtt: o.RTT}
	for _, r := range cfg.AllRegions() {
		p := Point{Name: r.Name}
		p.Loc, p.HasLoc = config.LocationOf(r.Region)
		f.regions = append(f.regions, p)
	}
	if o.Locator != nil {
		f.loc = append(f.loc, o.Locator)
	}
	geo := cfg.Spec.Routing.Geo
	if len(geo.Networks) > 0 {
		t, err := newCIDRTable(geo.Networks)
		if err != nil {
			return nil, err
		}
		f.loc = append(f.loc, t)
	}
	if geo.Database != "" {
		m, err := openMMDB(cfg.ResolvePath(geo.Database))
		if err != nil {
			return nil, fmt.Errorf("spec.routing.geo.database: %w", err)
		}
		f.loc = append(f.loc, m)
		f.closer = m
	}
	return f, nil
}

// Locate says where a client is, if a locator knows.
func (f *Finder) Locate(a netip.Addr) (config.Location, bool) { return f.loc.Locate(a) }

// Regions are the file's regions in file order (alwaysOn, then autoscale),
// with their locations. The slice is shared: do not modify it.
func (f *Finder) Regions() []Point { return f.regions }

// Nearest names the region nearest to the client at a (see NearestIndex),
// or false when the client cannot be placed and no RTT is measured.
func (f *Finder) Nearest(a netip.Addr) (region string, ok bool) {
	region, ok, _, _ = f.Place(a, "")
	return region, ok
}

// Place names the client's nearest region, as Nearest, and how many ms of
// round trip the client would save if that region served it instead of
// serving (a region of the file): the cost of serving minus the cost of the
// nearest, each a measured RTT where there is one, else the estimate from
// the distance (EstimateRTT). gainKnown is false when the client is not
// placed or either region's cost is unknown; the gain is never negative.
func (f *Finder) Place(a netip.Addr, serving string) (region string, ok bool, gainMs float64, gainKnown bool) {
	loc, located := f.loc.Locate(a)
	var rtt func(int) (float64, bool)
	if f.rtt != nil {
		rtt = func(i int) (float64, bool) { return f.rtt(a, f.regions[i].Name) }
	}
	i := NearestIndex(loc, located, f.regions, rtt)
	if i < 0 {
		return "", false, 0, false
	}
	cost := func(j int) (float64, bool) {
		if rtt != nil {
			if ms, ok := rtt(j); ok {
				return ms, true
			}
		}
		if located && f.regions[j].HasLoc {
			return EstimateRTT(config.DistanceKm(loc, f.regions[j].Loc)), true
		}
		return 0, false
	}
	for j, r := range f.regions {
		if r.Name != serving {
			continue
		}
		cs, okS := cost(j)
		cn, okN := cost(i)
		if okS && okN {
			return f.regions[i].Name, true, max(cs-cn, 0), true
		}
	}
	return f.regions[i].Name, true, 0, false
}

// Label is Nearest as a metric label: the region's name, or Unknown.
func (f *Finder) Label(a netip.Addr) string {
	if r, ok := f.Nearest(a); ok {
		return r
	}
	return Unknown
}

// Labels are every value Label can return: the file's region names, then
// Unknown. A counter can be set up for each at start.
func (f *Finder) Labels() []string {
	out := make([]string, 0, len(f.regions)+1)
	for _, r := range f.regions {
		out = append(out, r.Name)
	}
	return append(out, Unknown)
}

// Close releases the geo database, if one is open. Call it once no lookup
// runs any more: the database's memory is unmapped.
func (f *Finder) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

var (
	_ Locator   = (*Finder)(nil)
	_ io.Closer = (*Finder)(nil)
)
