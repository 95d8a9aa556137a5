package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/adminapi"
	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/locate"
)

// The edge's endpoints for the autoscaler (adminapi/autoscale.go): demand
// by nearest region, hot keys, warming and the connection drain, each on
// a real edge in front of an httptest origin, on every serving tier.

const testHopKey = "a-hop-key-of-the-test-region"

// demandConfig places loopback clients: 127.0.0.2 in New York (nearest
// us-east-1), 127.0.0.3 in Dublin (nearest eu-west-1, an autoscale
// region, closed or not); 127.0.0.1 is not placed.
func demandConfig(origin, mode string) Config {
	return Config{
		Origin: origin, IOUring: mode, Hostnames: []string{"www.example.com"}, HopKeys: []string{testHopKey},
		Region:        "us-east-1",
		DemandRegions: []DemandRegion{{Name: "us-east-1"}, {Name: "eu-west-1"}, {Name: "nowhere"}},
		Geo: config.Geo{Networks: []config.GeoNetwork{
			{CIDR: "127.0.0.2/32", Location: &config.Location{Lat: 40.7, Lon: -74.0}},
			{CIDR: "127.0.0.3/32", Location: &config.Location{Lat: 53.3, Lon: -6.3}},
		}},
	}
}

// demandEdge starts an edge with demandConfig in front of uringOrigin,
// served in mode; the io_uring mode is skipped where the kernel has none.
func demandEdge(t *testing.T, mode string) *testEdge {
	t.Helper()
	origin, _ := uringOrigin(t)
	e := startEdge(t, demandConfig(origin, mode))
	if mode == IOUringAuto && e.uring.Load() == nil {
		t.Skip("io_uring is not available here")
	}
	return e
}

// dialFrom opens a connection to e's public listener from the loopback
// address ip.
func dialFrom(t *testing.T, e *testEdge, ip string) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// roundTrip writes req on c and reads its response.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	method := "GET"
	if strings.HasPrefix(req, "HEAD ") {
		method = "HEAD"
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// adminDo sends a request to e's admin listener with the admin token (or
// none) and decodes a 200's JSON into out; it returns the status and the
// body read.
func adminDo(t *testing.T, e *testEdge, method, path, token string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, e.admin+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func demandNow(t *testing.T, e *testEdge) adminapi.EdgeDemand {
	t.Helper()
	var d adminapi.EdgeDemand
	if code, _ := adminDo(t, e, http.MethodGet, adminapi.EdgeDemandPath, "s3cret", nil, &d); code != http.StatusOK {
		t.Fatalf("GET %s: %d", adminapi.EdgeDemandPath, code)
	}
	return d
}

// waitDemand waits up to 5 s for the edge's demand to be want (region →
// requests, bytes; every other region 0): net/http counts once the
// response has ended, a moment after the client has read it.
func waitDemand(t *testing.T, e *testEdge, want map[string][2]uint64) adminapi.EdgeDemand {
	t.Helper()
	var d adminapi.EdgeDemand
	got := map[string][2]uint64{}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d = demandNow(t, e)
		clear(got)
		for _, r := range d.Regions {
			if r.Requests != 0 || r.Bytes != 0 {
				got[r.Region] = [2]uint64{r.Requests, r.Bytes}
			}
		}
		if reflect.DeepEqual(got, want) || time.Now().After(deadline) {
			break
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("demand (requests, bytes) by nearest region %v, want %v", got, want)
	}
	return d
}

// TestDemandByNearestRegion: every serving tier counts what it serves by
// the client's nearest region; kubecdn's own traffic (health probes,
// signed requests of other edges) is not counted, a forged signature is a
// client's; the counts are on the admin API and in Prometheus.
func TestDemandByNearestRegion(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			e := demandEdge(t, mode)
			if d := demandNow(t, e); len(d.Regions) != 4 || d.Regions[3].Region != "unknown" || d.StartedAt <= 0 {
				t.Fatalf("a fresh edge's demand %+v, want the file's 3 regions and unknown, all 0", d)
			}
			// A miss from an address no network places: net/http, unknown.
			c1, br1 := dialFrom(t, e, "127.0.0.1")
			_, body := roundTrip(t, c1, br1, "GET /obj HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
			size := uint64(len(body))
			waitDemand(t, e, map[string][2]uint64{"unknown": {1, size}})

			// From New York, on one kept-alive connection: three hits and
			// a HEAD, which the fast tier answers (the loop, or the
			// goroutine fast path).
			c2, br2 := dialFrom(t, e, "127.0.0.2")
			hits := hitCount(e)
			for range 3 {
				resp, _ := roundTrip(t, c2, br2, "GET /obj HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
				if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
					t.Fatalf("not a hit: %q", resp.Header.Get("Cache-Status"))
				}
			}
			roundTrip(t, c2, br2, "HEAD /obj HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
			if got := hitCount(e) - hits; got != 4 {
				t.Fatalf("%v hits counted by the fast tier, want 4", got)
			}

			// From Dublin: a range (net/http) and a health probe (not
			// counted); a request signed by a peer of the region (not
			// counted), one with a forged signature (counted).
			c3, br3 := dialFrom(t, e, "127.0.0.3")
			_, part := roundTrip(t, c3, br3, "GET /obj HTTP/1.1\r\nHost: www.example.com\r\nRange: bytes=0-1\r\n\r\n")
			roundTrip(t, c3, br3, "GET "+HealthPath+" HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
			sig := signHop([]byte(testHopKey), "peer", time.Now(), http.MethodGet, "www.example.com", "/obj", http.Header{})
			roundTrip(t, c3, br3, "GET /obj HTTP/1.1\r\nHost: www.example.com\r\nKubecdn-Hop: "+sig+"\r\n\r\n")
			forged := signHop([]byte("not-the-region-hop-key"), "peer", time.Now(), http.MethodGet, "www.example.com", "/obj", http.Header{})
			roundTrip(t, c3, br3, "GET /obj HTTP/1.1\r\nHost: www.example.com\r\nKubecdn-Hop: "+forged+"\r\n\r\n")

			want := map[string][2]uint64{"unknown": {1, size}, "us-east-1": {4, 3 * size}, "eu-west-1": {2, uint64(len(part)) + size}}
			d := waitDemand(t, e, want)
			if d.Edge != e.rt.Load().self {
				t.Errorf("edge %q, want %q", d.Edge, e.rt.Load().self)
			}
			// The RTT gain: New York's users are served by their nearest
			// region (known, 0); Dublin's would save the Atlantic twice;
			// an unplaced client has none.
			dublin := config.Location{Lat: 53.3, Lon: -6.3}
			usE1, _ := config.LocationOf(config.Region{Name: "us-east-1"})
			euW1, _ := config.LocationOf(config.Region{Name: "eu-west-1"})
			perReq := uint64(1000 * (locate.EstimateRTT(config.DistanceKm(dublin, usE1)) - locate.EstimateRTT(config.DistanceKm(dublin, euW1))))
			wantGain := map[string][2]uint64{"us-east-1": {4, 0}, "eu-west-1": {2, 2 * perReq}, "nowhere": {0, 0}, "unknown": {0, 0}}
			for _, r := range d.Regions {
				if g := wantGain[r.Region]; r.GainRequests != g[0] || r.GainMicros != g[1] {
					t.Errorf("%s: gain over %d requests %d µs, want %d and %d", r.Region, r.GainRequests, r.GainMicros, g[0], g[1])
				}
			}
			if perReq < 50_000 {
				t.Errorf("Dublin's gain from eu-west-1 over us-east-1: %d µs, want tens of ms", perReq)
			}
			_, metrics := get(t, e.admin+"/metrics")
			for _, line := range []string{
				`kubecdn_edge_demand_requests_total{nearest="us-east-1"} 4`,
				`kubecdn_edge_demand_requests_total{nearest="eu-west-1"} 2`,
				`kubecdn_edge_demand_requests_total{nearest="nowhere"} 0`,
				fmt.Sprintf(`kubecdn_edge_demand_bytes_total{nearest="us-east-1"} %d`, 3*size),
				`kubecdn_edge_demand_rtt_gain_requests_total{nearest="eu-west-1"} 2`,
			} {
				if !strings.Contains(metrics, line+"\n") {
					t.Errorf("metrics lack %q", line)
				}
			}
			if code, _ := adminDo(t, e, http.MethodGet, adminapi.EdgeDemandPath, "", nil, nil); code != http.StatusUnauthorized {
				t.Errorf("demand without the token: %d, want 401", code)
			}
		})
	}
}

// TestDemandWithoutRegions: an edge told no regions counts every client
// as unknown; and counting does not depend on the access log's sampling
// (here: errors only), on any tier.
func TestDemandWithoutRegions(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			origin, _ := uringOrigin(t)
			e, lines := loggedEdge(t, Config{Origin: origin, IOUring: mode, AccessLogSample: -1})
			_, body := get(t, e.url+"/x", "Host", "h") // a miss: net/http
			c, br := dialFrom(t, e, "127.0.0.1")
			for range 2 {
				if resp, _ := roundTrip(t, c, br, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
					t.Fatalf("not a hit: %q", resp.Header.Get("Cache-Status"))
				}
			}
			waitDemand(t, e, map[string][2]uint64{"unknown": {3, 3 * uint64(len(body))}})
			if l := lines(); len(l) != 0 {
				t.Errorf("%d access log lines, want none (errors only)", len(l))
			}
		})
	}
}

// TestHotKeysEndpoint: the edge names the URLs it served most, with their
// sizes, whichever tier served them, bounded by n and bytes.
func TestHotKeysEndpoint(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			e := demandEdge(t, mode)
			// Each object's miss (net/http), then hits on a connection of
			// their own, which the fast tier answers.
			for _, path := range []string{"/big/3000", "/b", "/c"} {
				get(t, e.url+path, "Host", "www.example.com")
			}
			c, br := dialFrom(t, e, "127.0.0.2")
			hits := hitCount(e)
			for path, n := range map[string]int{"/big/3000": 3, "/b": 2} {
				for range n {
					roundTrip(t, c, br, "GET "+path+" HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
				}
			}
			if got := hitCount(e) - hits; got != 5 {
				t.Fatalf("%v hits on the fast tier, want 5", got)
			}
			// A range of /c: net/http's way, counted with the whole
			// object's size.
			roundTrip(t, c, br, "GET /c HTTP/1.1\r\nHost: www.example.com\r\nRange: bytes=0-0\r\n\r\n")
			hot := func(query string) []adminapi.HotKey {
				var h adminapi.HotKeys
				if code, _ := adminDo(t, e, http.MethodGet, adminapi.HotPath+query, "s3cret", nil, &h); code != http.StatusOK {
					t.Fatalf("GET hot%s: %d", query, code)
				}
				return h.Keys
			}
			b, cs := int64(len("body/b")), int64(len("body/c"))
			want := []adminapi.HotKey{
				{URL: "http://www.example.com/big/3000", Bytes: 3000, Hits: 4},
				{URL: "http://www.example.com/b", Bytes: b, Hits: 3},
				{URL: "http://www.example.com/c", Bytes: cs, Hits: 2},
			}
			var got []adminapi.HotKey
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if got = hot(""); reflect.DeepEqual(got, want) {
					break
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("hot keys %+v, want %+v", got, want)
			}
			if got := hot("?n=2"); !reflect.DeepEqual(got, want[:2]) {
				t.Errorf("n=2: %+v", got)
			}
			if got := hot(fmt.Sprintf("?bytes=%d", b+cs)); !reflect.DeepEqual(got, want[1:]) {
				t.Errorf("bytes=%d: %+v, want the two small ones", b+cs, got)
			}
			if code, _ := adminDo(t, e, http.MethodGet, adminapi.HotPath+"?n=-1", "s3cret", nil, nil); code != http.StatusBadRequest {
				t.Errorf("n=-1: %d, want 400", code)
			}
			if code, _ := adminDo(t, e, http.MethodGet, adminapi.HotPath, "", nil, nil); code != http.StatusUnauthorized {
				t.Errorf("without the token: %d, want 401", code)
			}
		})
	}
}

// TestHotKeysBounded: however many URLs are served, the summary holds at
// most hotCapacity, keeps a URL served often among a long tail of URLs
// served once, and forgets old counts by half every half-life.
func TestHotKeysBounded(t *testing.T) {
	now := time.Unix(1767225600, 0)
	h := newHotKeys(func() time.Time { return now })
	for i := range 20 * hotCapacity {
		if i%10 == 0 {
			h.add("http://h/hot", 42)
		}
		h.add(fmt.Sprintf("http://h/tail/%d", i), 1)
	}
	h.add("http://h/"+strings.Repeat("x", hotMaxURL), 1) // too long: not tracked
	if n := len(h.byURL); n != hotCapacity || len(h.min) != hotCapacity {
		t.Fatalf("%d URLs tracked (%d in the heap), want the bound %d", n, len(h.min), hotCapacity)
	}
	top := h.top(3, 0)
	if len(top) != 3 || top[0].URL != "http://h/hot" || top[0].Bytes != 42 || top[0].Hits < 2*hotCapacity {
		t.Fatalf("top %+v, want http://h/hot first with at least %d hits", top, 2*hotCapacity)
	}
	before := top[0].Hits
	now = now.Add(2 * hotHalfLife)
	if got := h.top(1, 0)[0].Hits; got != before/4 {
		t.Errorf("after two half-lives %d hits, want %d", got, before/4)
	}
}

// TestWarm: warming fetches each URL through the miss path, stores what a
// fill stores (and not what it would not), at most warmConcurrent at a
// time, without counting demand or hot keys; URLs of other hosts are
// refused by name.
func TestWarm(t *testing.T) {
	var inFlight, most atomic.Int32
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(30 * time.Millisecond)
		switch {
		case r.URL.Path == "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
			return
		default:
			w.Header().Set("Cache-Control", "max-age=600")
		}
		io.WriteString(w, "body"+r.URL.Path)
	})
	e := startEdge(t, demandConfig(origin.URL, IOUringOff))
	urls := []string{"http://www.example.com/nostore", "http://www.example.com/missing"}
	var stored int64
	for i := range 20 {
		p := fmt.Sprintf("/w/%d", i)
		urls = append(urls, "http://www.example.com"+p)
		stored += int64(len("body" + p))
	}
	var res adminapi.WarmResult
	if code, _ := adminDo(t, e, http.MethodPost, adminapi.WarmPath, "s3cret", adminapi.WarmRequest{URLs: urls}, &res); code != http.StatusOK {
		t.Fatalf("warm: %d", code)
	}
	if want := (adminapi.WarmResult{Fetched: 20, Failed: 2, Bytes: stored}); res != want {
		t.Errorf("warm result %+v, want %+v", res, want)
	}
	if m := most.Load(); m > warmConcurrent || m < 2 {
		t.Errorf("%d origin fetches at once, want 2 to %d", m, warmConcurrent)
	}
	// Warmed: a hit, no second fetch. Not storable: fetched again.
	resp, body := get(t, e.url+"/w/7", "Host", "www.example.com")
	if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") || body != "body/w/7" || co.n("/w/7") != 1 {
		t.Errorf("after warming: %q %q, %d origin fetches", resp.Header.Get("Cache-Status"), body, co.n("/w/7"))
	}
	get(t, e.url+"/nostore", "Host", "www.example.com")
	if n := co.n("/nostore"); n != 2 {
		t.Errorf("/nostore fetched %d times, want 2: warming must not store it", n)
	}
	// Warming again: hits, nothing stored anew.
	adminDo(t, e, http.MethodPost, adminapi.WarmPath, "s3cret", adminapi.WarmRequest{URLs: urls[2:5]}, &res)
	if want := (adminapi.WarmResult{Fetched: 3}); res != want {
		t.Errorf("warm again %+v, want %+v", res, want)
	}
	// Only the two client requests above are demand, and hot.
	waitDemand(t, e, map[string][2]uint64{"unknown": {2, uint64(len("body/w/7") + len("body/nostore"))}})
	if keys := e.hot.top(maxHotN, 0); len(keys) != 1 || keys[0].URL != "http://www.example.com/w/7" {
		t.Errorf("hot keys %+v, want only the client's /w/7 (/nostore is not cached: no use warming it)", keys)
	}

	for _, tt := range []struct {
		name string
		urls []string
		want string
	}{
		{"other host", []string{"http://www.example.com/a", "http://evil.example/x", "https://other.example/y"}, "http://evil.example/x, https://other.example/y"},
		{"not absolute", []string{"/relative"}, "/relative"},
		{"too many", make([]string, maxWarmURLs+1), "at most 1000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := adminDo(t, e, http.MethodPost, adminapi.WarmPath, "s3cret", adminapi.WarmRequest{URLs: tt.urls}, nil)
			if code != http.StatusBadRequest || !strings.Contains(msg, tt.want) {
				t.Errorf("%d %q, want 400 naming %q", code, msg, tt.want)
			}
		})
	}
	if co.n("/a") != 0 {
		t.Errorf("a refused warm request fetched its good URLs")
	}
}

// trackedConn records when its reader sees the connection end (the
// server closed it).
type trackedConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { close(c.closed) })
	}
	return n, err
}

// TestDrain: with a real HTTP client holding a kept-alive connection, on
// each tier (the io_uring loop, the goroutine fast path, net/http): once
// the edge drains, the idle connection is closed, and the response on the
// next connection carries Connection: close and ends it; undrained, the
// client keeps its connection again.
func TestDrain(t *testing.T) {
	for _, tt := range []struct {
		name, mode string
		hdr        []string // makes the request net/http's
	}{
		{"io_uring loop", IOUringAuto, nil},
		{"fast path", IOUringOff, nil},
		{"net/http", IOUringOff, []string{"Range", "bytes=0-1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := demandEdge(t, tt.mode)
			conns := make(chan *trackedConn, 10)
			client := &http.Client{Transport: &http.Transport{
				MaxIdleConnsPerHost: 1,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					tc := &trackedConn{Conn: c, closed: make(chan struct{})}
					conns <- tc
					return tc, nil
				},
			}}
			defer client.CloseIdleConnections()
			fetch := func() *http.Response {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, e.url+"/obj", nil)
				req.Host = "www.example.com"
				for i := 0; i+1 < len(tt.hdr); i += 2 {
					req.Header.Set(tt.hdr[i], tt.hdr[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp
			}
			// A hit first, on another connection: a miss would take the
			// client's connection to net/http for good.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if resp, _ := get(t, e.url+"/obj", "Host", "www.example.com"); strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("/obj never became a hit")
				}
			}
			if resp := fetch(); resp.Close || (tt.hdr == nil && !strings.Contains(resp.Header.Get("Cache-Status"), "hit")) {
				t.Fatalf("before the drain: close %v, Cache-Status %q", resp.Close, resp.Header.Get("Cache-Status"))
			}
			if len(conns) != 1 {
				t.Fatalf("%d connections before the drain, want 1 kept alive", len(conns))
			}
			kept := <-conns

			var st adminapi.DrainRequest
			if code, _ := adminDo(t, e, http.MethodPost, adminapi.DrainPath, "s3cret", adminapi.DrainRequest{Drain: true}, &st); code != http.StatusOK || !st.Drain {
				t.Fatalf("drain: %d %+v", code, st)
			}
			select {
			case <-kept.closed:
			case <-time.After(5 * time.Second):
				t.Fatal("the idle kept-alive connection is still open 5 s into the drain")
			}
			// The next response carries Connection: close, and the edge
			// closes the connection after it.
			c, br := dialFrom(t, e, "127.0.0.1")
			raw := "GET /obj HTTP/1.1\r\nHost: www.example.com\r\n"
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				raw += tt.hdr[i] + ": " + tt.hdr[i+1] + "\r\n"
			}
			resp, _ := roundTrip(t, c, br, raw+"\r\n")
			// (ReadResponse moves a Connection: close field to Close.)
			if !resp.Close || resp.StatusCode/100 != 2 {
				t.Errorf("a response while draining: %d, close %v, want Connection: close", resp.StatusCode, resp.Close)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after a Connection: close response: %v, want the connection closed (EOF)", err)
			}
			if resp := fetch(); !resp.Close {
				t.Error("the client's next response while draining does not close its connection")
			}
			<-conns
			if code, _ := adminDo(t, e, http.MethodGet, adminapi.DrainPath, "s3cret", nil, &st); code != http.StatusOK || !st.Drain {
				t.Errorf("GET drain: %d %+v", code, st)
			}

			adminDo(t, e, http.MethodPost, adminapi.DrainPath, "s3cret", adminapi.DrainRequest{Drain: false}, &st)
			if st.Drain {
				t.Fatalf("undrain: %+v", st)
			}
			for range 2 {
				if resp := fetch(); resp.Close {
					t.Fatal("Connection: close after the drain ended")
				}
			}
			if n := len(conns); n != 1 {
				t.Errorf("%d connections for two requests after the drain, want 1 kept alive", n)
			}
			if code, _ := adminDo(t, e, http.MethodPost, adminapi.DrainPath, "", adminapi.DrainRequest{Drain: true}, nil); code != http.StatusUnauthorized {
				t.Errorf("drain without the token: %d, want 401", code)
			}
		})
	}
}

// TestDemandSettings: the regions and geo networks reach the edge from
// its file and flags (a flag's list replaces the file's), are checked
// naming the field, write back as they read, and are filled from a CDN
// file the one way render and up do it.
func TestDemandSettings(t *testing.T) {
	file := writeFile(t, "edge.yaml", `
origin: http://127.0.0.1:9000
demandRegions: [{name: us-east-1}, {name: eu-west-1, location: {lat: 53.3, lon: -6.3}}]
geo: {networks: [{cidr: 203.0.113.0/24, location: {lat: 53.3, lon: -6.3}}]}
`)
	dublin := &config.Location{Lat: 53.3, Lon: -6.3}
	for _, tt := range []struct {
		name    string
		args    []string
		regions []DemandRegion
		nets    []config.GeoNetwork
		err     string // of LoadSettings, or else of Config
	}{
		{"file", []string{"--config", file}, []DemandRegion{{Name: "us-east-1"}, {Name: "eu-west-1", Location: dublin}},
			[]config.GeoNetwork{{CIDR: "203.0.113.0/24", Location: dublin}}, ""},
		{"flags replace the file's lists", []string{"--config", file, "--demand-region", "ap-southeast-1=1.3,103.8", "--demand-region", "eu-west-1",
			"--geo-network", "198.51.100.0/24=40.7,-74"}, []DemandRegion{{Name: "ap-southeast-1", Location: &config.Location{Lat: 1.3, Lon: 103.8}}, {Name: "eu-west-1"}},
			[]config.GeoNetwork{{CIDR: "198.51.100.0/24", Location: &config.Location{Lat: 40.7, Lon: -74}}}, ""},
		{"network without a place", []string{"--config", file, "--geo-network", "198.51.100.0/24"}, nil, nil, "198.51.100.0/24"},
		{"latitude out of range", []string{"--config", file, "--demand-region", "x=91,0"}, nil, nil, "91,0"},
		{"bad network", []string{"--config", file, "--geo-network", "198.51.100/24=1,1"}, nil, nil, "geo.networks[0]"},
		{"region twice", []string{"--config", file, "--demand-region", "a", "--demand-region", "a"}, nil, nil, "demandRegions[1]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadSettings(tt.args, env(nil))
			if err == nil {
				_, err = s.Config()
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one naming %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.DemandRegions, tt.regions) || !reflect.DeepEqual(s.Geo.Networks, tt.nets) {
				t.Errorf("regions %+v, networks %+v; want %+v, %+v", s.DemandRegions, s.Geo.Networks, tt.regions, tt.nets)
			}
			b, err := s.YAML()
			if err != nil {
				t.Fatal(err)
			}
			if back, err := ParseSettings(b); err != nil || !reflect.DeepEqual(back.DemandRegions, s.DemandRegions) || !reflect.DeepEqual(back.Geo, s.Geo) {
				t.Errorf("round trip through\n%s\ngives %+v, %v", b, back, err)
			}
		})
	}

	cdn := &config.CDN{BaseDir: "/etc/kubecdn"}
	cdn.Spec.Regions.AlwaysOn = []config.Region{{Name: "us-east-1"}}
	cdn.Spec.Regions.Autoscale = []config.Region{{Name: "eu-west-1"}, {Name: "onprem", Location: dublin}, {Name: "unplaced"}}
	cdn.Spec.Routing.Geo = config.Geo{Database: "geo.mmdb", Networks: []config.GeoNetwork{{CIDR: "203.0.113.0/24", Location: dublin}}}
	s := DefaultSettings()
	s.SetDemandFrom(cdn)
	useast, _ := config.BuiltinLocation("us-east-1")
	euwest, _ := config.BuiltinLocation("eu-west-1")
	want := []DemandRegion{{Name: "us-east-1", Location: &useast}, {Name: "eu-west-1", Location: &euwest}, {Name: "onprem", Location: dublin}, {Name: "unplaced"}}
	if !reflect.DeepEqual(s.DemandRegions, want) {
		t.Errorf("from the file: %+v, want %+v", s.DemandRegions, want)
	}
	if s.Geo.Database != "/etc/kubecdn/geo.mmdb" || !reflect.DeepEqual(s.Geo.Networks, cdn.Spec.Routing.Geo.Networks) {
		t.Errorf("geo from the file: %+v", s.Geo)
	}
}
