package rfc2136

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
)

// defaultTTL is the TTL of a Name whose TTL is zero.
const defaultTTL = 60 * time.Second

// managed are the types a Publisher writes at a name it owns; it never
// touches any other type there.
var managed = [...]uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME}

// answer is what a Name publishes: addresses, or a CNAME target.
type answer struct {
	a, aaaa []netip.Addr // sorted, distinct
	cname   string       // lower case, trailing dot
	ttl     uint32
}

// chosen returns the targets whose records a Name publishes under its
// policy (see the package comment).
func chosen(n publish.Name) []publish.Target {
	switch n.Policy {
	case config.PolicyFailover:
		if len(n.Targets) == 0 {
			return nil
		}
		low := n.Targets[0].Order
		for _, t := range n.Targets {
			low = min(low, t.Order)
		}
		var out []publish.Target
		for _, t := range n.Targets {
			if t.Order == low {
				out = append(out, t)
			}
		}
		return out
	case config.PolicyWeighted:
		var out []publish.Target
		for _, t := range n.Targets {
			if t.Weight > 0 {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return n.Targets
		}
		return out
	}
	return n.Targets
}

// answerFor maps a Name to its records.
func answerFor(n publish.Name) (answer, error) {
	ans := answer{ttl: ttlSeconds(n.TTL)}
	var hosts, regions []string
	for _, t := range chosen(n) {
		if t.Hostname != "" {
			h := dns.CanonicalName(t.Hostname)
			if _, ok := dns.IsDomainName(h); !ok {
				return answer{}, fmt.Errorf("rfc2136: %s region %s: hostname %q is not a domain name", n.FQDN, t.Region, t.Hostname)
			}
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
			regions = append(regions, t.Region)
			continue
		}
		for _, a := range t.Addresses {
			a = a.Unmap()
			switch {
			case a.Is4():
				ans.a = append(ans.a, a)
			case a.Is6() && a.Zone() == "":
				ans.aaaa = append(ans.aaaa, a)
			default:
				return answer{}, fmt.Errorf("rfc2136: %s region %s: %v is not an IPv4 or IPv6 address", n.FQDN, t.Region, a)
			}
		}
	}
	slices.SortFunc(ans.a, netip.Addr.Compare)
	ans.a = slices.Compact(ans.a)
	slices.SortFunc(ans.aaaa, netip.Addr.Compare)
	ans.aaaa = slices.Compact(ans.aaaa)
	if len(hosts) > 0 {
		if len(hosts) > 1 || len(ans.a)+len(ans.aaaa) > 0 {
			return answer{}, fmt.Errorf("rfc2136: %s: region %s has a hostname, which plain DNS can publish only as a CNAME, and a CNAME must be the name's single answer, but policy %q answers with more than one target", n.FQDN, strings.Join(regions, ", "), n.Policy)
		}
		ans.cname = hosts[0]
	}
	return ans, nil
}

func ttlSeconds(d time.Duration) uint32 {
	if d <= 0 {
		d = defaultTTL
	}
	s := (d + time.Second - 1) / time.Second
	return uint32(min(s, 1<<31-1))
}

// namePlan is one name's UPDATE message and the changes it makes.
type namePlan struct {
	name    string
	changes []publish.Change
	prereq  []dns.RR
	update  []dns.RR
}

// serverTypes are records a server keeps by itself at a name (DNSSEC, and
// SOA and NS at the apex): they do not make a name someone's.
var serverTypes = map[uint16]bool{
	dns.TypeRRSIG: true, dns.TypeNSEC: true, dns.TypeNSEC3: true, dns.TypeNSEC3PARAM: true,
	dns.TypeDNSKEY: true, dns.TypeCDS: true, dns.TypeCDNSKEY: true, dns.TypeZONEMD: true,
}

// foreign lists the types at name that neither this package manages nor
// the server keeps by itself.
func foreign(st zoneState, zone, name string) []string {
	var out []string
	for t := range st[name] {
		if serverTypes[t] || slices.Contains(managed[:], t) {
			continue
		}
		if name == zone && (t == dns.TypeSOA || t == dns.TypeNS) {
			continue
		}
		out = append(out, dns.TypeToString[t])
	}
	slices.Sort(out)
	return out
}

// owners returns the kubecdn owners named by the TXT records at
// OwnershipName(name).
func owners(st zoneState, name string) []string {
	var out []string
	for _, rr := range st[publish.OwnershipName(name)][dns.TypeTXT] {
		if o, ok := publish.ParseOwnership(strings.Join(rr.(*dns.TXT).Txt, "")); ok && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// plan compares the zone with d and returns, per name that must change, the
// UPDATE that changes it; names that cannot be published are errors
// (*publish.OwnedError for names that are not d.Owner's).
func plan(zone string, st zoneState, d publish.Desired) ([]namePlan, []error) {
	var plans []namePlan
	var errs []error
	want := map[string]bool{}
	for _, n := range d.Names {
		name := strings.TrimSuffix(strings.ToLower(n.FQDN), ".")
		want[name] = true
		ans, err := answerFor(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ans.cname != "" && name == zone {
			errs = append(errs, fmt.Errorf("rfc2136: %s is the zone apex, which cannot have a CNAME (target %s)", name, strings.TrimSuffix(ans.cname, ".")))
			continue
		}
		holders := owners(st, name)
		others := slices.DeleteFunc(slices.Clone(holders), func(o string) bool { return o == d.Owner })
		ours := len(others) < len(holders)
		switch {
		case len(others) > 0:
			errs = append(errs, &publish.OwnedError{Name: name, Owner: others[0]})
			continue
		case !ours && len(foreign(st, zone, name))+len(st[name][dns.TypeA])+len(st[name][dns.TypeAAAA])+len(st[name][dns.TypeCNAME]) > 0:
			errs = append(errs, &publish.OwnedError{Name: name})
			continue
		}
		if f := foreign(st, zone, name); ans.cname != "" && len(f) > 0 {
			errs = append(errs, fmt.Errorf("rfc2136: %s has %s records beside which a CNAME (to %s) cannot be added", name, strings.Join(f, ", "), strings.TrimSuffix(ans.cname, ".")))
			continue
		}
		pl := diff(st, name, d.Owner, ans, ours, false)
		if len(pl.changes) > 0 {
			plans = append(plans, pl)
		}
	}
	// Names the owner holds that d no longer lists, in name order.
	var gone []string
	for o := range st {
		name, ok := strings.CutPrefix(o, publish.OwnershipPrefix+".")
		if !ok || want[name] || !slices.Contains(owners(st, name), d.Owner) {
			continue
		}
		gone = append(gone, name)
	}
	slices.Sort(gone)
	for _, name := range gone {
		plans = append(plans, diff(st, name, d.Owner, answer{}, true, true))
	}
	return plans, errs
}

// diff builds the update of one name that is free (ours false) or the
// owner's; remove (with ours) deletes the owner's records and TXT.
func diff(st zoneState, name, owner string, ans answer, ours, remove bool) namePlan {
	pl := namePlan{name: name}
	fqdn := name + "."
	oname := publish.OwnershipName(name)
	txt := st[oname][dns.TypeTXT]
	mine := &dns.TXT{Hdr: hdr(oname+".", dns.TypeTXT, ans.ttl), Txt: []string{publish.OwnershipValue(owner)}}

	// Prerequisites: the ownership TXT RRset exactly as read (or absent),
	// and for a new name, none of its managed records.
	if len(txt) == 0 {
		pl.prereq = append(pl.prereq, &dns.ANY{Hdr: dns.RR_Header{Name: oname + ".", Rrtype: dns.TypeTXT, Class: dns.ClassNONE}})
	}
	for _, rr := range txt {
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		c.Header().Class = dns.ClassINET
		pl.prereq = append(pl.prereq, c)
	}
	if !ours {
		if len(st[name]) == 0 {
			pl.prereq = append(pl.prereq, &dns.ANY{Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeANY, Class: dns.ClassNONE}})
		} else {
			for _, t := range managed {
				pl.prereq = append(pl.prereq, &dns.ANY{Hdr: dns.RR_Header{Name: fqdn, Rrtype: t, Class: dns.ClassNONE}})
			}
		}
		pl.changes = append(pl.changes, publish.Change{Action: publish.Create, Name: oname, Type: "TXT", Detail: fmt.Sprintf("%q", mine.Txt[0])})
		pl.update = append(pl.update, mine)
	}

	wantRRs := map[uint16][]dns.RR{}
	for _, a := range ans.a {
		wantRRs[dns.TypeA] = append(wantRRs[dns.TypeA], &dns.A{Hdr: hdr(fqdn, dns.TypeA, ans.ttl), A: a.AsSlice()})
	}
	for _, a := range ans.aaaa {
		wantRRs[dns.TypeAAAA] = append(wantRRs[dns.TypeAAAA], &dns.AAAA{Hdr: hdr(fqdn, dns.TypeAAAA, ans.ttl), AAAA: a.AsSlice()})
	}
	if ans.cname != "" {
		wantRRs[dns.TypeCNAME] = []dns.RR{&dns.CNAME{Hdr: hdr(fqdn, dns.TypeCNAME, ans.ttl), Target: ans.cname}}
	}
	// Deletions first: a CNAME can only be added once the addresses are
	// gone, and the other way round.
	var adds []dns.RR
	for _, t := range managed {
		cur, w := st[name][t], wantRRs[t]
		if sameRRset(cur, w) {
			continue
		}
		c := publish.Change{Name: name, Type: dns.TypeToString[t], Detail: detail(w)}
		switch {
		case len(cur) == 0:
			c.Action = publish.Create
		case len(w) == 0:
			c.Action, c.Detail = publish.Delete, detail(cur)
		default:
			c.Action = publish.Update
		}
		pl.changes = append(pl.changes, c)
		if len(cur) > 0 {
			pl.update = append(pl.update, &dns.ANY{Hdr: dns.RR_Header{Name: fqdn, Rrtype: t, Class: dns.ClassANY}})
		}
		adds = append(adds, w...)
	}
	pl.update = append(pl.update, adds...)

	if ours {
		var old *dns.TXT
		for _, rr := range txt {
			if o, ok := publish.ParseOwnership(strings.Join(rr.(*dns.TXT).Txt, "")); ok && o == owner {
				old = rr.(*dns.TXT)
			}
		}
		switch {
		case remove:
			pl.changes = append(pl.changes, publish.Change{Action: publish.Delete, Name: oname, Type: "TXT", Detail: fmt.Sprintf("%q", strings.Join(old.Txt, ""))})
			pl.update = append(pl.update, rmRR(old))
		case old.Hdr.Ttl != ans.ttl:
			pl.changes = append(pl.changes, publish.Change{Action: publish.Update, Name: oname, Type: "TXT", Detail: fmt.Sprintf("%q ttl %d", mine.Txt[0], ans.ttl)})
			pl.update = append(pl.update, rmRR(old), mine)
		}
	}
	if len(pl.changes) == 0 {
		pl.prereq, pl.update = nil, nil
	}
	return pl
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// rmRR is the update that deletes one record (RFC 2136 section 2.5.4).
func rmRR(rr dns.RR) dns.RR {
	c := dns.Copy(rr)
	c.Header().Class = dns.ClassNONE
	c.Header().Ttl = 0
	return c
}

// sameRRset reports whether two RRsets hold the same data with the same TTL.
func sameRRset(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x.Header().Ttl == y.Header().Ttl && dns.IsDuplicate(x, y) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// detail shows an RRset's data and TTL, e.g. "192.0.2.1 192.0.2.2 ttl 60".
func detail(rrs []dns.RR) string {
	if len(rrs) == 0 {
		return ""
	}
	var parts []string
	for _, rr := range rrs {
		s := strings.TrimPrefix(rr.String(), rr.Header().String())
		parts = append(parts, strings.TrimSuffix(s, "."))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%s ttl %d", strings.Join(parts, " "), rrs[0].Header().Ttl)
}
