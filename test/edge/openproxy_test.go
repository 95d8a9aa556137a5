package edge_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

// trap is a loopback server that counts every connection made to it: the
// edge must never contact it.
func trap(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, "EVIL")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			n.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &n
}

// TestNeverOpenProxy checks issue 2 point 9: absolute-form requests to other
// hosts, CONNECT, unknown Hosts, request smuggling, oversized headers and
// garbage are refused, nothing but our origin is contacted, and the process
// survives all of it.
func TestNeverOpenProxy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprintf(w, "origin %s", r.URL.Path)
	})
	evil, evilConns := trap(t)
	proxyTrap, proxyConns := trap(t)
	// Were the edge to honour proxy variables, everything would go here.
	proxyEnv := []string{"HTTP_PROXY=" + proxyTrap.URL, "http_proxy=" + proxyTrap.URL, "HTTPS_PROXY=" + proxyTrap.URL, "https_proxy=" + proxyTrap.URL, "NO_PROXY=", "no_proxy="}
	open := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Env: proxyEnv})
	named := kubecdn.Start(t, edgetest.Options{Origin: o.URL, Env: proxyEnv, Args: []string{"--hostname", "www.example.com"}})
	evilHost := strings.TrimPrefix(evil.URL, "http://")

	t.Run("absolute-form", func(t *testing.T) {
		cases := []struct {
			name string
			e    *edgetest.Edge
			req  string
			path string // the path our origin sees if the edge serves it
		}{
			{"loopback host, no hostnames", open, "GET " + evil.URL + "/steal HTTP/1.1\r\nHost: " + evilHost + "\r\n\r\n", "/steal"},
			{"name, no hostnames", open, "GET http://evil.example/steal2 HTTP/1.1\r\nHost: evil.example\r\n\r\n", "/steal2"},
			{"name, Host differs", open, "GET http://evil.example/steal3 HTTP/1.1\r\nHost: " + open.Listen + "\r\n\r\n", "/steal3"},
			{"https scheme", open, "GET https://evil.example/steal4 HTTP/1.1\r\nHost: evil.example\r\n\r\n", "/steal4"},
			{"loopback host, hostnames set", named, "GET " + evil.URL + "/steal5 HTTP/1.1\r\nHost: " + evilHost + "\r\n\r\n", ""},
			{"name, hostnames set", named, "GET http://evil.example/steal6 HTTP/1.1\r\nHost: www.example.com\r\n\r\n", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				raw := rawExchange(t, tc.e.Listen, []byte(tc.req), 3*time.Second)
				codes := statuses(raw)
				if len(codes) != 1 {
					t.Fatalf("want one response, got %v: %q", codes, raw)
				}
				switch {
				case codes[0] >= 400 && codes[0] < 500:
				case codes[0] == 200 && tc.path != "" && o.count(tc.path) == 1 && bytes.Contains(raw, []byte("origin "+tc.path)):
					// Served from our own origin: not a proxy to evil.
				default:
					t.Fatalf("status %d (origin saw %q %d times): %q", codes[0], tc.path, o.count(tc.path), raw)
				}
				if bytes.Contains(raw, []byte("EVIL")) {
					t.Fatalf("served the other host's content: %q", raw)
				}
				if tc.e == named && codes[0] != http.StatusMisdirectedRequest {
					t.Errorf("with --hostname set: status %d, want 421", codes[0])
				}
			})
		}
	})

	t.Run("CONNECT", func(t *testing.T) {
		for _, target := range []string{evilHost, "evil.example:443"} {
			raw := rawExchange(t, open.Listen, []byte("CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"), 3*time.Second)
			if codes := statuses(raw); len(codes) != 1 || codes[0] != http.StatusMethodNotAllowed {
				t.Errorf("CONNECT %s: got %v, want [405]: %q", target, codes, raw)
			}
		}
	})

	t.Run("unknown Host", func(t *testing.T) {
		c := newClient()
		if r := get(t, c, named.URL(), "/known", "www.example.com"); r.status != 200 || string(r.body) != "origin /known" {
			t.Fatalf("configured hostname: %d %q", r.status, r.body)
		}
		for _, h := range []string{"other.example", "www.example.com.evil", "127.0.0.1", "evil.example:80"} {
			r := get(t, c, named.URL(), "/unknown", h)
			if r.status != http.StatusMisdirectedRequest {
				t.Errorf("Host %q: status %d, want 421", h, r.status)
			}
			if r.header.Get("Cache-Status") == "" {
				t.Errorf("Host %q: no Cache-Status header", h)
			}
		}
		if n := o.count("/unknown"); n != 0 {
			t.Errorf("origin saw %d requests for an unknown Host", n)
		}
		// A cached object (the fast path for hits) is refused just the same.
		if r := get(t, c, named.URL(), "/known", "www.example.com"); !r.hit() {
			t.Fatalf("/known not cached: %q", r.cacheStatus())
		}
		for _, h := range []string{"other.example", "WWW.EXAMPLE.COM.", "www.example.com:80"} {
			raw := rawExchange(t, named.Listen, []byte("GET /known HTTP/1.1\r\nHost: "+h+"\r\n\r\n"), 2*time.Second)
			codes := statuses(raw)
			want := http.StatusMisdirectedRequest
			if h != "other.example" {
				want = http.StatusOK // the same name, spelled differently
			}
			if len(codes) != 1 || codes[0] != want {
				t.Errorf("cached object, Host %q: %v, want [%d]", h, codes, want)
			}
		}
	})

	t.Run("pipelined", func(t *testing.T) {
		c := newClient()
		get(t, c, open.URL(), "/hot", "")
		if r := get(t, c, open.URL(), "/hot", ""); !r.hit() {
			t.Fatalf("/hot not cached: %q", r.cacheStatus())
		}
		hot := "GET /hot HTTP/1.1\r\nHost: x\r\n\r\n"
		head := "HEAD /hot HTTP/1.1\r\nHost: x\r\n\r\n"
		raw := rawExchange(t, open.Listen, []byte(hot+head+hot+"GET /hot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"+hot), 3*time.Second)
		// ReadResponse cannot tell a HEAD answer has no body: count
		// status lines instead.
		if n := bytes.Count(raw, []byte("HTTP/1.1 200 OK\r\n")); n != 4 {
			t.Errorf("4 pipelined requests up to Connection: close: %d answers: %q", n, raw)
		}
		if n := bytes.Count(raw, []byte("origin /hot")); n != 3 {
			t.Errorf("3 GET bodies expected, got %d", n)
		}
		// A hit first (the fast path), then a smuggling attempt on the same
		// connection, handed over mid-connection.
		raw = rawExchange(t, open.Listen, []byte(hot+"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\nGET /smuggled/p1 HTTP/1.1\r\nHost: x\r\n\r\n"), 3*time.Second)
		if codes := statuses(raw); len(codes) != 2 || codes[0] != 200 || codes[1] != http.StatusBadRequest {
			t.Errorf("hit then two Content-Length: %v, want [200 400]", codes)
		}
		time.Sleep(20 * time.Millisecond)
		if n := o.count("/smuggled/p1"); n != 0 {
			t.Errorf("origin saw the smuggled request after a pipelined hit")
		}
	})

	t.Run("smuggling", func(t *testing.T) {
		// Each case's smuggled request names its own path, so a cached answer
		// to an earlier case cannot hide that the origin was asked.
		smuggled := "GET /smuggled/{case} HTTP/1.1\r\nHost: x\r\n\r\n"
		cases := []struct {
			name string
			req  string
		}{
			{"CL and TE", "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
			{"TE and CL", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\n0\r\n\r\n" + smuggled},
			{"GET with CL and TE", "GET /cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled},
			{"two Content-Length", "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 38\r\n\r\n" + smuggled},
			{"Content-Length list", "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 38\r\n\r\n" + smuggled},
			{"negative Content-Length", "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + smuggled},
			{"obs-fold", "GET /fold HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n" + smuggled},
			{"obs-fold Transfer-Encoding", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled},
			{"bare LF", "GET /lf HTTP/1.1\nHost: x\nX-A: b\n\n" + smuggled},
			{"bare LF in chunked body", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n" + smuggled},
			{"invalid chunk size", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + smuggled},
			{"overflowing chunk size", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffffff1\r\nhello\r\n0\r\n\r\n" + smuggled},
			{"chunk size with junk", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n" + smuggled},
			{"TE not chunked (501 allowed)", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled},
			{"space before colon", "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := strings.ReplaceAll(tc.req, "{case}", fmt.Sprint(i))
				raw := rawExchange(t, open.Listen, []byte(req), 3*time.Second)
				codes := statuses(raw)
				// RFC 9112 §6.1: an unknown transfer coding may get 501.
				ok501 := strings.Contains(tc.name, "501") && len(codes) > 0 && codes[0] == http.StatusNotImplemented
				if (len(codes) == 0 || codes[0] != http.StatusBadRequest) && !ok501 {
					t.Errorf("got statuses %v, want 400 first: %q", codes, first(raw, 300))
				}
				if len(codes) > 1 {
					t.Errorf("answered a second (smuggled) request on the connection: %v", codes)
				}
				time.Sleep(20 * time.Millisecond)
				if n := o.count(fmt.Sprintf("/smuggled/%d", i)); n != 0 {
					t.Errorf("origin saw the smuggled request %d times", n)
				}
			})
		}
	})

	t.Run("oversized headers", func(t *testing.T) {
		cases := []struct {
			name string
			req  string
		}{
			{"one 40 KiB header", "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 40<<10) + "\r\n\r\n"},
			{"2000 small headers", "GET /big HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Many: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 2000) + "\r\n"},
			{"1 MiB header", "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				raw := rawExchange(t, open.Listen, []byte(tc.req), 3*time.Second)
				if codes := statuses(raw); len(codes) != 1 || codes[0] != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("got %v, want [431]: %q", codes, first(raw, 200))
				}
			})
		}
		if n := o.count("/big"); n != 0 {
			t.Errorf("origin saw %d oversized requests", n)
		}
	})

	t.Run("garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		inputs := [][]byte{
			[]byte("\x00\x01\x02\x03\r\n\r\n"),
			[]byte("GET\r\n\r\n"),
			[]byte("GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
			[]byte("GET / HTTP/1.1\r\n\r\n"), // no Host
			[]byte("G\x7fT / HTTP/1.1\r\nHost: x\r\n\r\n"),
			[]byte("GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
			[]byte("GET / HTTP/1.1\r\nHost: x\r\nBad\x00Name: y\r\n\r\n"),
			[]byte("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
			[]byte("GET * HTTP/1.1\r\nHost: x\r\n\r\n"),
			[]byte("GET //evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n"),
			[]byte("GET " + strings.Repeat("/a", 50<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n"),
			[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
			[]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), // a TLS ClientHello's start
		}
		for range 20 {
			b := make([]byte, 1+rng.IntN(2000))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			inputs = append(inputs, b)
		}
		for i, in := range inputs {
			raw := rawGarbage(t, open.Listen, in)
			for _, code := range statuses(raw) {
				// Some of these are legal enough to be served from our
				// origin (GET *, GET //x): anything but a 5xx crash page.
				if code >= 500 && code != http.StatusHTTPVersionNotSupported && code != http.StatusNotImplemented {
					t.Errorf("input %d (%q): status %d", i, first(in, 40), code)
				}
			}
			if !open.Alive() {
				t.Fatalf("edge died on input %d (%q): %v", i, first(in, 40), open.Err())
			}
		}
	})

	// A request half-sent and abandoned must not hurt either.
	t.Run("abandoned", func(t *testing.T) {
		for range 20 {
			c, err := net.Dial("tcp", open.Listen)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(c, "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
			c.Close()
		}
	})

	open.MustBeHealthy(t)
	named.MustBeHealthy(t)
	time.Sleep(50 * time.Millisecond)
	if n := evilConns.Load(); n != 0 {
		t.Errorf("the other host was contacted %d times", n)
	}
	if n := proxyConns.Load(); n != 0 {
		t.Errorf("the proxy from the environment was contacted %d times", n)
	}
}

// rawGarbage writes in, half-closes the connection (the client has nothing
// more to say) and reads what comes back until the server closes.
func rawGarbage(t *testing.T, addr string, in []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = c.Write(in)
	_ = c.(*net.TCPConn).CloseWrite()
	var out bytes.Buffer
	var ne net.Error
	if _, err := out.ReadFrom(c); errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("input %q: the server neither answered nor closed within 3 s of the client's EOF: %v", first(in, 40), err)
	}
	return out.Bytes()
}

func first(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
