// Package rtt is the edge side of kubecdn's latency feed: it reads the
// kernel's round-trip time estimate (Linux TCP_INFO) of the edge's accepted
// client connections, aggregates it per client network (/24 for IPv4, /48
// for IPv6; no client address leaves the edge), and a Reporter POSTs the
// aggregates to the dns admin endpoints (POST /v1/rtt) as a Report.
//
// An edge (`kubecdn edge`, `kubecdn up`) is wired in one call: Feed starts
// a Collector and its Reporter, and the Collector is the edge's
// edge.Options.Observer, which every serving tier calls (net/http on each
// return to idle, the goroutine and io_uring tiers at accept):
//
//	col, stop := rtt.Feed(ctx, rtt.ReporterOptions{
//		Region:  "us-east-1",
//		Token:   adminToken, // the dns refuses reports without it
//		Targets: []string{"http://127.0.0.1:9053/v1/rtt"},
//	})
//	defer stop() // the last report goes out
//	opts.Observer = col
//
// A plain http.Server takes col.ConnState (samples on every transition to
// StateIdle, after each response, when the kernel's smoothed RTT has seen
// data and ACKs) or col.ConnContext (once at accept: the handshake RTT);
// one of the two, not both.
package rtt

import (
	"fmt"
	"net/netip"
)

// Bounds of a Report, shared by the sender and the receiver: an edge never
// sends more, the dns refuses more.
const (
	// MaxReportSamples is the most networks one report may carry (the
	// Collector holds no more between two drains).
	MaxReportSamples = 65536
	// MaxSampleCount is the most connections one sample may claim. The
	// dns weighs every sample as one observation whatever its count (so a
	// count cannot outweigh other reporters); the cap only refuses
	// nonsense.
	MaxSampleCount = 1 << 20
	// MaxReportBytes bounds a report's body: MaxReportSamples samples of
	// the longest form (an IPv6 /48, a float with every digit, the largest
	// count) fit with room to spare.
	MaxReportBytes = 6 << 20
)

// Report is the JSON body of POST /v1/rtt, shared by the edge (sender) and
// the dns (receiver). The edge authenticates with the admin bearer token
// (package bearer):
//
//	{"region":"us-east-1","samples":[{"net":"198.51.100.0/24","rtt_ms":23.5,"count":10}]}
type Report struct {
	// Region is the edge's region name as in the CDN file.
	Region  string   `json:"region"`
	Samples []Sample `json:"samples"`
}

// Sample is the mean RTT of Count connections from one client network.
// Count is informational to the dns: every sample weighs as one
// observation of its reporter.
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
	if len(r.Samples) > MaxReportSamples {
		return nil, fmt.Errorf("samples: %d networks, at most %d per report", len(r.Samples), MaxReportSamples)
	}
	out := make([]ParsedSample, 0, len(r.Samples))
	for i, s := range r.Samples {
		p, err := s.parse(i)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parse validates the sample at index i of a report.
func (s Sample) parse(i int) (ParsedSample, error) {
	p, err := netip.ParsePrefix(s.Net)
	if err != nil {
		return ParsedSample{}, fmt.Errorf("samples[%d].net: %q is not a CIDR", i, s.Net)
	}
	if p != NetOf(p.Addr()) {
		return ParsedSample{}, fmt.Errorf("samples[%d].net: %q is not a /24 (IPv4) or /48 (IPv6) network", i, s.Net)
	}
	if !(s.RTTMs >= 0 && s.RTTMs < 60000) {
		return ParsedSample{}, fmt.Errorf("samples[%d].rtt_ms: %v is out of range", i, s.RTTMs)
	}
	if s.Count < 1 || s.Count > MaxSampleCount {
		return ParsedSample{}, fmt.Errorf("samples[%d].count: %d, want 1 to %d", i, s.Count, MaxSampleCount)
	}
	return ParsedSample{Net: p, RTTMs: s.RTTMs, Count: s.Count}, nil
}

// ParsedSample is a Sample with its network parsed.
type ParsedSample struct {
	Net   netip.Prefix
	RTTMs float64
	Count int
}
