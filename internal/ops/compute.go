package ops

import "time"

// Health values of a region.
const (
	HealthUp       = "up"       // every edge answers and the dns (if any) sends users to it
	HealthDegraded = "degraded" // some edges fail their probe
	HealthDown     = "down"     // no edge answers, the dns marks it unhealthy, or an operator stopped it
	HealthUnknown  = "unknown"  // nothing to ask
	// HealthUnreachable: the region's admin listeners could not be found
	// (its Kubernetes API server did not answer).
	HealthUnreachable = "unreachable"
)

// cacheHits are the cache statuses served from cache; with "miss" they make
// the cacheable requests a hit ratio is taken over ("bypass" and "error"
// never could have been hits).
var cacheHits = [...]string{"hit", "stale", "revalidated"}

// EdgeCounters are the cumulative counters and gauges read from one edge's
// /metrics.
type EdgeCounters struct {
	Requests    map[string]float64 `json:"requests"` // kubecdn_edge_requests_total by cache status
	BytesOut    float64            `json:"bytesOut"` // kubecdn_edge_response_bytes_total
	MemoryBytes float64            `json:"memoryBytes"`
	DiskBytes   float64            `json:"diskBytes"`
	Purged      float64            `json:"purged"`
	// StartTime is when the edge process started, in Unix seconds
	// (kubecdn_process_start_time_seconds); 0 when unknown.
	StartTime float64 `json:"startTime"`
}

// Total is the number of requests of every cache status.
func (c EdgeCounters) Total() float64 {
	t := 0.0
	for _, v := range c.Requests {
		t += v
	}
	return t
}

// CounterDelta is how much a counter grew from prev to cur. A counter that
// went backwards was reset (the edge restarted): it grew by cur since.
func CounterDelta(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// Delta is the growth of every counter of an edge between two scrapes
// (gauges are taken from cur). A reset of any request counter is a restart,
// so every counter then counts from zero.
func Delta(prev, cur EdgeCounters) EdgeCounters {
	reset := cur.BytesOut < prev.BytesOut || cur.Purged < prev.Purged ||
		prev.StartTime != 0 && cur.StartTime != prev.StartTime // a restart between two scrapes
	for k, v := range prev.Requests {
		reset = reset || cur.Requests[k] < v
	}
	d := EdgeCounters{Requests: map[string]float64{}, MemoryBytes: cur.MemoryBytes, DiskBytes: cur.DiskBytes}
	if reset {
		prev = EdgeCounters{}
	}
	for k, v := range cur.Requests {
		d.Requests[k] = CounterDelta(prev.Requests[k], v)
	}
	d.BytesOut = CounterDelta(prev.BytesOut, cur.BytesOut)
	d.Purged = CounterDelta(prev.Purged, cur.Purged)
	return d
}

// Rate is n per second over seconds; 0 for an empty or negative interval.
func Rate(n, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return n / seconds
}

// minUptime is the shortest life over which a rate since start is
// taken: a clock skew of a fraction of a second between the edge and the
// operator's machine would make a younger edge's figure meaningless.
const minUptime = time.Second

// RateSinceStart is the edge's requests per second over its whole life up
// to at, from its own counters and start time; ok is false when the start
// time is unknown or the edge is younger than a second. Two scrapes only
// see the requests between them, so right after a burst they rightly say
// 0; this is what the edge served on average while it ran.
func RateSinceStart(c EdgeCounters, at time.Time) (rate float64, ok bool) {
	if c.StartTime <= 0 {
		return 0, false
	}
	up := at.Sub(time.Unix(0, int64(c.StartTime*1e9)))
	if up < minUptime {
		return 0, false
	}
	return c.Total() / up.Seconds(), true
}

// HitRatio is the share of the cacheable requests (hit, stale, revalidated,
// miss) served from cache; ok is false when there were none.
func HitRatio(requests map[string]float64) (ratio float64, ok bool) {
	hits := 0.0
	for _, s := range cacheHits {
		hits += requests[s]
	}
	all := hits + requests["miss"]
	if all <= 0 {
		return 0, false
	}
	return hits / all, true
}

// Health is a region's health from its state, the probes of its edges'
// /healthz and, when a dns knows the region (dnsKnown), the dns's view:
// the dns decides where users go, so a region it marks unhealthy is down
// for them even if its admin listeners answer.
func Health(state string, edgesUp, edges int, dnsKnown, dnsHealthy bool) string {
	switch state {
	case StateClosed:
		return ""
	case StateDown:
		return HealthDown
	}
	switch {
	case edges == 0 && !dnsKnown:
		return HealthUnknown
	case edges > 0 && edgesUp == 0:
		return HealthDown
	case dnsKnown && !dnsHealthy:
		return HealthDown
	case edgesUp < edges:
		return HealthDegraded
	}
	return HealthUp
}

// sum adds counters (gauges too: fill of a region is the sum of its edges).
func sum(cs []EdgeCounters) EdgeCounters {
	t := EdgeCounters{Requests: map[string]float64{}}
	for _, c := range cs {
		for k, v := range c.Requests {
			t.Requests[k] += v
		}
		t.BytesOut += c.BytesOut
		t.MemoryBytes += c.MemoryBytes
		t.DiskBytes += c.DiskBytes
		t.Purged += c.Purged
	}
	return t
}

// Totals are the whole CDN's figures.
type Totals struct {
	RegionsOpen int      `json:"regionsOpen"`
	RegionsUp   int      `json:"regionsUp"` // health up or degraded
	ReqPerSec   *float64 `json:"reqPerSec"`
	HitRatio    *float64 `json:"hitRatio"`
	// ReqPerSecSinceStart and HitRatioTotal are over everything the edges
	// served since they started, as the regions' figures of the same name.
	ReqPerSecSinceStart *float64 `json:"reqPerSecSinceStart"`
	HitRatioTotal       *float64 `json:"hitRatioTotal"`
	BytesServed         float64  `json:"bytesServed"`
	BytesPerSec         *float64 `json:"bytesPerSec"`
	FillBytes           float64  `json:"fillBytes"`
}

// totals adds up the regions; rates are summed over the regions that have
// one, and the hit ratios are taken over the requests of all (those of the
// interval, and those since the edges started).
func totals(rs []RegionStatus) Totals {
	var t Totals
	var interval, cumulative []EdgeCounters
	for _, r := range rs {
		if r.State == StateOpen {
			t.RegionsOpen++
		}
		if r.Health == HealthUp || r.Health == HealthDegraded {
			t.RegionsUp++
		}
		t.BytesServed += r.BytesServed
		t.FillBytes += r.FillBytes
		t.ReqPerSec = addPtr(t.ReqPerSec, r.ReqPerSec)
		t.BytesPerSec = addPtr(t.BytesPerSec, r.BytesPerSec)
		t.ReqPerSecSinceStart = addPtr(t.ReqPerSecSinceStart, r.ReqPerSecSinceStart)
		if r.interval != nil {
			interval = append(interval, *r.interval)
		}
		if r.cumulative != nil {
			cumulative = append(cumulative, *r.cumulative)
		}
	}
	if h, ok := HitRatio(sum(interval).Requests); ok {
		t.HitRatio = &h
	}
	if h, ok := HitRatio(sum(cumulative).Requests); ok {
		t.HitRatioTotal = &h
	}
	return t
}

func addPtr(a, b *float64) *float64 {
	if b == nil {
		return a
	}
	v := *b
	if a != nil {
		v += *a
	}
	return &v
}

func ptr(v float64) *float64 { return &v }
