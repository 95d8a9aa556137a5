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
	"github.com/kubecdn/kubecdn/internal/publish/registry"
)

// defaultTTL is the TTL of a Name whose TTL is zero.
const defaultTTL = 60 * time.Second

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

// managedTypes are registry.ManagedTypes as wire types, in that order.
func managedTypes() []uint16 {
	var out []uint16
	for _, t := range registry.ManagedTypes() {
		out = append(out, dns.StringToType[t])
	}
	return out
}

// listing is what the zone holds at name, for the registry.
func listing(st zoneState, name string) registry.Listing {
	var l registry.Listing
	for t := range st[name] {
		l.Types = append(l.Types, dns.TypeToString[t])
	}
	for t := range st[registry.RecordName(name)] {
		l.OwnershipTypes = append(l.OwnershipTypes, dns.TypeToString[t])
	}
	l.TXT = txtValues(st[registry.RecordName(name)][dns.TypeTXT])
	return l
}

func txtValues(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out
}

// ownershipTXT maps every ownership record's name in the zone to its TXT
// values, for registry.Orphans.
func ownershipTXT(st zoneState) map[string][]string {
	out := map[string][]string{}
	for name, types := range st {
		if _, ok := registry.OwnedName(name); ok {
			out[name] = txtValues(types[dns.TypeTXT])
		}
	}
	return out
}

// foreign lists the types at name that kubecdn does not manage but that
// make the name someone's.
func foreign(st zoneState, zone, name string) []string {
	var out []string
	for t := range st[name] {
		s := dns.TypeToString[t]
		if !registry.Managed(s) && registry.Occupies(zone, name, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// plan compares the zone with d and returns, per name that must change, the
// UPDATE that changes it; names that cannot be published are errors
// (*publish.OwnedError for names that are not d.Owner's).
func plan(zone string, st zoneState, d publish.Desired) ([]namePlan, []error) {
	reg := registry.Registry{Zone: zone, Owner: d.Owner}
	var plans []namePlan
	var errs []error
	want := map[string]bool{}
	for _, n := range d.Names {
		name := strings.TrimSuffix(strings.ToLower(n.FQDN), ".")
		want[name] = true
		pl, err := planName(reg, st, name, n)
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(pl.changes) > 0:
			plans = append(plans, pl)
		}
	}
	// Names the owner holds that d no longer lists, in name order.
	for _, name := range reg.Orphans(ownershipTXT(st), want) {
		plans = append(plans, diff(st, reg, name, answer{}, true, true))
	}
	return plans, errs
}

// planName is the update of one desired name, or why it cannot be made.
func planName(reg registry.Registry, st zoneState, name string, n publish.Name) (namePlan, error) {
	ans, err := answerFor(n)
	if err != nil {
		return namePlan{}, err
	}
	if ans.cname != "" && name == reg.Zone {
		return namePlan{}, fmt.Errorf("rfc2136: %s is the zone apex, which cannot have a CNAME (target %s)", name, strings.TrimSuffix(ans.cname, "."))
	}
	ours, err := reg.Check(name, listing(st, name))
	if err != nil {
		return namePlan{}, err
	}
	if f := foreign(st, reg.Zone, name); ans.cname != "" && len(f) > 0 {
		return namePlan{}, fmt.Errorf("rfc2136: %s has %s records beside which a CNAME (to %s) cannot be added", name, strings.Join(f, ", "), strings.TrimSuffix(ans.cname, "."))
	}
	return diff(st, reg, name, ans, ours, false), nil
}

// diff builds the update of one name that is free (ours false) or the
// owner's; remove (with ours) deletes the owner's records and TXT.
func diff(st zoneState, reg registry.Registry, name string, ans answer, ours, remove bool) namePlan {
	pl := namePlan{name: name}
	oname := registry.RecordName(name)
	mine := &dns.TXT{Hdr: hdr(oname+".", dns.TypeTXT, ans.ttl), Txt: []string{registry.Value(reg.Owner)}}
	pl.prereq = prerequisites(st, name, ours)
	if !ours {
		pl.changes = append(pl.changes, publish.Change{Action: publish.Create, Name: oname, Type: "TXT", Detail: fmt.Sprintf("%q", mine.Txt[0])})
		pl.update = append(pl.update, mine)
	}
	pl.recordChanges(st[name], ans)
	if ours {
		pl.ownershipChanges(st[oname][dns.TypeTXT], reg, mine, remove)
	}
	if len(pl.changes) == 0 {
		pl.prereq, pl.update = nil, nil
	}
	return pl
}

// prerequisites close the race between reading the zone and updating it:
// the ownership TXT RRset exactly as read (or absent), and for a new name,
// none of its managed records.
func prerequisites(st zoneState, name string, ours bool) []dns.RR {
	var out []dns.RR
	oname := registry.RecordName(name)
	txt := st[oname][dns.TypeTXT]
	if len(txt) == 0 {
		out = append(out, &dns.ANY{Hdr: dns.RR_Header{Name: oname + ".", Rrtype: dns.TypeTXT, Class: dns.ClassNONE}})
	}
	for _, rr := range txt {
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		c.Header().Class = dns.ClassINET
		out = append(out, c)
	}
	if ours {
		return out
	}
	if len(st[name]) == 0 {
		return append(out, &dns.ANY{Hdr: dns.RR_Header{Name: name + ".", Rrtype: dns.TypeANY, Class: dns.ClassNONE}})
	}
	for _, t := range managedTypes() {
		out = append(out, &dns.ANY{Hdr: dns.RR_Header{Name: name + ".", Rrtype: t, Class: dns.ClassNONE}})
	}
	return out
}

// recordChanges adds the changes of the managed RRsets at the name (cur is
// what the zone holds there) that make them ans.
func (pl *namePlan) recordChanges(cur map[uint16][]dns.RR, ans answer) {
	fqdn := pl.name + "."
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
	for _, t := range managedTypes() {
		have, w := cur[t], wantRRs[t]
		if sameRRset(have, w) {
			continue
		}
		c := publish.Change{Name: pl.name, Type: dns.TypeToString[t], Detail: detail(w)}
		switch {
		case len(have) == 0:
			c.Action = publish.Create
		case len(w) == 0:
			c.Action, c.Detail = publish.Delete, detail(have)
		default:
			c.Action = publish.Update
		}
		pl.changes = append(pl.changes, c)
		if len(have) > 0 {
			pl.update = append(pl.update, &dns.ANY{Hdr: dns.RR_Header{Name: fqdn, Rrtype: t, Class: dns.ClassANY}})
		}
		adds = append(adds, w...)
	}
	pl.update = append(pl.update, adds...)
}

// ownershipChanges adds the change of the owner's TXT at an owned name
// (txt is the RRset read): deleted with remove, rewritten when its TTL is
// not the name's any more.
func (pl *namePlan) ownershipChanges(txt []dns.RR, reg registry.Registry, mine *dns.TXT, remove bool) {
	var old *dns.TXT
	for _, rr := range txt {
		if reg.Mine(strings.Join(rr.(*dns.TXT).Txt, "")) {
			old = rr.(*dns.TXT)
		}
	}
	oname := strings.TrimSuffix(mine.Hdr.Name, ".")
	switch {
	case remove:
		pl.changes = append(pl.changes, publish.Change{Action: publish.Delete, Name: oname, Type: "TXT", Detail: fmt.Sprintf("%q", strings.Join(old.Txt, ""))})
		pl.update = append(pl.update, rmRR(old))
	case old.Hdr.Ttl != mine.Hdr.Ttl:
		pl.changes = append(pl.changes, publish.Change{Action: publish.Update, Name: oname, Type: "TXT", Detail: fmt.Sprintf("%q ttl %d", mine.Txt[0], mine.Hdr.Ttl)})
		pl.update = append(pl.update, rmRR(old), mine)
	}
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
