package rfc2136

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/publish"
	"github.com/kubecdn/kubecdn/internal/publish/registry"
)

const (
	testZone   = "cdn.example.test"
	testKey    = "kubecdn-key."
	testSecret = "a3ViZWNkbi10ZXN0LXNlY3JldC0zMi1ieXRlcy1sb25n" // "kubecdn-test-secret-32-bytes-long"
	// fillers are records of a hand-made subtree, enough that the zone's
	// AXFR spans several messages, each with its own TSIG.
	fillers = 1500
)

// knot is a Knot DNS server started by a test.
type knot struct {
	addr string // 127.0.0.1:port
	port int
	kdig string
	out  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tool finds a program of the Debian package pkg. A missing program is a
// failure, not a skip: CI installs knot and knot-dnsutils.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("%s not found: apt-get install %s (CI must install it)", name, pkg)
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// freePort returns a loopback port that was free for both TCP and UDP a
// moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

const knotConf = `server:
    listen: 127.0.0.1@{{PORT}}
    rundir: {{DIR}}
    pidfile: {{DIR}}/knot.pid
log:
  - target: stderr
    any: info
database:
    storage: {{DIR}}
key:
  - id: {{KEY}}
    algorithm: hmac-sha256
    secret: {{SECRET}}
  - id: transfer-only.
    algorithm: hmac-sha256
    secret: {{SECRET}}
acl:
  - id: kubecdn
    key: {{KEY}}
    action: [update, transfer]
  - id: transfer-only
    key: transfer-only.
    action: transfer
template:
  - id: default
    storage: {{DIR}}
    # Updates live in the journal and are answered at once; the zone file
    # stays as written (the test reads the server, never the file).
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    semantic-checks: on
zone:
  - domain: {{ZONE}}
    file: {{ZONE}}.zone
    acl: [kubecdn, transfer-only]
`

// startKnot runs knotd in the foreground with a fresh zone and stops it
// when the test ends.
func startKnot(t *testing.T) *knot {
	t.Helper()
	knotd := tool(t, "knotd", "knot")
	kdig := tool(t, "kdig", "knot-dnsutils")
	dir := t.TempDir()

	var zf strings.Builder
	fmt.Fprintf(&zf, "$ORIGIN %s.\n$TTL 300\n", testZone)
	zf.WriteString("@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n")
	zf.WriteString("hand A 192.0.2.99\n") // made by hand: no kubecdn owns it
	for i := range fillers {
		fmt.Fprintf(&zf, "f%d.filler TXT \"%s\"\n", i, strings.Repeat("x", 100))
	}
	if err := os.WriteFile(filepath.Join(dir, testZone+".zone"), []byte(zf.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	for attempt := 0; ; attempt++ {
		k := &knot{port: freePort(t), kdig: kdig, out: &syncBuffer{}}
		k.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(k.port))
		conf := strings.NewReplacer("{{PORT}}", strconv.Itoa(k.port), "{{DIR}}", dir,
			"{{KEY}}", testKey, "{{SECRET}}", testSecret, "{{ZONE}}", testZone).Replace(knotConf)
		confPath := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(knotd, "-c", confPath)
		cmd.Stdout, cmd.Stderr = k.out, k.out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting knotd: %v", err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		if k.ready(done) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("knotd output:\n%s", k.out.String())
				}
			})
			return k
		}
		stop()
		if attempt == 2 {
			t.Fatalf("knotd did not answer on %s:\n%s", k.addr, k.out.String())
		}
	}
}

// ready waits until the server answers the zone's SOA, or gives up.
func (k *knot) ready(done <-chan struct{}) bool {
	c := &dns.Client{Net: "tcp", Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(testZone+".", dns.TypeSOA)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-done:
			return false
		default:
		}
		if r, _, err := c.Exchange(m, k.addr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// serial is the zone's SOA serial, which Knot bumps on every update.
func (k *knot) serial(t *testing.T) uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(testZone+".", dns.TypeSOA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, k.addr)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("SOA query: %v %v", r, err)
	}
	return r.Answer[0].(*dns.SOA).Serial
}

// dig asks the server with kdig and returns the answer's lines, sorted.
func (k *knot) dig(t *testing.T, name, qtype string) []string {
	t.Helper()
	out, err := exec.Command(k.kdig, "@127.0.0.1", "-p", strconv.Itoa(k.port), name, qtype, "+short", "+timeout=2", "+retry=0").CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %s %s: %v\n%s", name, qtype, err, out)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	slices.Sort(lines)
	return lines
}

func newTestPublisher(t *testing.T, addr, secret string) *Publisher {
	t.Helper()
	return newKeyPublisher(t, addr, testKey, secret)
}

func newKeyPublisher(t *testing.T, addr, key, secret string) *Publisher {
	t.Helper()
	t.Setenv("KUBECDN_TEST_TSIG", secret)
	p, err := New(config.RFC2136{Server: addr, TSIG: config.TSIG{Name: key, Algorithm: "hmac-sha256", SecretEnv: "KUBECDN_TEST_TSIG"}}, testZone, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func fqdn(label string) string { return label + "." + testZone }

// changeSet renders changes as "action TYPE name" lines, sorted.
func changeSet(cs []publish.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s %s", c.Action, c.Type, c.Name))
	}
	slices.Sort(out)
	return out
}

// TestKnot publishes to a real Knot DNS server, step by step; each step
// starts from the zone the previous ones left.
func TestKnot(t *testing.T) {
	k := startKnot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	pub := newTestPublisher(t, k.addr, testSecret)

	www := publish.Name{FQDN: fqdn("www"), TTL: 30 * time.Second, Policy: config.PolicyAll, Targets: []publish.Target{
		{Region: "eu", Addresses: addrs("192.0.2.1")},
		{Region: "us", Addresses: addrs("192.0.2.2", "2001:db8::2")},
	}}
	api := publish.Name{FQDN: fqdn("api"), TTL: 60 * time.Second, Policy: config.PolicyFailover, Targets: []publish.Target{
		{Region: "us", Addresses: addrs("192.0.2.20"), Order: 1},
		{Region: "eu", Addresses: addrs("192.0.2.10"), Order: 0},
	}}
	media := publish.Name{FQDN: fqdn("media"), Policy: config.PolicyAll, Targets: []publish.Target{
		{Region: "eu", Hostname: "lb-eu.example.net"},
	}}
	desired := func(owner string, names ...publish.Name) publish.Desired {
		return publish.Desired{Zone: testZone, Owner: owner, Names: names}
	}
	a := desired("a", www, api, media)

	type check struct {
		name, qtype string
		want        []string
	}
	steps := []struct {
		name   string
		pub    *Publisher
		d      publish.Desired
		dryRun bool
		// want are the changes returned; wantErr the substrings of the
		// error, wantOwned the names refused with *publish.OwnedError and
		// their owners.
		want      []string
		wantErr   []string
		wantOwned map[string]string
		// bump says whether the zone's serial must change.
		bump   bool
		checks []check
	}{
		{
			name: "publish all failover cname",
			pub:  pub, d: a, bump: true,
			want: []string{
				"create A " + fqdn("api"), "create A " + fqdn("www"), "create AAAA " + fqdn("www"),
				"create CNAME " + fqdn("media"),
				"create TXT _kubecdn-owner." + fqdn("api"), "create TXT _kubecdn-owner." + fqdn("media"), "create TXT _kubecdn-owner." + fqdn("www"),
			},
			checks: []check{
				{fqdn("www"), "A", []string{"192.0.2.1", "192.0.2.2"}},
				{fqdn("www"), "AAAA", []string{"2001:db8::2"}},
				{fqdn("api"), "A", []string{"192.0.2.10"}},
				{fqdn("media"), "CNAME", []string{"lb-eu.example.net."}},
				{"_kubecdn-owner." + fqdn("www"), "TXT", []string{`"heritage=kubecdn,owner=a"`}},
			},
		},
		{
			name: "re-run changes nothing",
			pub:  pub, d: a,
		},
		{
			name: "dry run changes nothing",
			pub:  pub, dryRun: true,
			d:    desired("a", publish.Name{FQDN: www.FQDN, TTL: www.TTL, Policy: www.Policy, Targets: www.Targets[:1]}, media, publish.Name{FQDN: fqdn("new"), Targets: []publish.Target{{Region: "eu", Addresses: addrs("192.0.2.50")}}}),
			want: []string{"create A " + fqdn("new"), "create TXT _kubecdn-owner." + fqdn("new"), "delete A " + fqdn("api"), "delete AAAA " + fqdn("www"), "delete TXT _kubecdn-owner." + fqdn("api"), "update A " + fqdn("www")},
			checks: []check{
				{fqdn("www"), "A", []string{"192.0.2.1", "192.0.2.2"}},
				{fqdn("new"), "A", nil},
				{fqdn("api"), "A", []string{"192.0.2.10"}},
			},
		},
		{
			name: "target removed",
			pub:  pub, bump: true,
			d:    desired("a", publish.Name{FQDN: www.FQDN, TTL: www.TTL, Policy: www.Policy, Targets: www.Targets[:1]}, api, media),
			want: []string{"delete AAAA " + fqdn("www"), "update A " + fqdn("www")},
			checks: []check{
				{fqdn("www"), "A", []string{"192.0.2.1"}},
				{fqdn("www"), "AAAA", nil},
			},
		},
		{
			name: "name removed, hostname replaced by addresses",
			pub:  pub, bump: true,
			d: desired("a", publish.Name{FQDN: www.FQDN, TTL: www.TTL, Policy: www.Policy, Targets: www.Targets[:1]},
				publish.Name{FQDN: media.FQDN, Policy: config.PolicyWeighted, Targets: []publish.Target{
					{Region: "eu", Addresses: addrs("192.0.2.30"), Weight: 0},
					{Region: "us", Addresses: addrs("192.0.2.31"), Weight: 5},
				}}),
			want: []string{"create A " + fqdn("media"), "delete A " + fqdn("api"), "delete CNAME " + fqdn("media"), "delete TXT _kubecdn-owner." + fqdn("api")},
			checks: []check{
				{fqdn("api"), "A", nil},
				{"_kubecdn-owner." + fqdn("api"), "TXT", nil},
				{fqdn("media"), "A", []string{"192.0.2.31"}},
				{fqdn("media"), "CNAME", nil},
			},
		},
		{
			name: "second CDN shares the zone",
			pub:  pub, bump: true,
			d: desired("b", publish.Name{FQDN: fqdn("video"), TTL: 120 * time.Second, Targets: []publish.Target{{Region: "ap", Addresses: addrs("198.51.100.7")}}},
				publish.Name{FQDN: www.FQDN, Targets: []publish.Target{{Region: "ap", Addresses: addrs("198.51.100.8")}}}),
			want:      []string{"create A " + fqdn("video"), "create TXT _kubecdn-owner." + fqdn("video")},
			wantOwned: map[string]string{fqdn("www"): "a"},
			checks: []check{
				{fqdn("video"), "A", []string{"198.51.100.7"}},
				{fqdn("www"), "A", []string{"192.0.2.1"}},
				{"_kubecdn-owner." + fqdn("video"), "TXT", []string{`"heritage=kubecdn,owner=b"`}},
			},
		},
		{
			name: "first CDN leaves the second's and the hand-made names alone",
			pub:  pub,
			d: desired("a", publish.Name{FQDN: www.FQDN, TTL: www.TTL, Policy: www.Policy, Targets: www.Targets[:1]},
				publish.Name{FQDN: media.FQDN, Targets: []publish.Target{{Region: "us", Addresses: addrs("192.0.2.31")}}},
				publish.Name{FQDN: fqdn("video"), Targets: []publish.Target{{Region: "eu", Addresses: addrs("192.0.2.40")}}},
				publish.Name{FQDN: fqdn("hand"), Targets: []publish.Target{{Region: "eu", Addresses: addrs("192.0.2.41")}}}),
			wantOwned: map[string]string{fqdn("video"): "b", fqdn("hand"): ""},
			checks: []check{
				{fqdn("video"), "A", []string{"198.51.100.7"}},
				{fqdn("hand"), "A", []string{"192.0.2.99"}},
				{"_kubecdn-owner." + fqdn("hand"), "TXT", nil},
			},
		},
		{
			name: "second CDN removes only its own",
			pub:  pub, bump: true,
			d:    desired("b"),
			want: []string{"delete A " + fqdn("video"), "delete TXT _kubecdn-owner." + fqdn("video")},
			checks: []check{
				{fqdn("video"), "A", nil},
				{fqdn("www"), "A", []string{"192.0.2.1"}},
				{fqdn("media"), "A", []string{"192.0.2.31"}},
			},
		},
		{
			name:    "wrong secret",
			pub:     newTestPublisher(t, k.addr, "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="),
			d:       a,
			wantErr: []string{"NOTAUTH", "BADSIG", "check tsig secret and algorithm"},
		},
		{
			name:    "key without update rights",
			pub:     newKeyPublisher(t, k.addr, "transfer-only.", testSecret),
			d:       a,
			wantErr: []string{"updating www.cdn.example.test: UPDATE answered NOTAUTH (TSIG error BADKEY)", "gives the key update rights", "2 more names not updated"},
		},
	}
	t.Cleanup(func() {
		// Each message of a multi-message transfer carries its own TSIG,
		// which Publish verified.
		m := regexp.MustCompile(`AXFR, outgoing, .* finished, .* (\d+) messages`).FindStringSubmatch(k.out.String())
		if m == nil || m[1] == "1" {
			t.Errorf("no AXFR of several messages in knotd's log (%v); raise fillers", m)
		} else {
			t.Logf("knotd sent each AXFR in %s messages", m[1])
		}
	})
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := k.serial(t)
			got, err := s.pub.Publish(ctx, s.d, s.dryRun)
			if err != nil {
				t.Logf("error: %v", err)
			}
			if gs := changeSet(got); !slices.Equal(gs, s.want) {
				t.Errorf("changes:\n got %q\nwant %q", gs, s.want)
			}
			owned := map[string]string{}
			for e := range walk(err) {
				if oe, ok := e.(*publish.OwnedError); ok {
					owned[oe.Name] = oe.Owner
				}
			}
			switch {
			case len(s.wantErr) > 0:
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range s.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
			case len(s.wantOwned) > 0:
				if len(owned) != len(s.wantOwned) || fmt.Sprint(owned) != fmt.Sprint(s.wantOwned) {
					t.Errorf("owned errors %v, want %v (error: %v)", owned, s.wantOwned, err)
				}
			case err != nil:
				t.Fatalf("error: %v", err)
			}
			if after := k.serial(t); (after != before) != s.bump {
				t.Errorf("serial %d -> %d, want a change: %v", before, after, s.bump)
			}
			for _, c := range s.checks {
				if got := k.dig(t, c.name, c.qtype); !slices.Equal(got, c.want) {
					t.Errorf("kdig %s %s = %q, want %q", c.name, c.qtype, got, c.want)
				}
			}
		})
	}
}

// walk yields err and every error it wraps or joins.
func walk(err error) func(func(error) bool) {
	return func(yield func(error) bool) {
		var rec func(error) bool
		rec = func(e error) bool {
			if e == nil {
				return true
			}
			if !yield(e) {
				return false
			}
			switch u := e.(type) {
			case interface{ Unwrap() []error }:
				for _, x := range u.Unwrap() {
					if !rec(x) {
						return false
					}
				}
			case interface{ Unwrap() error }:
				return rec(u.Unwrap())
			}
			return true
		}
		rec(err)
	}
}

// TestKnotPrerequisites proves that an update planned from a stale read
// fails on the server instead of taking a name another CDN took meanwhile.
func TestKnotPrerequisites(t *testing.T) {
	k := startKnot(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	pub := newTestPublisher(t, k.addr, testSecret)
	race := publish.Name{FQDN: fqdn("race"), Targets: []publish.Target{{Region: "eu", Addresses: addrs("192.0.2.60")}}}

	stale, err := pub.transfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, publish.Desired{Zone: testZone, Owner: "b", Names: []publish.Name{race}}, false); err != nil {
		t.Fatal(err)
	}
	plans, errs := plan(testZone, stale, publish.Desired{Zone: testZone, Owner: "a", Names: []publish.Name{race}})
	if len(errs) > 0 || len(plans) != 1 {
		t.Fatalf("plan from the stale read: %v %v", plans, errs)
	}
	err = pub.update(ctx, plans[0])
	var re *RcodeError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "prerequisite") {
		t.Fatalf("stale create: %v, want a failed prerequisite", err)
	}
	if got := k.dig(t, "_kubecdn-owner."+fqdn("race"), "TXT"); !slices.Equal(got, []string{`"heritage=kubecdn,owner=b"`}) {
		t.Errorf("ownership after the stale create: %q", got)
	}

	// The owner's update read before another tool rewrote the TXT fails too.
	stale, err = pub.transfer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hijack := new(dns.Msg)
	hijack.SetUpdate(testZone + ".")
	hijack.Ns = []dns.RR{
		&dns.ANY{Hdr: dns.RR_Header{Name: "_kubecdn-owner." + fqdn("race") + ".", Rrtype: dns.TypeTXT, Class: dns.ClassANY}},
		&dns.TXT{Hdr: hdr("_kubecdn-owner."+fqdn("race")+".", dns.TypeTXT, 60), Txt: []string{registry.Value("c")}},
	}
	if _, err := pub.exchange(ctx, hijack); err != nil {
		t.Fatal(err)
	}
	race.Targets[0].Addresses = addrs("192.0.2.61")
	plans, errs = plan(testZone, stale, publish.Desired{Zone: testZone, Owner: "b", Names: []publish.Name{race}})
	if len(errs) > 0 || len(plans) != 1 {
		t.Fatalf("plan from the stale read: %v %v", plans, errs)
	}
	if err := pub.update(ctx, plans[0]); !errors.As(err, &re) {
		t.Fatalf("stale update: %v, want a failed prerequisite", err)
	}
	if got := k.dig(t, fqdn("race"), "A"); !slices.Equal(got, []string{"192.0.2.60"}) {
		t.Errorf("A after the stale update: %q", got)
	}
}

// TestKnotContext shows a cancelled context stops a Publish at once.
func TestKnotContext(t *testing.T) {
	k := startKnot(t)
	pub := newTestPublisher(t, k.addr, testSecret)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := pub.Publish(ctx, publish.Desired{Zone: testZone, Owner: "a"}, false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}
