// Package loadgen is a bounded crowd of synthetic users in one network: it
// resolves the CDN hostname through the dns the way a resolver in that
// network would (EDNS Client Subnet, answers kept for their TTL), fetches
// from the edge it was answered with, and reports per second the status
// codes and which edge served. `kubecdn load` runs it; it is how a newcomer
// watches a region open under demand and close after it.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Limits that keep a load run bounded whatever it is asked.
const (
	MaxRate     = 5000
	MaxDuration = 24 * time.Hour
	// MaxInFlight bounds concurrent requests; a request that would exceed
	// it is counted as skipped (the client, not the CDN, is saturated).
	MaxInFlight = 512
	// MaxKeys bounds Options.Keys.
	MaxKeys = 1 << 24
)

// Options is one run.
type Options struct {
	// URL is what the users fetch; its host is resolved through DNS and
	// its port kept.
	URL string
	// DNS is the dns server to ask (host:port).
	DNS string
	// From is the network the users (and their resolver) are in.
	From netip.Prefix
	// Source, if valid, is the local address the users' connections come
	// from. On one machine every client is loopback, and the edges place
	// clients by their address: a loopback address the file's geo table
	// maps to the same place as From lets the edges see the users where
	// the dns sees their resolver (see LoopbackTwin).
	Source   netip.Addr
	Rate     float64
	Duration time.Duration
	// Timeout bounds each request and each DNS query.
	Timeout time.Duration
	Seed    int64
	// Keys, if more than zero, spreads the users over that many objects:
	// each request fetches URL followed by a key number in [0, Keys),
	// drawn with Zipf popularity (exponent ZipfS; 1.1 if zero), seeded by
	// Seed, so a few keys are hot and many are rare, as on a real site.
	Keys  int
	ZipfS float64
	// OnSecond, if not nil, is given each second as it is printed.
	OnSecond func(Second)
}

// Second is what one second of the run saw.
type Second struct {
	At     time.Time
	Status map[int]int    // by HTTP status; 0 for a request that failed
	ByEdge map[string]int // by the edge that answered (named last in Cache-Status)
	// Hits are the responses of ByEdge the answering edge served from its
	// cache (its Cache-Status entry says hit).
	Hits    map[string]int
	Answer  string // the address the dns answered with
	Skipped int
}

// Summary is the whole run.
type Summary struct {
	Requests, Failed, Skipped int
	// Stopped counts requests cut off because the caller stopped the
	// run (ctx ended while they were in flight): neither answered nor
	// failed, so they are in neither Requests nor Failed.
	Stopped      int
	ByEdge, Hits map[string]int
	Errors       map[string]int // by error text, for failed requests
}

func (o Options) check() (*url.URL, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("--url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("--url %q: want an http or https URL", o.URL)
	case u.Hostname() == "":
		return nil, fmt.Errorf("--url %q: no host", o.URL)
	case !o.From.IsValid():
		return nil, errors.New("--from: want the users' network, e.g. 203.0.113.0/24")
	case o.Rate <= 0 || o.Rate > MaxRate:
		return nil, fmt.Errorf("--rps %g: want more than 0 and at most %d", o.Rate, MaxRate)
	case o.Duration <= 0 || o.Duration > MaxDuration:
		return nil, fmt.Errorf("--duration %s: want more than 0 and at most %s", o.Duration, MaxDuration)
	case o.Timeout <= 0:
		return nil, fmt.Errorf("--timeout %s: want more than 0", o.Timeout)
	case o.Keys < 0 || o.Keys > MaxKeys:
		return nil, fmt.Errorf("--keys %d: want 0 (one URL) to %d", o.Keys, MaxKeys)
	case o.ZipfS != 0 && o.ZipfS <= 1:
		return nil, fmt.Errorf("--zipf %g: want more than 1", o.ZipfS)
	}
	return u, nil
}

// resolver keeps the dns answer for its TTL, as a resolver does.
type resolver struct {
	opts    Options
	host    string
	client  *dns.Client
	rng     *rand.Rand
	mu      sync.Mutex
	addr    string
	expires time.Time
}

// lookup returns the address to fetch from, asking the dns when the cached
// answer has expired.
func (r *resolver) lookup(ctx context.Context, now time.Time) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.addr != "" && now.Before(r.expires) {
		return r.addr, nil
	}
	m := new(dns.Msg)
	qtype := dns.TypeA
	if r.opts.From.Addr().Is6() {
		qtype = dns.TypeAAAA
	}
	m.SetQuestion(dns.Fqdn(r.host), qtype)
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(1232)
	fam, bits := uint16(1), uint8(r.opts.From.Bits())
	if r.opts.From.Addr().Is6() {
		fam = 2
	}
	o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: bits,
		Address: net.IP(r.opts.From.Masked().Addr().AsSlice())})
	m.Extra = append(m.Extra, o)
	qctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	in, _, err := r.client.ExchangeContext(qctx, m, r.opts.DNS)
	if err != nil {
		return "", fmt.Errorf("dns %s: %w", r.opts.DNS, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("dns %s: %s for %s", r.opts.DNS, dns.RcodeToString[in.Rcode], r.host)
	}
	var addrs []string
	ttl := uint32(0)
	for _, rr := range in.Answer {
		switch v := rr.(type) {
		case *dns.A:
			addrs, ttl = append(addrs, v.A.String()), v.Hdr.Ttl
		case *dns.AAAA:
			addrs, ttl = append(addrs, v.AAAA.String()), v.Hdr.Ttl
		}
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("dns %s: no address for %s", r.opts.DNS, r.host)
	}
	r.addr = addrs[r.rng.Intn(len(addrs))]
	r.expires = now.Add(time.Duration(ttl) * time.Second)
	return r.addr, nil
}

// Run sends the load and writes one line per second to out. It returns the
// summary; the run is bounded by Duration, Rate and MaxInFlight.
func Run(ctx context.Context, o Options, out io.Writer) (Summary, error) {
	u, err := o.check()
	if err != nil {
		return Summary{}, err
	}
	res := &resolver{opts: o, host: u.Hostname(), client: &dns.Client{Timeout: o.Timeout}, rng: rand.New(rand.NewSource(o.Seed))}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	// Users fetch from the address the dns answered, over connections kept
	// to that address only: when the answer changes, the next requests go
	// to the new one and the old connections are closed once idle, as new
	// users arriving would do.
	pool := &pool{port: port, timeout: o.Timeout, source: o.Source, byAddr: map[string]*http.Client{}}
	defer pool.close()
	sum := Summary{ByEdge: map[string]int{}, Hits: map[string]int{}, Errors: map[string]int{}}
	var mu sync.Mutex
	newSecond := func() Second { return Second{Status: map[int]int{}, ByEdge: map[string]int{}, Hits: map[string]int{}} }
	cur := newSecond()
	flush := func(at time.Time) {
		mu.Lock()
		s := cur
		s.At = at
		cur = newSecond()
		mu.Unlock()
		res.mu.Lock()
		s.Answer = res.addr
		res.mu.Unlock()
		fmt.Fprintln(out, formatSecond(s, o.Keys > 0))
		if o.OnSecond != nil {
			o.OnSecond(s)
		}
	}
	target := targets(o)
	sem := make(chan struct{}, MaxInFlight)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / o.Rate)
	start := time.Now()
	next, nextSecond := start, start.Add(time.Second)
	end := start.Add(o.Duration)
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return sum, ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		for !now.Before(nextSecond) {
			flush(nextSecond)
			nextSecond = nextSecond.Add(time.Second)
		}
		if !now.Before(end) {
			break
		}
		for ; !next.After(now) && next.Before(end); next = next.Add(interval) {
			select {
			case sem <- struct{}{}:
			default:
				mu.Lock()
				cur.Skipped++
				sum.Skipped++
				mu.Unlock()
				continue
			}
			wg.Add(1)
			u := target() // drawn here, in order, so a seed gives one sequence
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				status, edge, hit, err := 0, "", false, error(nil)
				if addr, lerr := res.lookup(ctx, time.Now()); lerr != nil {
					err = lerr
				} else {
					status, edge, hit, err = fetch(ctx, pool.client(addr), u)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil && ctx.Err() != nil {
					sum.Stopped++
					return
				}
				sum.Requests++
				cur.Status[status]++
				if err != nil {
					sum.Failed++
					sum.Errors[err.Error()]++
					return
				}
				cur.ByEdge[edge]++
				sum.ByEdge[edge]++
				if hit {
					cur.Hits[edge]++
					sum.Hits[edge]++
				}
			}()
		}
		wait := time.Until(next)
		if w := time.Until(nextSecond); w < wait {
			wait = w
		}
		tick.Reset(max(wait, 0))
	}
	wg.Wait()
	if len(cur.Status) > 0 || cur.Skipped > 0 { // the requests still in flight at the end
		flush(time.Now())
	}
	return sum, nil
}

// targets returns what each request fetches in turn: URL, or with Keys,
// URL followed by a Zipf-drawn key, one sequence per Seed. Not safe for
// concurrent use.
func targets(o Options) func() string {
	if o.Keys <= 0 {
		return func() string { return o.URL }
	}
	zs := o.ZipfS
	if zs == 0 {
		zs = 1.1
	}
	z := rand.NewZipf(rand.New(rand.NewSource(o.Seed)), zs, 1, uint64(o.Keys-1))
	return func() string { return o.URL + strconv.FormatUint(z.Uint64(), 10) }
}

// LoopbackTwin is the loopback address that stands for a user in the IPv4
// network from on one machine: 127.B.C.10 for A.B.C.0/24. The example file
// of `kubecdn up` maps each demo network's twin /24 to the same place.
func LoopbackTwin(from netip.Prefix) (netip.Addr, bool) {
	if !from.Addr().Is4() {
		return netip.Addr{}, false
	}
	b := from.Masked().Addr().As4()
	return netip.AddrFrom4([4]byte{127, b[1], b[2], 10}), true
}

// pool keeps one client per answered address.
type pool struct {
	port    string
	timeout time.Duration
	source  netip.Addr
	mu      sync.Mutex
	cur     string
	byAddr  map[string]*http.Client
}

// client returns the client for addr, closing the idle connections of the
// one before it when the answer moved.
func (p *pool) client(addr string) *http.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if addr != p.cur {
		if old := p.byAddr[p.cur]; old != nil {
			old.CloseIdleConnections()
			delete(p.byAddr, p.cur)
		}
		p.cur = addr
	}
	c := p.byAddr[addr]
	if c == nil {
		target := net.JoinHostPort(addr, p.port)
		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				d := net.Dialer{Timeout: p.timeout}
				if p.source.IsValid() {
					d.LocalAddr = &net.TCPAddr{IP: p.source.AsSlice()}
				}
				return d.DialContext(ctx, network, target)
			},
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		}
		c = &http.Client{Transport: tr, Timeout: p.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		p.byAddr[addr] = c
	}
	return c
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.byAddr {
		c.CloseIdleConnections()
	}
}

// fetch does one request and says which edge answered and whether from its
// cache; a status of 500 or more, or a failure to get any, is an error
// (status 0 for the latter).
func fetch(ctx context.Context, c *http.Client, u string) (status int, edge string, hit bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", false, errors.Unwrap(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return resp.StatusCode, "", false, fmt.Errorf("body cut short: %w", err)
	}
	edge, hit = edgeOf(resp.Header.Get("Cache-Status"))
	if resp.StatusCode >= 500 {
		return resp.StatusCode, edge, false, fmt.Errorf("status %d from %s", resp.StatusCode, edge)
	}
	return resp.StatusCode, edge, hit, nil
}

// edgeOf returns the cache named last in a Cache-Status header, and whether
// it served a hit: RFC 9211 lists caches from the origin's side to the
// user's, so the last is the edge that answered the client.
func edgeOf(cs string) (string, bool) {
	last := cs
	if i := strings.LastIndexByte(cs, ','); i >= 0 {
		last = cs[i+1:]
	}
	name, params, _ := strings.Cut(last, ";")
	if name = strings.TrimSpace(name); name == "" {
		return "(no Cache-Status)", false
	}
	hit := false
	for _, p := range strings.Split(params, ";") {
		if strings.TrimSpace(p) == "hit" {
			hit = true
		}
	}
	return name, hit
}

func formatSecond(s Second, hits bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  answer %-15s", s.At.UTC().Format(time.TimeOnly), s.Answer)
	codes := make([]int, 0, len(s.Status))
	for c := range s.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		if c == 0 {
			fmt.Fprintf(&b, "  failed×%d", s.Status[c])
		} else {
			fmt.Fprintf(&b, "  %d×%d", c, s.Status[c])
		}
	}
	edges := make([]string, 0, len(s.ByEdge))
	for e := range s.ByEdge {
		edges = append(edges, e)
	}
	sort.Strings(edges)
	for _, e := range edges {
		fmt.Fprintf(&b, "  %s %d", e, s.ByEdge[e])
		if hits {
			fmt.Fprintf(&b, " (%d hits)", s.Hits[e])
		}
	}
	if s.Skipped > 0 {
		fmt.Fprintf(&b, "  skipped %d (client saturated)", s.Skipped)
	}
	return b.String()
}
