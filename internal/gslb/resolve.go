package gslb

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/adminapi"
)

// dryRun notes what a Resolve answered, which a real query does not need.
type dryRun struct {
	regions  []string
	nearest  string
	failOpen bool
}

// note records choice i of cp: the regions answered and the demand region.
func (d *dryRun) note(st *static, cp *cachedPlan, i int) {
	if cp.Best >= 0 && d.nearest == "" {
		d.nearest = st.regions[cp.Best].Name
	}
	d.failOpen = d.failOpen || cp.FailOpen
	for _, ri := range cp.Choices[i] {
		d.regions = append(d.regions, st.regions[ri].Name)
	}
}

// Resolve says what the server would answer a resolver asking for name
// (qtype A or AAAA) on behalf of a client in network, as if the query
// carried that network as its EDNS Client Subnet: the same view, routing
// and plan cache as a query, but no demand, answers or queries are
// counted and no rate limit applies. It is how kubecdn asks its own dns
// (the status page, checks) without its traffic counting as users'.
func (s *Server) Resolve(name string, qtype uint16, network netip.Prefix) adminapi.Resolution {
	v := s.view.Load()
	out := adminapi.Resolution{Name: dns.Fqdn(name), Network: network.String(), Type: dns.TypeToString[qtype], Addrs: []string{}}
	m := new(dns.Msg)
	m.SetQuestion(out.Name, qtype)
	resp := new(dns.Msg)
	resp.SetReply(m)
	d := &dryRun{}
	r := resolution{s: s, v: v, m: resp, client: network.Masked().Addr(), dry: d}
	r.resolve(m.Question[0])
	out.Rcode = dns.RcodeToString[resp.Rcode]
	for _, rr := range resp.Answer {
		switch a := rr.(type) {
		case *dns.A:
			out.Addrs = append(out.Addrs, a.A.String())
		case *dns.AAAA:
			out.Addrs = append(out.Addrs, a.AAAA.String())
		}
	}
	out.Regions, out.Nearest, out.FailOpen = d.regions, d.nearest, d.failOpen
	return out
}

// handleResolve serves GET adminapi.ResolvePath. It needs the token: the
// answers to any network are what ECS would reveal too, but a lookup that
// is not counted must not be a way around the demand signal or RRL.
func (s *Server) handleResolve(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(w, r, "resolve") {
		return
	}
	q := r.URL.Query()
	name := strings.TrimSpace(q.Get("name"))
	if name == "" {
		http.Error(w, "resolve needs a name", http.StatusBadRequest)
		return
	}
	network, err := parseNetwork(q.Get("network"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	qtype := dns.TypeA
	switch t := strings.ToUpper(q.Get("type")); t {
	case "", "A":
	case "AAAA":
		qtype = dns.TypeAAAA
	default:
		http.Error(w, fmt.Sprintf("type %q: want A or AAAA", t), http.StatusBadRequest)
		return
	}
	writeJSON(w, s.Resolve(name, qtype, network))
}

// parseNetwork reads a client network: a CIDR, or one address.
func parseNetwork(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q: want a CIDR (198.51.100.0/24) or an address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
