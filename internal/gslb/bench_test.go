package gslb

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

// benchFile is a CDN of two regions with edges and the video app's rtmp
// service, answered by the geo policy.
func benchFile(tb testing.TB) *config.CDN {
	c := configtest.Minimal()
	c.Metadata.Name = "bench"
	c.Spec.Origin = config.Origin{Dir: "."}
	c.Spec.Routing.Policy = config.PolicyGeo
	c.Spec.Routing.Geo.Networks = []config.GeoNetwork{
		configtest.Network("198.51.100.0/24", 40.7, -74.0),
		configtest.Network("203.0.113.0/24", 48.9, 2.4),
		configtest.Network("127.0.0.0/8", 48.9, 2.4),
	}
	c.Spec.DNS.Records = []config.Record{{Name: "mail", Type: "A", Value: "192.0.2.25"}}
	c.Spec.Apps = []config.App{{Name: "video", Manifests: ".", Services: []config.AppService{
		{Service: "rtmp", Hostname: "live.cdn.example.com", Port: 1935, Health: config.AppHealth{Protocol: "tcp"}},
	}}}
	us := configtest.Region("us-east-1", "aws", "127.0.0.2:8080", "127.0.0.4:8080")
	us.Endpoints = map[string][]string{"live.cdn.example.com": {"127.0.0.12:1935"}}
	eu := configtest.Region("eu-west-1", "aws", "127.0.0.3:8080")
	eu.Endpoints = map[string][]string{"live.cdn.example.com": {"127.0.0.13:1935"}}
	c.Spec.Regions.AlwaysOn = []config.Region{us, eu}
	return configtest.Parse(tb, c)
}

// discardWriter is a dns.ResponseWriter that packs the response (as the
// real writer does) and throws it away.
type discardWriter struct {
	remote net.Addr
	buf    []byte
}

func (w *discardWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *discardWriter) RemoteAddr() net.Addr { return w.remote }
func (w *discardWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf)
	w.buf = b[:0]
	return err
}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) Close() error                { return nil }
func (w *discardWriter) TsigStatus() error           { return nil }
func (w *discardWriter) TsigTimersOnly(bool)         {}
func (w *discardWriter) Hijack()                     {}
func (w *discardWriter) Network() string             { return "udp" }

func benchServer(b *testing.B) *Server {
	b.Helper()
	cfg := benchFile(b)
	s, err := New(cfg, Options{Admin: "off", Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.closeListeners)
	return s
}

// BenchmarkServeDNS is one query through the handler (routing, RRL off,
// metrics, packing) without the network, per kind of name.
func BenchmarkServeDNS(b *testing.B) {
	s := benchServer(b)
	cases := []struct {
		name  string
		qname string
		qtype uint16
		ecs   string
	}{
		{"hostname", "www.cdn.example.com.", dns.TypeA, ""},
		{"hostname-ecs", "www.cdn.example.com.", dns.TypeA, "203.0.113.0/24"},
		{"static", "mail.cdn.example.com.", dns.TypeA, ""},
		{"nxdomain", "nope.cdn.example.com.", dns.TypeA, ""},
		{"region-name", "eu-west-1.edges.cdn.example.com.", dns.TypeA, ""},
		{"app-service-ecs", "live.cdn.example.com.", dns.TypeA, "203.0.113.0/24"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := new(dns.Msg)
			req.SetQuestion(c.qname, c.qtype)
			if c.ecs != "" {
				req.SetEdns0(1232, false)
				p := netip.MustParsePrefix(c.ecs)
				req.IsEdns0().Option = append(req.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
			}
			w := &discardWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, buf: make([]byte, 0, 512)}
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, req)
			}
		})
	}
}

// BenchmarkPlanMiss is a routing decision for a network not yet cached.
func BenchmarkPlanMiss(b *testing.B) {
	s := benchServer(b)
	v := s.view.Load()
	b.ReportAllocs()
	for i := range b.N {
		key := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 0}), 24)
		s.plan(v, v.targetView, key, 0)
	}
}
