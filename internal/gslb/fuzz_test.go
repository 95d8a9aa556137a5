package gslb

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
)

func fuzzServer(f *testing.F) *Server {
	f.Helper()
	c := configtest.Minimal()
	c.Metadata.Name = "fuzz"
	c.Spec.Origin = config.Origin{Dir: "."}
	c.Spec.Routing.Policy = config.PolicyLatency
	c.Spec.Routing.Explore = 0.1
	c.Spec.Routing.Geo.Networks = []config.GeoNetwork{configtest.Network("198.51.100.0/24", 40.7, -74.0)}
	c.Spec.DNS.Records = []config.Record{
		{Name: "docs", Type: "CNAME", Value: "www"},
		{Name: "loop1", Type: "CNAME", Value: "loop2"},
		{Name: "loop2", Type: "CNAME", Value: "loop1"},
		{Name: "@", Type: "TXT", Value: "hello"},
		{Name: "shield", Type: "CNAME", Value: "us-east-1.edges"},
	}
	c.Spec.Apps = []config.App{{Name: "video", Manifests: ".", Services: []config.AppService{
		{Service: "rtmp", Hostname: "live.cdn.example.com", Health: config.AppHealth{Protocol: "tcp"}},
	}}}
	us := configtest.Region("us-east-1", "aws", "127.0.0.2:8080", "[2001:db8::2]:8080")
	us.Endpoints = map[string][]string{"live.cdn.example.com": {"127.0.0.12:1935", "[2001:db8::12]:1935"}}
	c.Spec.Regions.AlwaysOn = []config.Region{us, configtest.Region("eu-west-1", "aws", "127.0.0.3:8080")}
	cfg := configtest.Parse(f, c)
	s, err := New(cfg, Options{Admin: "off", Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.closeListeners)
	return s
}

// FuzzRespond: any message that unpacks gets a response that packs, with
// the query's id, and never a panic.
func FuzzRespond(f *testing.F) {
	s := fuzzServer(f)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"www.cdn.example.com.", dns.TypeA}, {"docs.cdn.example.com.", dns.TypeAAAA}, {"loop1.cdn.example.com.", dns.TypeA},
		{"cdn.example.com.", dns.TypeANY}, {"x.example.org.", dns.TypeNS}, {"live.cdn.example.com.", dns.TypeAAAA},
		{"eu-west-1.edges.cdn.example.com.", dns.TypeA}, {"shield.cdn.example.com.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0).To4()})
		b, _ := m.Pack()
		f.Add(b, false)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the server answers FORMERR or drops before the handler
		}
		if req.Response {
			return // dropped by the accept function
		}
		resp := s.respond(s.view.Load(), req, netip.MustParseAddr("203.0.113.1"), tcp)
		if resp == nil || resp.Id != req.Id || !resp.Response {
			t.Fatalf("bad response %v to %v", resp, req)
		}
		out, err := resp.Pack()
		if err != nil {
			t.Fatalf("response does not pack: %v\n%v", err, resp)
		}
		if !tcp && len(out) > maxUDP && len(out) > dns.MinMsgSize {
			t.Fatalf("udp response of %d bytes", len(out))
		}
	})
}

// TestRandomPacketsOverUDP throws random and mutated packets at a real
// server and checks it still answers.
func TestRandomPacketsOverUDP(t *testing.T) {
	ts := start(t, "geo", "1s", "500ms", Options{})
	conn, err := net.Dial("udp", ts.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	m := new(dns.Msg)
	m.SetQuestion("www.cdn.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	base, _ := m.Pack()
	for i := 0; i < 3000; i++ {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(600))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		} else {
			b = append([]byte(nil), base...)
			for k := 0; k < 1+rng.IntN(4); k++ {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
		}
		conn.Write(b)
	}
	time.Sleep(100 * time.Millisecond)
	r := query(t, "udp", ts.udp, "www.cdn.example.com.", dns.TypeA, "")
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Fatalf("server unhealthy after random packets: %v", r)
	}
}
