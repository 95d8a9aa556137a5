package rfc2136

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
)

func TestAnswerFor(t *testing.T) {
	v4 := func(s ...string) []netip.Addr { return addrs(s...) }
	tests := []struct {
		name    string
		n       publish.Name
		a, aaaa []string
		cname   string
		ttl     uint32
		wantErr string
	}{
		{
			name: "all is the union, sorted and distinct",
			n: publish.Name{FQDN: "www.z", TTL: 30 * time.Second, Policy: config.PolicyAll, Targets: []publish.Target{
				{Region: "b", Addresses: v4("192.0.2.2", "2001:db8::1", "192.0.2.1")},
				{Region: "a", Addresses: v4("192.0.2.1", "::ffff:192.0.2.3")},
			}},
			a: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}, aaaa: []string{"2001:db8::1"}, ttl: 30,
		},
		{
			name: "latency and geo publish every target",
			n: publish.Name{FQDN: "www.z", Policy: config.PolicyLatency, Targets: []publish.Target{
				{Region: "a", Addresses: v4("192.0.2.1")}, {Region: "b", Addresses: v4("192.0.2.2")},
			}},
			a: []string{"192.0.2.1", "192.0.2.2"}, ttl: 60,
		},
		{
			name: "failover takes the lowest order",
			n: publish.Name{FQDN: "www.z", Policy: config.PolicyFailover, Targets: []publish.Target{
				{Region: "a", Addresses: v4("192.0.2.1"), Order: 2},
				{Region: "b", Addresses: v4("192.0.2.2"), Order: 1},
				{Region: "c", Addresses: v4("192.0.2.3"), Order: 1},
			}},
			a: []string{"192.0.2.2", "192.0.2.3"}, ttl: 60,
		},
		{
			name: "weighted leaves out weight 0",
			n: publish.Name{FQDN: "www.z", Policy: config.PolicyWeighted, Targets: []publish.Target{
				{Region: "a", Addresses: v4("192.0.2.1"), Weight: 0},
				{Region: "b", Addresses: v4("192.0.2.2"), Weight: 3},
			}},
			a: []string{"192.0.2.2"}, ttl: 60,
		},
		{
			name: "weighted with every weight 0 takes all",
			n: publish.Name{FQDN: "www.z", Policy: config.PolicyWeighted, Targets: []publish.Target{
				{Region: "a", Addresses: v4("192.0.2.1")}, {Region: "b", Addresses: v4("192.0.2.2")},
			}},
			a: []string{"192.0.2.1", "192.0.2.2"}, ttl: 60,
		},
		{
			name:  "a single hostname is a CNAME",
			n:     publish.Name{FQDN: "www.z", TTL: 1500 * time.Millisecond, Targets: []publish.Target{{Region: "a", Hostname: "LB.Example.NET"}}},
			cname: "lb.example.net.", ttl: 2,
		},
		{
			name: "failover to a hostname primary is a CNAME",
			n: publish.Name{FQDN: "www.z", Policy: config.PolicyFailover, Targets: []publish.Target{
				{Region: "a", Hostname: "lb.example.net", Order: 0}, {Region: "b", Addresses: v4("192.0.2.2"), Order: 1},
			}},
			cname: "lb.example.net.", ttl: 60,
		},
		{
			name: "a hostname beside addresses is an error",
			n: publish.Name{FQDN: "www.z", Policy: config.PolicyAll, Targets: []publish.Target{
				{Region: "a", Hostname: "lb.example.net"}, {Region: "b", Addresses: v4("192.0.2.2")},
			}},
			wantErr: "www.z: region a has a hostname",
		},
		{
			name: "two hostnames are an error",
			n: publish.Name{FQDN: "www.z", Policy: config.PolicyLatency, Targets: []publish.Target{
				{Region: "a", Hostname: "a.example.net"}, {Region: "b", Hostname: "b.example.net"},
			}},
			wantErr: "www.z: region a, b has a hostname",
		},
		{
			name: "no targets, no records",
			n:    publish.Name{FQDN: "www.z", Policy: config.PolicyFailover},
			ttl:  60,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := answerFor(tt.n)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			str := func(as []netip.Addr) []string {
				var out []string
				for _, a := range as {
					out = append(out, a.String())
				}
				return out
			}
			if !slices.Equal(str(got.a), tt.a) || !slices.Equal(str(got.aaaa), tt.aaaa) || got.cname != tt.cname || got.ttl != tt.ttl {
				t.Errorf("got A %v AAAA %v CNAME %q ttl %d, want A %v AAAA %v CNAME %q ttl %d",
					str(got.a), str(got.aaaa), got.cname, got.ttl, tt.a, tt.aaaa, tt.cname, tt.ttl)
			}
		})
	}
}

// state parses zone-file text (origin z.) into a zoneState.
func state(t *testing.T, text string) zoneState {
	t.Helper()
	st := zoneState{}
	zp := dns.NewZoneParser(strings.NewReader("$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\n"+text), "z.", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		st.add(rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	return st
}

// rrs renders records in presentation format without tabs.
func rrs(rs []dns.RR) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strings.Join(strings.Fields(r.String()), " "))
	}
	return out
}

func TestPlan(t *testing.T) {
	one := func(label string, ttl time.Duration, addr string) publish.Name {
		return publish.Name{FQDN: label, TTL: ttl, Targets: []publish.Target{{Region: "r", Addresses: addrs(addr)}}}
	}
	host := func(label, h string) publish.Name {
		return publish.Name{FQDN: label, Targets: []publish.Target{{Region: "r", Hostname: h}}}
	}
	tests := []struct {
		name    string
		zone    string
		names   []publish.Name
		changes []string
		prereq  [][]string
		update  [][]string
		errs    []string
	}{
		{
			name:    "a free name is created if still unused",
			names:   []publish.Name{one("www.z", 0, "192.0.2.1")},
			changes: []string{`create TXT _kubecdn-owner.www.z "heritage=kubecdn,owner=a"`, "create A www.z 192.0.2.1 ttl 60"},
			prereq:  [][]string{{"_kubecdn-owner.www.z. 0 NONE TXT", "www.z. 0 NONE ANY"}},
			update:  [][]string{{`_kubecdn-owner.www.z. 60 IN TXT "heritage=kubecdn,owner=a"`, "www.z. 60 IN A 192.0.2.1"}},
		},
		{
			name:    "the free apex keeps its SOA and NS",
			names:   []publish.Name{one("z", 0, "192.0.2.1")},
			changes: []string{`create TXT _kubecdn-owner.z "heritage=kubecdn,owner=a"`, "create A z 192.0.2.1 ttl 60"},
			prereq:  [][]string{{"_kubecdn-owner.z. 0 NONE TXT", "z. 0 NONE A", "z. 0 NONE AAAA", "z. 0 NONE CNAME"}},
			update:  [][]string{{`_kubecdn-owner.z. 60 IN TXT "heritage=kubecdn,owner=a"`, "z. 60 IN A 192.0.2.1"}},
		},
		{
			name:  "another owner's and hand-made names are refused",
			zone:  "www A 192.0.2.9\n_kubecdn-owner.www TXT \"heritage=kubecdn,owner=b\"\nhand MX 10 mail\nother TXT \"not an owner\"\n_kubecdn-owner.other TXT \"v=spf1\"\n",
			names: []publish.Name{one("www.z", 0, "192.0.2.1"), one("hand.z", 0, "192.0.2.1"), one("other.z", 0, "192.0.2.1")},
			errs:  []string{`www.z: owned by kubecdn "b"`, "hand.z: has records that no kubecdn owns", "other.z: has records that no kubecdn owns"},
		},
		{
			name:  "the owner's unchanged name needs nothing",
			zone:  "www 30 A 192.0.2.1\nwww 30 A 192.0.2.2\n_kubecdn-owner.www 30 TXT \"heritage=kubecdn,owner=a\"\n",
			names: []publish.Name{{FQDN: "www.z", TTL: 30 * time.Second, Targets: []publish.Target{{Region: "r", Addresses: addrs("192.0.2.2", "192.0.2.1")}}}},
		},
		{
			name:    "a changed TTL rewrites the RRset and the TXT",
			zone:    "www 30 A 192.0.2.1\n_kubecdn-owner.www 30 TXT \"heritage=kubecdn,owner=a\"\n",
			names:   []publish.Name{one("www.z", 45*time.Second, "192.0.2.1")},
			changes: []string{"update A www.z 192.0.2.1 ttl 45", `update TXT _kubecdn-owner.www.z "heritage=kubecdn,owner=a" ttl 45`},
			prereq:  [][]string{{`_kubecdn-owner.www.z. 0 IN TXT "heritage=kubecdn,owner=a"`}},
			update: [][]string{{"www.z. 0 CLASS255 A", "www.z. 45 IN A 192.0.2.1",
				`_kubecdn-owner.www.z. 0 NONE TXT "heritage=kubecdn,owner=a"`, `_kubecdn-owner.www.z. 45 IN TXT "heritage=kubecdn,owner=a"`}},
		},
		{
			name:    "addresses replaced by a CNAME: deletions first",
			zone:    "www 60 A 192.0.2.1\nwww 60 AAAA 2001:db8::1\n_kubecdn-owner.www 60 TXT \"heritage=kubecdn,owner=a\"\n",
			names:   []publish.Name{host("www.z", "lb.example.net")},
			changes: []string{"delete A www.z 192.0.2.1 ttl 60", "delete AAAA www.z 2001:db8::1 ttl 60", "create CNAME www.z lb.example.net ttl 60"},
			prereq:  [][]string{{`_kubecdn-owner.www.z. 0 IN TXT "heritage=kubecdn,owner=a"`}},
			update:  [][]string{{"www.z. 0 CLASS255 A", "www.z. 0 CLASS255 AAAA", "www.z. 60 IN CNAME lb.example.net."}},
		},
		{
			name:  "a CNAME cannot join other records or sit at the apex",
			zone:  "www 60 A 192.0.2.1\nwww MX 10 mail\n_kubecdn-owner.www 60 TXT \"heritage=kubecdn,owner=a\"\n",
			names: []publish.Name{host("www.z", "lb.example.net"), host("z", "lb.example.net")},
			errs:  []string{"www.z has MX records beside which a CNAME", "z is the zone apex"},
		},
		{
			name:    "names the owner no longer lists go with their TXT; others stay",
			zone:    "old 60 A 192.0.2.1\nold MX 10 mail\n_kubecdn-owner.old 60 TXT \"heritage=kubecdn,owner=a\"\nb 60 A 192.0.2.2\n_kubecdn-owner.b TXT \"heritage=kubecdn,owner=b\"\n",
			changes: []string{"delete A old.z 192.0.2.1 ttl 60", `delete TXT _kubecdn-owner.old.z "heritage=kubecdn,owner=a"`},
			prereq:  [][]string{{`_kubecdn-owner.old.z. 0 IN TXT "heritage=kubecdn,owner=a"`}},
			update:  [][]string{{"old.z. 0 CLASS255 A", `_kubecdn-owner.old.z. 0 NONE TXT "heritage=kubecdn,owner=a"`}},
		},
		{
			name:    "a name without targets keeps only its claim",
			zone:    "www 60 A 192.0.2.1\n_kubecdn-owner.www 60 TXT \"heritage=kubecdn,owner=a\"\n",
			names:   []publish.Name{{FQDN: "www.z", Policy: config.PolicyAll}},
			changes: []string{"delete A www.z 192.0.2.1 ttl 60"},
			prereq:  [][]string{{`_kubecdn-owner.www.z. 0 IN TXT "heritage=kubecdn,owner=a"`}},
			update:  [][]string{{"www.z. 0 CLASS255 A"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plans, errs := plan("z", state(t, tt.zone), publish.Desired{Zone: "z", Owner: "a", Names: tt.names})
			var changes []string
			var prereq, update [][]string
			for _, p := range plans {
				for _, c := range p.changes {
					changes = append(changes, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", c.Action, c.Type, c.Name, c.Detail)))
				}
				prereq = append(prereq, rrs(p.prereq))
				update = append(update, rrs(p.update))
			}
			if !slices.Equal(changes, tt.changes) {
				t.Errorf("changes:\n got %q\nwant %q", changes, tt.changes)
			}
			if fmt.Sprint(prereq) != fmt.Sprint(tt.prereq) {
				t.Errorf("prerequisites:\n got %q\nwant %q", prereq, tt.prereq)
			}
			if fmt.Sprint(update) != fmt.Sprint(tt.update) {
				t.Errorf("updates:\n got %q\nwant %q", update, tt.update)
			}
			if len(errs) != len(tt.errs) {
				t.Fatalf("errors %v, want %d", errs, len(tt.errs))
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.errs[i]) {
					t.Errorf("error %q, want one containing %q", e, tt.errs[i])
				}
				var oe *publish.OwnedError
				if strings.Contains(tt.errs[i], "own") != errors.As(e, &oe) {
					t.Errorf("error %q: *publish.OwnedError %v", e, errors.As(e, &oe))
				}
			}
		})
	}
}
