package edge

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/kubecdn/kubecdn/internal/store"
)

// metrics are the edge's Prometheus metrics, in a registry of its own so two
// edges can live in one process (tests, kubecdn up).
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	// protocols counts requests by HTTP version (h1, h2, h3: a fixed set).
	protocols       *prometheus.CounterVec
	bytesOut        prometheus.Counter
	upstreamFetches *prometheus.CounterVec
	upstreamLatency *prometheus.HistogramVec
	coalesced       prometheus.Counter
	purged          prometheus.Counter
	refused         *prometheus.CounterVec
	aborted         prometheus.Counter
	longKeys        prometheus.Counter
	hits            prometheus.Counter // requests{cache="hit"}, resolved once for the fast path
	misses          prometheus.Counter // requests{cache="miss"}, likewise
}

func newMetrics(st func() store.Stats, parked, uringConns func() int) *metrics {
	const ns, sub = "kubecdn", "edge"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests served, by cache status (hit, stale, revalidated, miss, bypass, error).",
		}, []string{"cache"}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "response_bytes_total",
			Help: "Body bytes sent to clients.",
		}),
		upstreamFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "upstream_fetches_total",
			Help: "Requests sent upstream, by upstream kind (peer, parent, origin) and outcome.",
		}, []string{"upstream", "outcome"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "upstream_latency_seconds",
			Help:    "Time to the upstream's response header, by upstream kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"upstream"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "coalesced_waiters_total",
			Help: "Requests that waited on another request's upstream fetch instead of fetching.",
		}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "purged_objects_total",
			Help: "Objects removed or marked stale by purges.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_requests_total",
			Help: "Requests refused before any upstream contact, by reason.",
		}, []string{"reason"}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "aborted_responses_total",
			Help: "Responses cut off after their header because the body could not be completed (upstream failed mid-body).",
		}),
		longKeys: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "long_keys_total",
			Help: "Requests served without storing because their cache key was longer than maxKey.",
		}),
	}
	m.protocols = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "protocol_requests_total",
		Help: "Requests served, by HTTP version: h1 (HTTP/1.x, plain or TLS), h2, h3 (QUIC).",
	}, []string{"proto"})
	// The fast paths serve HTTP/1.1 only, and count with hits and misses.
	h1 := m.protocols.WithLabelValues("h1")
	m.hits = bothCounters{Counter: m.requests.WithLabelValues("hit"), also: h1}
	m.misses = bothCounters{Counter: m.requests.WithLabelValues("miss"), also: h1}
	m.protocols.WithLabelValues("h2")
	m.protocols.WithLabelValues("h3")
	gauge := func(name, help string, f func(store.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help},
			func() float64 { return float64(f(st())) })
	}
	m.reg.MustRegister(m.requests, m.protocols, m.bytesOut, m.upstreamFetches, m.upstreamLatency, m.coalesced, m.purged, m.refused, m.aborted, m.longKeys,
		gauge("memory_tier_bytes", "Bytes held by the memory tier.", func(s store.Stats) int64 { return s.MemoryBytes }),
		gauge("memory_tier_objects", "Blobs held by the memory tier.", func(s store.Stats) int64 { return s.MemoryItems }),
		gauge("disk_tier_bytes", "Bytes held by the disk tier.", func(s store.Stats) int64 { return s.DiskBytes }),
		gauge("disk_tier_objects", "Blobs held by the disk tier.", func(s store.Stats) int64 { return s.DiskItems }),
		gauge("disk_write_drops", "Disk writes dropped because the write queue was full.", func(s store.Stats) int64 { return s.DiskWriteDrops }),
		gauge("disk_corrupt_files", "Disk tier files found corrupt and removed.", func(s store.Stats) int64 { return s.CorruptFiles }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "parked_connections",
			Help: "Idle keep-alive connections held without a goroutine or buffers."},
			func() float64 { return float64(parked()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "uring_connections",
			Help: "Connections served by the io_uring event loop."},
			func() float64 { return float64(uringConns()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: ns}),
	)
	return m
}

// bothCounters counts in two counters at once (a fast path's hit is a
// request by cache status and by protocol).
type bothCounters struct {
	prometheus.Counter
	also prometheus.Counter
}

func (b bothCounters) Inc()          { b.Counter.Inc(); b.also.Inc() }
func (b bothCounters) Add(v float64) { b.Counter.Add(v); b.also.Add(v) }

// protoLabel is r's HTTP version as the protocol_requests_total label.
func protoLabel(r *http.Request) string {
	switch r.ProtoMajor {
	case 3:
		return "h3"
	case 2:
		return "h2"
	}
	return "h1"
}
