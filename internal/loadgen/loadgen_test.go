package loadgen

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// edges starts two HTTP servers on the same port of 127.0.0.1 and 127.0.0.2,
// each naming itself in Cache-Status.
func edges(t *testing.T) (port string) {
	t.Helper()
	for try := 0; try < 20; try++ {
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(a.Addr().String())
		b, err := net.Listen("tcp", "127.0.0.2:"+port)
		if err != nil {
			a.Close()
			continue
		}
		for _, l := range []struct {
			ln   net.Listener
			name string
		}{{a, "edge-a"}, {b, "edge-b"}} {
			name := l.name
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Host != "www.cdn.test:"+port {
					http.Error(w, "wrong host "+r.Host, http.StatusMisdirectedRequest)
					return
				}
				w.Header().Set("Cache-Status", "shield; fwd=uri-miss, "+name+"; hit")
				w.Write([]byte("hello"))
			})}
			go srv.Serve(l.ln)
			t.Cleanup(func() { srv.Close() })
		}
		return port
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return ""
}

// dnsServer answers www.cdn.test with answer() (TTL 1 s) and records the
// client subnets it was asked for.
func dnsServer(t *testing.T, answer func() string) (addr string, subnets func() []string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if o := q.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if e, ok := opt.(*dns.EDNS0_SUBNET); ok {
					mu.Lock()
					seen = append(seen, e.Address.String()+"/"+string(rune('0'+e.SourceNetmask/10))+string(rune('0'+e.SourceNetmask%10)))
					mu.Unlock()
				}
			}
		}
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR("www.cdn.test. 1 IN A " + answer())
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestLoadFollowsTheDNSAnswerAsAResolverWould(t *testing.T) {
	port := edges(t)
	var moved atomic.Bool
	addr, subnets := dnsServer(t, func() string {
		if moved.Load() {
			return "127.0.0.2"
		}
		return "127.0.0.1"
	})
	time.AfterFunc(1200*time.Millisecond, func() { moved.Store(true) })
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{URL: "http://www.cdn.test:" + port + "/x", DNS: addr,
		From: netip.MustParsePrefix("203.0.113.77/24"), Rate: 40, Duration: 3500 * time.Millisecond, Timeout: 2 * time.Second, Seed: 1}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v\n%s", sum, out.String())
	if sum.Failed != 0 || sum.Skipped != 0 {
		t.Fatalf("failed %d, skipped %d: %v", sum.Failed, sum.Skipped, sum.Errors)
	}
	if sum.Requests < 120 || sum.Requests > 141 {
		t.Errorf("%d requests in 3.5 s at 40/s", sum.Requests)
	}
	if sum.ByEdge["edge-a"] == 0 || sum.ByEdge["edge-b"] == 0 {
		t.Errorf("users did not move to the new answer: %v", sum.ByEdge)
	}
	if s := subnets(); len(s) == 0 || s[0] != "203.0.113.0/24" {
		t.Errorf("client subnets sent = %v, want 203.0.113.0/24", s)
	}
	// A resolver keeps the answer for its TTL: about one query a second,
	// not one per request.
	if n := len(subnets()); n > 8 {
		t.Errorf("%d dns queries in 3.5 s with a 1 s TTL", n)
	}
	if lines := strings.Count(out.String(), "\n"); lines < 3 || lines > 5 {
		t.Errorf("%d per-second lines for 3.5 s:\n%s", lines, out.String())
	}
	if !strings.Contains(out.String(), "200×") || !strings.Contains(out.String(), "edge-b ") {
		t.Errorf("per-second lines lack codes or edges:\n%s", out.String())
	}
}

func TestLoadCountsFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens: connection refused
	addr, _ := dnsServer(t, func() string { return "127.0.0.1" })
	var out bytes.Buffer
	sum, err := Run(context.Background(), Options{URL: "http://www.cdn.test:" + port + "/", DNS: addr,
		From: netip.MustParsePrefix("192.0.2.0/24"), Rate: 20, Duration: time.Second, Timeout: time.Second}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed == 0 || sum.Failed != sum.Requests || !strings.Contains(out.String(), "failed×") {
		t.Fatalf("summary %+v, output:\n%s", sum, out.String())
	}
}

func TestLoadRefusesUnboundedRuns(t *testing.T) {
	ok := Options{URL: "http://x/", DNS: "127.0.0.1:53", From: netip.MustParsePrefix("192.0.2.0/24"), Rate: 1, Duration: time.Second, Timeout: time.Second}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Rate = MaxRate + 1 }, "--rps"},
		{func(o *Options) { o.Duration = 0 }, "--duration"},
		{func(o *Options) { o.Duration = 25 * time.Hour }, "--duration"},
		{func(o *Options) { o.URL = "ftp://x/" }, "--url"},
		{func(o *Options) { o.From = netip.Prefix{} }, "--from"},
	} {
		o := ok
		tc.mod(&o)
		if _, err := Run(context.Background(), o, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error = %v, want one naming %s", err, tc.want)
		}
	}
}

// TestLoadKeysAreZipfAndHitsCounted: with Keys, the users fetch URL+key with
// a few keys hot and many rare, the same sequence for the same seed, and a
// response whose answering edge says hit is counted as one.
func TestLoadKeysAreZipfAndHitsCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var mu sync.Mutex
	seen := map[string]int{}
	var order []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		order = append(order, r.URL.Path)
		mu.Unlock()
		if n > 1 {
			w.Header().Set("Cache-Status", "shield; hit, edge-a; fwd=uri-miss; stored")
		}
		if n > 2 {
			w.Header().Set("Cache-Status", "edge-a; hit")
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr, _ := dnsServer(t, func() string { return "127.0.0.1" })
	o := Options{URL: "http://www.cdn.test:" + port + "/k/", DNS: addr, From: netip.MustParsePrefix("203.0.113.0/24"),
		Rate: 400, Duration: time.Second, Timeout: 2 * time.Second, Seed: 7, Keys: 1000}
	var out bytes.Buffer
	var seconds int
	o.OnSecond = func(Second) { seconds++ }
	sum, err := Run(context.Background(), o, &out)
	if err != nil || sum.Failed > 0 {
		t.Fatalf("run: %v, %d failed: %v", err, sum.Failed, sum.Errors)
	}
	wantHits := 0
	for p, n := range seen {
		if !strings.HasPrefix(p, "/k/") {
			t.Fatalf("fetched %q, want /k/KEY", p)
		}
		wantHits += max(n-2, 0) // the shield's hit is not the edge's
	}
	if sum.Hits["edge-a"] != wantHits {
		t.Errorf("hits counted %d, want %d (the edge's own hits only)", sum.Hits["edge-a"], wantHits)
	}
	// Zipf: the hottest key takes far more than 1/Keys of the requests,
	// and most keys are never asked for in 400 requests.
	if top := seen["/k/0"]; top < sum.Requests/20 {
		t.Errorf("key 0 fetched %d of %d times; want it hot", top, sum.Requests)
	}
	if len(seen) > sum.Requests*3/4 {
		t.Errorf("%d distinct keys in %d requests; want repeats", len(seen), sum.Requests)
	}
	if seconds == 0 || !strings.Contains(out.String(), " hits)") {
		t.Errorf("OnSecond called %d times; lines:\n%s", seconds, out.String())
	}
	// Same seed, same sequence; another seed, another.
	a, b, c := targets(o), targets(o), targets(Options{URL: o.URL, Keys: o.Keys, Seed: 8})
	same, other := true, false
	for range 1000 {
		x := a()
		same = same && x == b()
		other = other || x != c()
	}
	if !same || !other {
		t.Errorf("same seed gives one sequence: %v; another seed another: %v", same, other)
	}
}

// A caller that stops the run cuts off the requests in flight; they are
// counted as stopped, not as failures of the edge.
func TestLoadStoppedRequestsAreNotFailures(t *testing.T) {
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // stall until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { close(release); srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	addr, _ := dnsServer(t, func() string { return "127.0.0.1" })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	sum, _ := Run(ctx, Options{URL: "http://www.cdn.test:" + port + "/", DNS: addr,
		From: netip.MustParsePrefix("192.0.2.0/24"), Rate: 20, Duration: 5 * time.Second, Timeout: 10 * time.Second}, &out)
	if sum.Stopped == 0 || sum.Failed != 0 {
		t.Fatalf("summary %+v: want the stalled requests counted as stopped, none as failed", sum)
	}
}
