package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Client is an HTTP/3 client trusting f's CA, for SNI www.example.com.
func (f *tlsFixture) h3Client(t *testing.T) (*http.Client, *http3.Transport) {
	t.Helper()
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.ca.Pool(), ServerName: "www.example.com"},
		QUICConfig:      &quic.Config{HandshakeIdleTimeout: 5 * time.Second},
	}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

func h3Get(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s over HTTP/3: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s over HTTP/3: body: %v", url, err)
	}
	if resp.ProtoMajor != 3 {
		t.Fatalf("GET %s: served over %s", url, resp.Proto)
	}
	return resp, b
}

// TestHTTP3ServesThroughTheCache: hits, ranges, collapsing and purge over
// HTTP/3 take the same path as the other versions.
func TestHTTP3ServesThroughTheCache(t *testing.T) {
	body := make([]byte, 300<<10)
	rnd := rand.New(rand.NewPCG(17, 3))
	for i := range body {
		body[i] = byte(rnd.UintN(256))
	}
	release := make(chan struct{})
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.URL.Path == "/slow" {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:1000])
			w.(http.Flusher).Flush()
			<-release
			w.Write(body[1000:])
			return
		}
		w.Header().Set("Surrogate-Key", "all")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	})
	f := newTLSFixture(t)
	e := startEdge(t, Config{Origin: origin.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	c, _ := f.h3Client(t)
	base := "https://" + e.TLSAddr().String()

	resp, b := h3Get(t, c, base+"/obj")
	if resp.StatusCode != 200 || !bytes.Equal(b, body) {
		t.Fatalf("miss: %d, %d bytes, equal %v", resp.StatusCode, len(b), bytes.Equal(b, body))
	}
	resp, b = h3Get(t, c, base+"/obj")
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") || !bytes.Equal(b, body) {
		t.Fatalf("second GET: Cache-Status %q, want a hit", cs)
	}
	if resp.Header.Get("Alt-Svc") != "" {
		t.Errorf("Alt-Svc on an HTTP/3 response: %q", resp.Header.Get("Alt-Svc"))
	}
	for range 20 {
		from := rnd.IntN(len(body))
		to := from + rnd.IntN(len(body)-from)
		resp, b = h3Get(t, c, base+"/obj", "Range", fmt.Sprintf("bytes=%d-%d", from, to))
		if resp.StatusCode != 206 || !bytes.Equal(b, body[from:to+1]) {
			t.Fatalf("range %d-%d: %d, %d bytes, equal to the origin's %v", from, to, resp.StatusCode, len(b), bytes.Equal(b, body[from:to+1]))
		}
	}
	if n := co.n("/obj"); n != 1 {
		t.Fatalf("origin asked %d times for /obj, want 1", n)
	}

	// Collapsing: concurrent misses over HTTP/3, one fetch, each fed
	// while the body streams in.
	var wg sync.WaitGroup
	var firstBytes sync.WaitGroup
	for range 5 {
		firstBytes.Add(1)
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, base+"/slow", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("slow: %v", err)
				firstBytes.Done()
				return
			}
			defer resp.Body.Close()
			first := make([]byte, 1000)
			_, err = io.ReadFull(resp.Body, first)
			firstBytes.Done()
			rest, err2 := io.ReadAll(resp.Body)
			if err != nil || err2 != nil || !bytes.Equal(append(first, rest...), body) {
				t.Errorf("slow: %v %v, not the origin's bytes", err, err2)
			}
		})
	}
	firstBytes.Wait()
	close(release)
	wg.Wait()
	if n := co.n("/slow"); n != 1 {
		t.Fatalf("5 concurrent HTTP/3 misses asked the origin %d times, want 1", n)
	}

	// Purge (admin over HTTP/1.1), then the next HTTP/3 GET is a miss.
	req, _ := http.NewRequest(http.MethodPost, e.admin+"/v1/purge", strings.NewReader(`{"tags":["all"]}`))
	req.Header.Set("Authorization", "Bearer s3cret")
	presp, err := http.DefaultClient.Do(req)
	if err != nil || presp.StatusCode != 200 {
		t.Fatalf("purge: %v %v", err, presp)
	}
	presp.Body.Close()
	resp, _ = h3Get(t, c, base+"/obj")
	if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "hit") || co.n("/obj") != 2 {
		t.Fatalf("after purge: Cache-Status %q, origin asked %d times", cs, co.n("/obj"))
	}

	_, m := get(t, e.admin+"/metrics")
	if !strings.Contains(m, `kubecdn_edge_protocol_requests_total{proto="h3"} 28`) {
		t.Errorf("metrics: want 28 h3 requests:\n%s", regexp.MustCompile(`.*protocol_requests_total\{.*`).FindAllString(m, -1))
	}
}

// TestAltSvc: HTTPS responses over HTTP/1.1 (fast path and net/http) and
// HTTP/2 name the UDP port once it is bound; none without HTTP/3, none on
// plain HTTP.
func TestAltSvc(t *testing.T) {
	f := newTLSFixture(t)
	o := cachedOrigin(t)
	off := startEdge(t, Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs, HTTP3Off: true})
	if off.h3AltSvc() != "" {
		t.Fatalf("HTTP/3 off: Alt-Svc %q", off.h3AltSvc())
	}
	e := startEdge(t, Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	_, port, _ := net.SplitHostPort(e.TLSAddr().String())
	want := `h3=":` + port + `"; ma=86400`
	for _, x := range []struct {
		e    *testEdge
		want string
	}{{off, ""}, {e, want}} {
		base := "https://" + x.e.TLSAddr().String()
		for _, h2 := range []bool{true, false} {
			c := f.client("www.example.com", h2)
			for i, p := range []string{"/a", "/a", HealthPath} { // miss, hit (the fast path on HTTP/1.1), health
				resp, _ := fetch(t, c, base+p, "www.example.com")
				if got := resp.Header.Get("Alt-Svc"); got != x.want && p != HealthPath {
					t.Errorf("%s #%d over %s: Alt-Svc %q, want %q", p, i, resp.Proto, got, x.want)
				}
			}
		}
		if resp, _ := get(t, x.e.url+"/a"); resp.Header.Get("Alt-Svc") != "" {
			t.Errorf("Alt-Svc on plain HTTP: %q", resp.Header.Get("Alt-Svc"))
		}
	}
	// What it names answers HTTP/3.
	c, _ := f.h3Client(t)
	if resp, _ := h3Get(t, c, "https://127.0.0.1:"+port+"/a"); resp.StatusCode != 200 {
		t.Fatalf("h3 at the Alt-Svc port: %d", resp.StatusCode)
	}
	// Each request counted once, by its version, whichever tier served it
	// (health checks are not requests).
	_, m := get(t, e.admin+"/metrics")
	for _, want := range []string{`{proto="h1"} 3`, `{proto="h2"} 2`, `{proto="h3"} 1`} {
		if !strings.Contains(m, "kubecdn_edge_protocol_requests_total"+want) {
			t.Errorf("metrics: no %s in\n%s", want, regexp.MustCompile(`.*protocol_requests_total\{.*`).FindAllString(m, -1))
		}
	}
}

// udpRelay forwards datagrams between one client and target, delaying
// those from target by delay, and counts the QUIC Retry packets target
// sends.
type udpRelay struct {
	pc      net.PacketConn
	up      *net.UDPConn
	delay   time.Duration
	client  atomic.Pointer[net.Addr]
	retries atomic.Int32
}

func newUDPRelay(t *testing.T, target string, delay time.Duration) *udpRelay {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta, _ := net.ResolveUDPAddr("udp", target)
	up, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{pc: pc, up: up, delay: delay}
	t.Cleanup(func() { pc.Close(); up.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.client.Store(&from)
			up.Write(buf[:n])
		}
	}()
	go func() {
		for {
			buf := make([]byte, 65536)
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			// Long header (0x80), fixed bit (0x40), type Retry (0x30): QUIC v1.
			if buf[0]&0xf0 == 0xf0 {
				r.retries.Add(1)
			}
			to := *r.client.Load()
			time.AfterFunc(r.delay, func() { pc.WriteTo(buf[:n], to) })
		}
	}()
	return r
}

func (r *udpRelay) addr() string { return r.pc.LocalAddr().String() }

// TestHTTP3EarlyData: a POST sent in 0-RTT gets 425 Too Early, a GET sent
// in 0-RTT is served. The relay delays the edge's packets by 200 ms, so
// the client's handshake cannot complete before the edge reads the early
// requests.
func TestHTTP3EarlyData(t *testing.T) {
	f := newTLSFixture(t)
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, r.Method+" "+r.URL.Path)
	})
	e := startEdge(t, Config{Origin: origin.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	relay := newUDPRelay(t, e.TLSAddr().String(), 200*time.Millisecond)
	tlsConf := &tls.Config{RootCAs: f.ca.Pool(), ServerName: "www.example.com", NextProtos: []string{http3.NextProtoH3},
		ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	qconf := &quic.Config{HandshakeIdleTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := &http3.Transport{}
	defer tr.Close()

	// A full handshake, for a session ticket that allows 0-RTT.
	conn, err := quic.DialAddrEarly(ctx, relay.addr(), tlsConf, qconf)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://www.example.com/warm", nil)
	resp, err := tr.NewClientConn(conn).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	time.Sleep(300 * time.Millisecond) // the ticket follows the handshake, through the relay's delay
	conn.CloseWithError(0, "")

	early := func(method, path string) (*http.Response, string, bool) {
		t.Helper()
		conn, err := quic.DialAddrEarly(ctx, relay.addr(), tlsConf, qconf)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseWithError(0, "")
		cc := tr.NewClientConn(conn)
		str, err := cc.OpenRequestStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// (SendRequestHeader takes no body: the POST has none.)
		req, _ := http.NewRequestWithContext(ctx, method, "https://www.example.com"+path, nil)
		if err := str.SendRequestHeader(req); err != nil {
			t.Fatal(err)
		}
		str.Close()
		select {
		case <-conn.HandshakeComplete():
			t.Fatalf("%s: the handshake completed before the request was sent: not early", method)
		default:
		}
		resp, err := str.ReadResponse()
		if err != nil {
			t.Fatalf("%s in 0-RTT: %v", method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b), conn.ConnectionState().Used0RTT
	}
	resp, body, used := early(http.MethodPost, "/form")
	if !used {
		t.Fatal("POST: the edge did not accept 0-RTT")
	}
	if resp.StatusCode != http.StatusTooEarly || co.n("/form") != 0 {
		t.Fatalf("POST in 0-RTT: %d %q, origin asked %d times; want 425 and none", resp.StatusCode, body, co.n("/form"))
	}
	resp, body, used = early(http.MethodGet, "/page")
	if !used || resp.StatusCode != 200 || body != "GET /page" {
		t.Fatalf("GET in 0-RTT: 0-RTT %v, %d %q", used, resp.StatusCode, body)
	}
	// After the handshake a POST goes through.
	c, _ := f.h3Client(t)
	preq, _ := http.NewRequest(http.MethodPost, "https://"+e.TLSAddr().String()+"/form", strings.NewReader("x"))
	presp, err := c.Do(preq)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != 200 || co.n("/form") != 1 {
		t.Fatalf("POST after the handshake: %d, origin asked %d times", presp.StatusCode, co.n("/form"))
	}
}

// TestHTTP3Retry: above the handshake rate, clients are sent a Retry
// (address validation) and still connect; below it, none.
func TestHTTP3Retry(t *testing.T) {
	f := newTLSFixture(t)
	o := cachedOrigin(t)
	for _, x := range []struct {
		above       int
		wantRetries bool
	}{{0, false}, {1, true}, {-1, true}} {
		e := startEdge(t, Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs, HTTP3RetryAbove: x.above})
		relay := newUDPRelay(t, e.TLSAddr().String(), 0)
		for i := range 4 {
			c, tr := f.h3Client(t)
			if resp, _ := h3Get(t, c, "https://"+relay.addr()+"/a"); resp.StatusCode != 200 {
				t.Fatalf("above %d, #%d: %d", x.above, i, resp.StatusCode)
			}
			tr.Close()
		}
		n := relay.retries.Load()
		// A client may send its first flight in more than one datagram,
		// each answered with a Retry.
		if x.wantRetries && (n < 3 || (x.above < 0 && n < 4)) || !x.wantRetries && n != 0 {
			t.Errorf("retry above %d/s: 4 quick handshakes got %d Retry packets", x.above, n)
		}
	}
}

// TestHTTP3GoAway: the connection drain and shutdown send GOAWAY on open
// HTTP/3 connections (the client closes them); new ones are served during
// the drain.
func TestHTTP3GoAway(t *testing.T) {
	f := newTLSFixture(t)
	o := cachedOrigin(t)
	e := startEdge(t, Config{Origin: o.URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	tlsConf := &tls.Config{RootCAs: f.ca.Pool(), ServerName: "www.example.com", NextProtos: []string{http3.NextProtoH3}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := &http3.Transport{}
	defer tr.Close()
	open := func() (*quic.Conn, *http3.ClientConn) {
		t.Helper()
		conn, err := quic.DialAddr(ctx, e.TLSAddr().String(), tlsConf, &quic.Config{})
		if err != nil {
			t.Fatal(err)
		}
		cc := tr.NewClientConn(conn)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://www.example.com/a", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return conn, cc
	}
	closedByGoAway := func(what string, conn *quic.Conn) {
		t.Helper()
		select {
		case <-conn.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the connection stayed open 5 s", what)
		}
		// The client closes with H3_NO_ERROR once GOAWAY came and its
		// requests are done.
		if ae, ok := context.Cause(conn.Context()).(*quic.ApplicationError); !ok || ae.ErrorCode != quic.ApplicationErrorCode(http3.ErrCodeNoError) || ae.Remote {
			t.Fatalf("%s: closed by %v, want the client's H3_NO_ERROR after GOAWAY", what, context.Cause(conn.Context()))
		}
	}
	idle, _ := open()
	select {
	case <-idle.Context().Done():
		t.Fatal("closed before the drain")
	case <-time.After(200 * time.Millisecond):
	}
	e.SetDrain(true)
	closedByGoAway("drain", idle)
	fresh, _ := open() // served during the drain, then sent GOAWAY
	closedByGoAway("opened during the drain", fresh)
	e.SetDrain(false)
	last, _ := open()
	select {
	case <-last.Context().Done():
		t.Fatal("closed after the drain ended")
	case <-time.After(200 * time.Millisecond):
	}
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	closedByGoAway("shutdown", last)
}

// TestHTTP3SharesCertificateReloads: HTTP/3 handshakes use the TCP
// listener's certificates, reloads included.
func TestHTTP3SharesCertificateReloads(t *testing.T) {
	f := newTLSFixture(t)
	e := startEdge(t, Config{Origin: cachedOrigin(t).URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	serial := func() string {
		t.Helper()
		c, tr := f.h3Client(t)
		defer tr.Close()
		resp, _ := h3Get(t, c, "https://"+e.TLSAddr().String()+"/x")
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	// A new certificate for www.example.com over the same files.
	f.ca.Issue(t, []string{"www.example.com"}, time.Time{}, time.Time{}).Write(t, f.dir, "www.example.com")
	if err := e.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if after := serial(); after == before {
		t.Fatalf("HTTP/3 still serves certificate %s after the reload", before)
	}
}

// TestHTTP3PortTakenRefusesToStart: Alt-Svc names a UDP port only once the
// edge holds it. When another process holds it, the edge does not start
// serving TLS without it (advertising nothing, or a port someone else
// answers): it stops with an error that names the UDP address, and frees
// what it had bound.
func TestHTTP3PortTakenRefusesToStart(t *testing.T) {
	f := newTLSFixture(t)
	o := cachedOrigin(t)
	var err error
	for try := 0; try < 5; try++ {
		udp, lerr := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if lerr != nil {
			t.Fatal(lerr)
		}
		tlsAddr := fmt.Sprintf("127.0.0.1:%d", udp.LocalAddr().(*net.UDPAddr).Port)
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		aln, _ := net.Listen("tcp", "127.0.0.1:0")
		s, nerr := New(Config{Origin: o.URL, Listen: ln.Addr().String(), Admin: aln.Addr().String(), AdminToken: "s3cret",
			TLSListen: tlsAddr, TLSCerts: f.certs}, Options{Listener: ln, AdminListener: aln, Logger: quietLog})
		if nerr != nil {
			t.Fatal(nerr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = s.Run(ctx)
		cancel()
		udp.Close()
		if err != nil && strings.Contains(err.Error(), "tls listen") {
			continue // the TCP port was taken by chance: another port
		}
		if err == nil || !strings.Contains(err.Error(), "http3 listen udp "+tlsAddr) {
			t.Fatalf("edge with its UDP port taken: Run = %v, want an error naming udp %s", err, tlsAddr)
		}
		// The TLS port it had bound is free again.
		l, lerr := net.Listen("tcp", tlsAddr)
		if lerr != nil {
			t.Fatalf("the edge left %s bound: %v", tlsAddr, lerr)
		}
		l.Close()
		return
	}
	t.Fatalf("no free TCP port beside a UDP one in 5 tries: %v", err)
}
