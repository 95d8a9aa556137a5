// Package rtt is the edge side of kubecdn's latency feed: it reads the
// kernel's round-trip time estimate (Linux TCP_INFO) of the edge's accepted
// client connections, aggregates it per client network (/24 for IPv4, /48
// for IPv6; no client address leaves the edge), and a Reporter POSTs the
// aggregates to the dns admin endpoints (POST /v1/rtt) as a Report.
//
// Wiring into an edge's http.Server takes a few lines:
//
//	col := rtt.NewCollector(rtt.CollectorOptions{})
//	srv := &http.Server{Handler: h, ConnState: col.ConnState}
//	rep := rtt.NewReporter(col, rtt.ReporterOptions{
//		Region:  "us-east-1",
//		Targets: []string{"http://127.0.0.1:9053/v1/rtt"},
//	})
//	go rep.Run(ctx)
//
// ConnState samples on every transition to StateIdle (after each response,
// when the kernel's smoothed RTT has seen data and ACKs). ConnContext, for
// http.Server.ConnContext, samples once at accept (the handshake RTT); use
// one of the two, not both.
package rtt

import (
	"fmt"
	"net/netip"
)

// Report is the JSON body of POST /v1/rtt, shared by the edge (sender) and
// the dns (receiver):
//
//	{"region":"us-east-1","samples":[{"net":"198.51.100.0/24","rtt_ms":23.5,"count":10}]}
type Report struct {
	// Region is the edge's region name as in the CDN file.
	Region  string   `json:"region"`
	Samples []Sample `json:"samples"`
}

// Sample is the mean RTT of Count connections from one client network.
type Sample struct {
	Net   string  `json:"net"`
	RTTMs float64 `json:"rtt_ms"`
	Count int     `json:"count"`
}

// NetOf returns the aggregation network of a client address: its /24 for
// IPv4 (and IPv4-mapped IPv6), its /48 for IPv6.
func NetOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.WithZone("").Prefix(bits)
	return p
}

// Validate checks a received report and returns its samples parsed.
func (r Report) Validate() ([]ParsedSample, error) {
	if r.Region == "" {
		return nil, fmt.Errorf("region is required")
	}
	out := make([]ParsedSample, 0, len(r.Samples))
	for i, s := range r.Samples {
		p, err := netip.ParsePrefix(s.Net)
		if err != nil {
			return nil, fmt.Errorf("samples[%d].net: %q is not a CIDR", i, s.Net)
		}
		if p != NetOf(p.Addr()) {
			return nil, fmt.Errorf("samples[%d].net: %q is not a /24 (IPv4) or /48 (IPv6) network", i, s.Net)
		}
		if !(s.RTTMs >= 0 && s.RTTMs < 60000) {
			return nil, fmt.Errorf("samples[%d].rtt_ms: %v is out of range", i, s.RTTMs)
		}
		if s.Count < 1 {
			return nil, fmt.Errorf("samples[%d].count: must be at least 1", i)
		}
		out = append(out, ParsedSample{Net: p, RTTMs: s.RTTMs, Count: s.Count})
	}
	return out, nil
}

// ParsedSample is a Sample with its network parsed.
type ParsedSample struct {
	Net   netip.Prefix
	RTTMs float64
	Count int
}
