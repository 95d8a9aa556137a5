package local

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/ops"
)

// Networks tells the status page which region answers each client network
// the file places: it asks the running dns as a resolver on that network
// would (EDNS Client Subnet) and matches the answer to the regions' edges.
func (u *Up) Networks(ctx context.Context, targets []ops.Target) ([]ops.NetworkRoute, error) {
	nets := u.cfg.Spec.Routing.Geo.Networks
	if len(nets) == 0 || len(u.cfg.Spec.Hostnames) == 0 {
		return nil, nil
	}
	byIP := map[string]string{}
	for _, t := range targets {
		for _, p := range t.Public {
			host, _, err := net.SplitHostPort(p)
			if err != nil {
				host = p
			}
			byIP[host] = t.Region
		}
	}
	name := dns.Fqdn(u.cfg.Spec.Hostnames[0])
	out := make([]ops.NetworkRoute, len(nets))
	var wg sync.WaitGroup
	for i, n := range nets {
		out[i] = ops.NetworkRoute{Network: n.CIDR, Label: n.Label}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &out[i]
			addrs, err := u.askAs(ctx, name, n.CIDR)
			if err != nil {
				r.Error = err.Error()
				return
			}
			r.Addrs = addrs
			for _, a := range addrs {
				if reg, ok := byIP[a]; ok {
					r.Region = reg
					break
				}
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// askAs queries the dns for name's A (or, for an IPv6 network, AAAA and
// then A) records as a resolver serving the network cidr.
func (u *Up) askAs(ctx context.Context, name, cidr string) ([]string, error) {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(pfx.Bits()), Address: pfx.Addr().AsSlice()}
	ecs.Family = 1
	if pfx.Addr().Is6() {
		ecs.Family = 2
	}
	o.Option = append(o.Option, ecs)
	m.Extra = append(m.Extra, o)
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	in, _, err := c.ExchangeContext(ctx, m, u.lay.DNS)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			addrs = append(addrs, a.A.String())
		}
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no answer (" + strings.ToLower(dns.RcodeToString[in.Rcode]) + ")", Name: name}
	}
	return addrs, nil
}
