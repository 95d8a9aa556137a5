package gslb

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kubecdn/kubecdn/internal/rtt"
)

// Bounds of the RTT table. A report carries the bearer token, yet whoever
// holds the token may lie, so the table is built so that one liar cannot
// outweigh honest reporters and no reporter can grow it without bound.
const (
	// rttMaxAge: an estimate no report confirmed for this long is
	// dropped (lazily on lookup and update, and by the sweep).
	rttMaxAge = 30 * time.Minute
	// rttMaxNetworks bounds the client networks held; when full, the
	// network updated longest ago makes room for a new one. About 170
	// bytes a network: 1<<18 networks are about 45 MiB.
	rttMaxNetworks = 1 << 18
	// rttMaxReporters bounds the reporters kept per (network, region);
	// a region's edges are a handful.
	rttMaxReporters = 8
	// rttSlotMemory: a reporter's estimate is the running mean of about
	// its last rttSlotMemory reports, each report one observation
	// whatever its count.
	rttSlotMemory = 4
	// rttSweepEvery is how often Run drops expired networks.
	rttSweepEvery = time.Minute
)

// rttTable is the round-trip estimate per (client network, region), fed by
// the edges' reports.
//
// Each (network, region) keeps one slot per reporter (its source address,
// see reporterOf), and the estimate is the median of the live slots. So a
// reporter's weight is one vote, however large the counts it claims and
// however often it reports, and while the honest reporters of a
// (network, region) outnumber the lying ones the estimate stays within the
// honest values. (One honest reporter against one liar ends at their mean:
// nothing in a report tells which of two is lying.)
type rttTable struct {
	now    func() time.Time
	maxAge time.Duration
	max    int

	mu sync.RWMutex
	m  map[netKey]*netEntry
	// the update order, newest first: expiry and eviction take from
	// the oldest end
	newest, oldest *netEntry
}

// netKey packs a client network (an IPv4 /24 or an IPv6 /48, rtt.NetOf)
// into 8 bytes: bit 63 marks IPv4, whose 24 bits sit at the bottom; an
// IPv6 /48 fills the low 48 bits.
type netKey uint64

const v4Key = 1 << 63

func netKeyOf(p netip.Prefix) (netKey, bool) {
	a := p.Addr()
	switch {
	case a.Is4() && p.Bits() == 24:
		b := a.As4()
		return netKey(v4Key | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])), true
	case a.Is6() && !a.Is4In6() && a.Zone() == "" && p.Bits() == 48:
		b := a.As16()
		var k uint64
		for _, x := range b[:6] {
			k = k<<8 | uint64(x)
		}
		return netKey(k), true
	}
	return 0, false
}

func (k netKey) prefix() netip.Prefix {
	if k&v4Key != 0 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(k >> 16), byte(k >> 8), byte(k)}), 24)
	}
	var b [16]byte
	for i := range 6 {
		b[i] = byte(k >> (40 - 8*i))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 48)
}

// reporterOf is who sent a report, as the table counts reporters: an IPv4
// address (bit 63 set, like netKey), or an IPv6 /64, because one host
// commonly holds a whole /64 and could otherwise vote once per address.
// (An IPv6 /64 under 8000::/1, unassigned space, may share a key with an
// IPv4 address; it would only share that one vote.)
func reporterOf(a netip.Addr) uint64 {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return v4Key | uint64(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8])
}

// netEntry is one client network.
type netEntry struct {
	key          netKey
	newer, older *netEntry
	at           int64 // unix ns of the last report: the update order
	regions      []regionRTT
}

// regionRTT is what the reporters of one region measured to a network.
type regionRTT struct {
	region string // the file's region name (shared, not a copy per entry)
	slots  []rttSlot
}

// rttSlot is one reporter's estimate.
type rttSlot struct {
	from uint64 // reporterOf
	at   int64  // unix ns of its last report
	ms   float32
	n    uint8 // reports in ms, at most rttSlotMemory
}

func newRTTTable(now func() time.Time, maxAge time.Duration, maxNetworks int) *rttTable {
	return &rttTable{now: now, maxAge: maxAge, max: max(maxNetworks, 1), m: map[netKey]*netEntry{}}
}

// update merges the samples one reporter sent for region. It returns the
// networks whose estimates went away meanwhile (expired, or evicted to
// make room): answers cached from them are stale too.
func (t *rttTable) update(from netip.Addr, region string, samples []rtt.ParsedSample) (gone []netip.Prefix) {
	now := t.now().UnixNano()
	rk := reporterOf(from)
	t.mu.Lock()
	defer t.mu.Unlock()
	gone = t.expireLocked(now, gone)
	for _, s := range samples {
		k, ok := netKeyOf(s.Net)
		if !ok {
			continue
		}
		e := t.m[k]
		if e == nil {
			if len(t.m) >= t.max {
				// The network nobody reported for longest goes: a new one
				// is admitted, so a full table still learns.
				old := t.oldest
				gone = append(gone, old.key.prefix())
				t.removeLocked(old)
			}
			e = &netEntry{key: k}
			t.m[k] = e
		} else {
			t.unlinkLocked(e)
		}
		t.pushNewestLocked(e)
		e.at = now
		e.region(region).observe(rk, s.RTTMs, now, int64(t.maxAge))
	}
	return gone
}

// lookup is the estimate of region for network k: the median of its live
// reporters' estimates.
func (t *rttTable) lookup(k netip.Prefix, region string) (float64, bool) {
	key, ok := netKeyOf(k)
	if !ok {
		return 0, false
	}
	now := t.now().UnixNano()
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.m[key]
	if e == nil {
		return 0, false
	}
	for i := range e.regions {
		if e.regions[i].region == region {
			return e.regions[i].estimate(now, int64(t.maxAge))
		}
	}
	return 0, false
}

// sweep drops the expired networks and returns them.
func (t *rttTable) sweep() []netip.Prefix {
	now := t.now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.expireLocked(now, nil)
}

// size is the number of networks held.
func (t *rttTable) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// expireLocked drops the networks no report touched within maxAge: they are
// the oldest end of the update order.
func (t *rttTable) expireLocked(now int64, gone []netip.Prefix) []netip.Prefix {
	for t.oldest != nil && now-t.oldest.at > int64(t.maxAge) {
		gone = append(gone, t.oldest.key.prefix())
		t.removeLocked(t.oldest)
	}
	return gone
}

func (t *rttTable) removeLocked(e *netEntry) {
	t.unlinkLocked(e)
	delete(t.m, e.key)
}

func (t *rttTable) unlinkLocked(e *netEntry) {
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		t.newest = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		t.oldest = e.newer
	}
	e.newer, e.older = nil, nil
}

func (t *rttTable) pushNewestLocked(e *netEntry) {
	e.older = t.newest
	if t.newest != nil {
		t.newest.newer = e
	}
	t.newest = e
	if t.oldest == nil {
		t.oldest = e
	}
}

func (e *netEntry) region(name string) *regionRTT {
	for i := range e.regions {
		if e.regions[i].region == name {
			return &e.regions[i]
		}
	}
	e.regions = append(e.regions, regionRTT{region: name})
	return &e.regions[len(e.regions)-1]
}

// observe merges one report of reporter from: one observation, whatever
// the count it claimed. Expired slots go first; a new reporter beyond
// rttMaxReporters takes the slot reported longest ago.
func (r *regionRTT) observe(from uint64, ms float64, now, maxAge int64) {
	r.slots = slices.DeleteFunc(r.slots, func(s rttSlot) bool { return now-s.at > maxAge })
	i := slices.IndexFunc(r.slots, func(s rttSlot) bool { return s.from == from })
	switch {
	case i >= 0:
	case len(r.slots) < rttMaxReporters:
		r.slots = append(r.slots, rttSlot{from: from})
		i = len(r.slots) - 1
	default:
		i = 0
		for j, s := range r.slots {
			if s.at < r.slots[i].at {
				i = j
			}
		}
		r.slots[i] = rttSlot{from: from}
	}
	s := &r.slots[i]
	n := float64(s.n)
	s.ms = float32((float64(s.ms)*n + ms) / (n + 1))
	s.n = min(s.n+1, rttSlotMemory)
	s.at = now
}

// estimate is the median of the live slots.
func (r *regionRTT) estimate(now, maxAge int64) (float64, bool) {
	var buf [rttMaxReporters]float64
	v := buf[:0]
	for _, s := range r.slots {
		if now-s.at <= maxAge {
			v = append(v, float64(s.ms))
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m], true
	}
	return (v[m-1] + v[m]) / 2, true
}
