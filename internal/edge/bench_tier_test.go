package edge

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/edge/wire"
)

// The benchmarks above measure the handler and the fast path's lookup;
// these add what each tier does once a request is answered (the access
// log's hook and the demand and hot-key counters), with the client placed
// by a file's regions and geo networks.

func benchTierEdge(b *testing.B) *Server {
	b.Helper()
	s := benchEdge1KiB(b)
	cfg := s.rt.Load().cfg
	cfg.DemandRegions = []DemandRegion{{Name: "us-east-1"}, {Name: "us-west-2"}, {Name: "eu-west-1"}, {Name: "ap-southeast-1"}}
	cfg.Geo = config.Geo{Networks: []config.GeoNetwork{
		{CIDR: "192.0.2.0/24", Location: &config.Location{Lat: 53.3, Lon: -6.3}},
		{CIDR: "198.51.100.0/24", Location: &config.Location{Lat: 40.7, Lon: -74}},
	}}
	d, err := newDemand(cfg, s.now())
	if err != nil {
		b.Fatal(err)
	}
	s.demand = d
	return s
}

// BenchmarkServeHitTier1KiB is BenchmarkServeHit1KiB through the wrapper
// net/http's server calls (accessLogged: counting, and the log when on).
func BenchmarkServeHitTier1KiB(b *testing.B) {
	s := benchTierEdge(b)
	req := httptest.NewRequest(http.MethodGet, "http://www.example.com/obj", nil) // from 192.0.2.1
	req.Header.Set("User-Agent", "wrk")
	benchServe(b, s.accessLogged(s), req)
}

// BenchmarkFastHitTier1KiB is BenchmarkFastHit1KiB through the fast tier's
// finishing hook (serveFastHitLogged), on a connection whose client is
// known.
func BenchmarkFastHitTier1KiB(b *testing.B) {
	s := benchTierEdge(b)
	s.ServeHTTP(&discardWriter{h: http.Header{}}, httptest.NewRequest(http.MethodGet, "http://www.example.com/obj", nil))
	bw := bufio.NewWriterSize(io.Discard, 16<<10)
	raw := "GET /obj HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(raw))
	br.Peek(len(raw))
	fr := wire.Request{Target: []byte("/obj"), Host: []byte("www.example.com"), Size: len(raw)}
	st := fastConnState{peer: netip.MustParseAddrPort("192.0.2.1:1234")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := fastExchange{s: s, bw: bw, st: &st, req: fr}
		if !s.serveFastHitLogged(&x, br, nil) {
			b.Fatal("not served on the fast path")
		}
		bw.Flush()
	}
}
