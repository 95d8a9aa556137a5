package rtt

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// CollectorOptions configure a Collector.
type CollectorOptions struct {
	// MaxNetworks bounds the networks held between two drains; samples of
	// further networks are dropped until the next Drain. If zero or above
	// MaxReportSamples, MaxReportSamples (what one report may carry).
	MaxNetworks int
	// ReadRTT reads a connection's RTT; if nil, TCPRTT (Linux TCP_INFO).
	ReadRTT func(net.Conn) (time.Duration, bool)
}

// Collector aggregates RTT samples per client network. It is safe for
// concurrent use.
type Collector struct {
	max  int
	read func(net.Conn) (time.Duration, bool)

	mu   sync.Mutex
	nets map[netip.Prefix]*agg
}

type agg struct {
	sumMs float64
	n     int
}

// NewCollector returns an empty Collector.
func NewCollector(o CollectorOptions) *Collector {
	if o.MaxNetworks <= 0 || o.MaxNetworks > MaxReportSamples {
		o.MaxNetworks = MaxReportSamples
	}
	if o.ReadRTT == nil {
		o.ReadRTT = TCPRTT
	}
	return &Collector{max: o.MaxNetworks, read: o.ReadRTT, nets: map[netip.Prefix]*agg{}}
}

// ConnState is for http.Server.ConnState: it samples the connection's RTT
// each time it goes idle (after a response).
func (c *Collector) ConnState(conn net.Conn, s http.ConnState) {
	if s == http.StateIdle {
		c.ObserveConn(conn)
	}
}

// ConnContext is for http.Server.ConnContext: it samples the handshake RTT
// of each accepted connection and returns ctx unchanged.
func (c *Collector) ConnContext(ctx context.Context, conn net.Conn) context.Context {
	c.ObserveConn(conn)
	return ctx
}

// ObserveConn reads conn's RTT and records it for the remote address.
// Connections that are not TCP (or not readable) are ignored.
func (c *Collector) ObserveConn(conn net.Conn) {
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	if err != nil {
		return
	}
	if d, ok := c.read(conn); ok {
		c.Observe(ap.Addr(), d)
	}
}

// ObserveFD reads the RTT of a connected TCP socket's descriptor and
// records it for client.
func (c *Collector) ObserveFD(client netip.Addr, fd int) {
	if d, ok := FDRTT(fd); ok {
		c.Observe(client, d)
	}
}

// Observe records one RTT sample for a client address.
func (c *Collector) Observe(client netip.Addr, d time.Duration) {
	if d <= 0 || !client.IsValid() {
		return
	}
	p := NetOf(client)
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.nets[p]
	if a == nil {
		if len(c.nets) >= c.max {
			return
		}
		a = &agg{}
		c.nets[p] = a
	}
	a.sumMs += float64(d) / float64(time.Millisecond)
	a.n++
}

// Drain returns the aggregated samples since the last Drain (sorted by
// network) and starts afresh.
func (c *Collector) Drain() []Sample {
	c.mu.Lock()
	nets := c.nets
	c.nets = make(map[netip.Prefix]*agg, len(nets))
	c.mu.Unlock()
	out := make([]Sample, 0, len(nets))
	for p, a := range nets {
		out = append(out, Sample{Net: p.String(), RTTMs: a.sumMs / float64(a.n), Count: min(a.n, MaxSampleCount)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Net < out[j].Net })
	return out
}
