package locate

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Locator finds where a client address is.
type Locator interface {
	Locate(a netip.Addr) (config.Location, bool)
}

// Func adapts a function to Locator.
type Func func(netip.Addr) (config.Location, bool)

// Locate calls f.
func (f Func) Locate(a netip.Addr) (config.Location, bool) { return f(a) }

// cidrTable is the file's CIDR→location table; the most specific match wins.
type cidrTable struct {
	bits []int // prefix lengths present, longest first
	m    map[netip.Prefix]config.Location
}

func newCIDRTable(nets []config.GeoNetwork) (*cidrTable, error) {
	t := &cidrTable{m: map[netip.Prefix]config.Location{}}
	for i, n := range nets {
		p, err := netip.ParsePrefix(n.CIDR)
		if err != nil || n.Location == nil {
			return nil, fmt.Errorf("spec.routing.geo.networks[%d]: bad network", i)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 1000 // keep v4 and v6 lengths apart
		}
		if !slices.Contains(t.bits, bits) {
			t.bits = append(t.bits, bits)
		}
		t.m[p] = *n.Location
	}
	slices.Sort(t.bits)
	slices.Reverse(t.bits)
	return t, nil
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

func (t *cidrTable) Locate(a netip.Addr) (config.Location, bool) {
	a = a.Unmap()
	for _, b := range t.bits {
		if a.Is4() != (b >= 1000) {
			continue
		}
		if b >= 1000 {
			b -= 1000
		}
		p, err := a.Prefix(b)
		if err != nil {
			continue
		}
		if l, ok := t.m[p]; ok {
			return l, true
		}
	}
	return config.Location{}, false
}

// mmdbLocator reads a MaxMind-format database (GeoIP2/GeoLite2 City layout,
// or any database with location.latitude and location.longitude).
type mmdbLocator struct{ r *maxminddb.Reader }

type mmdbRecord struct {
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

func openMMDB(path string) (*mmdbLocator, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening geo database: %w", err)
	}
	return &mmdbLocator{r: r}, nil
}

func (m *mmdbLocator) Locate(a netip.Addr) (config.Location, bool) {
	var rec mmdbRecord
	if err := m.r.Lookup(a.Unmap()).Decode(&rec); err != nil || rec.Location.Latitude == nil || rec.Location.Longitude == nil {
		return config.Location{}, false
	}
	return config.Location{Lat: *rec.Location.Latitude, Lon: *rec.Location.Longitude}, true
}

func (m *mmdbLocator) Close() error { return m.r.Close() }

// Chain tries each locator in turn.
type Chain []Locator

// Locate returns the first location a locator of c knows.
func (c Chain) Locate(a netip.Addr) (config.Location, bool) {
	for _, l := range c {
		if loc, ok := l.Locate(a); ok {
			return loc, true
		}
	}
	return config.Location{}, false
}

var (
	_ Locator = (*cidrTable)(nil)
	_ Locator = (*mmdbLocator)(nil)
	_ Locator = Chain(nil)
	_ Locator = Func(nil)
)
