package edge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/accesslog"
)

// loggedEdge starts an edge whose access log goes to a file; lines reads
// what it has logged so far.
func loggedEdge(t *testing.T, cfg Config) (e *testEdge, lines func() []map[string]any) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.log")
	cfg.AccessLog, cfg.Region = path, "test-region"
	e = startEdge(t, cfg)
	return e, func() []map[string]any {
		t.Helper()
		e.alog.Flush()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("access log line %q is not JSON: %v", sc.Bytes(), err)
			}
			out = append(out, m)
		}
		return out
	}
}

// findLine returns the one line whose user agent is ua.
func findLine(t *testing.T, lines []map[string]any, ua string) map[string]any {
	t.Helper()
	var found map[string]any
	for _, l := range lines {
		if l["user_agent"] == ua {
			if found != nil {
				t.Fatalf("two lines with user agent %q: %v and %v", ua, found, l)
			}
			found = l
		}
	}
	if found == nil {
		t.Fatalf("no line with user agent %q in %v", ua, lines)
	}
	return found
}

// checkLine compares a line with what the client saw.
func checkLine(t *testing.T, l map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if got := l[k]; got != w {
			t.Errorf("%s = %#v, want %#v (line %v)", k, got, w, l)
		}
	}
	for _, k := range []string{"time", "edge", "client", "duration_ms", "ttfb_ms"} {
		if _, ok := l[k]; !ok {
			t.Errorf("no %s in %v", k, l)
		}
	}
	if tm, err := time.Parse(time.RFC3339Nano, l["time"].(string)); err != nil || time.Since(tm) > time.Minute {
		t.Errorf("time %v: %v", l["time"], err)
	}
}

// hostileUA is a user agent with quotes, a backslash, JSON of its own and
// bytes that are not UTF-8; net/http and the fast path both let it through.
const hostileUA = "ua \"quoted\" \\ \"},{\"status\":1 \xff\xfe"

// rawExchange sends req on a new connection and reads the response.
func rawExchange(t *testing.T, e *testEdge, req string) (*http.Response, string) {
	t.Helper()
	_, br := rawGet(t, e, req)
	method := strings.Fields(req)[0]
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	return resp, body.String()
}

// TestAccessLogTiers: a request on each serving tier is logged with what
// its client saw: status, bytes, Cache-Status, protocol, and its header
// values, hostile ones included, as valid JSON.
func TestAccessLogTiers(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			origin, _ := uringOrigin(t)
			e, lines := loggedEdge(t, Config{Origin: origin, IOUring: mode})
			if mode == IOUringAuto && e.uring.Load() == nil {
				t.Skip("io_uring is not available here")
			}
			// A miss: net/http's way, which goes upstream.
			resp, body := rawExchange(t, e, "GET /obj?x=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: miss\r\nCache-Control: no-cache\r\n\r\n")
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=") {
				t.Fatalf("miss: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
			}
			// A hit the fast tier answers (the loop with io_uring, else
			// the goroutine fast path), with hostile header values.
			hit := "GET /obj?x=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: " + hostileUA + "\r\nReferer: https://r.example/\xe2\x80\xa8\r\n\r\n"
			hresp, hbody := rawExchange(t, e, hit)
			if cs := hresp.Header.Get("Cache-Status"); hresp.StatusCode != 200 || !strings.Contains(cs, "hit") {
				t.Fatalf("hit: %d %q", hresp.StatusCode, cs)
			}
			// A range: the fast tiers hand it to net/http.
			rresp, rbody := rawExchange(t, e, "GET /obj?x=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: range\r\nRange: bytes=1-3\r\n\r\n")
			if rresp.StatusCode != http.StatusPartialContent {
				t.Fatalf("range: %d", rresp.StatusCode)
			}
			// A HEAD on the fast tier: no body bytes.
			rawExchange(t, e, "HEAD /obj?x=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: head\r\n\r\n")

			var ls []map[string]any
			for deadline := time.Now().Add(5 * time.Second); len(ls) < 4 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				ls = lines()
			}
			common := map[string]any{"method": "GET", "host": "www.example.com", "url": "/obj?x=1", "protocol": "HTTP/1.1", "region": "test-region", "client": "127.0.0.1"}
			with := func(m map[string]any) map[string]any {
				out := map[string]any{}
				for k, v := range common {
					out[k] = v
				}
				for k, v := range m {
					out[k] = v
				}
				return out
			}
			miss := findLine(t, ls, "miss")
			checkLine(t, miss, with(map[string]any{"status": 200.0, "bytes": float64(len(body)), "cache": "miss", "upstream_status": 200.0}))
			if ms, _ := miss["upstream_ms"].(float64); ms <= 0 {
				t.Errorf("miss: upstream_ms %v, want > 0", miss["upstream_ms"])
			}
			h := findLine(t, ls, strings.ToValidUTF8(hostileUA, "\ufffd\ufffd"))
			checkLine(t, h, with(map[string]any{"status": 200.0, "bytes": float64(len(hbody)), "cache": "hit", "referer": "https://r.example/\u2028"}))
			if _, ok := h["upstream_status"]; ok {
				t.Errorf("hit: upstream_status %v", h["upstream_status"])
			}
			checkLine(t, findLine(t, ls, "range"), with(map[string]any{"status": 206.0, "bytes": float64(len(rbody)), "cache": "hit", "user_agent": "range"}))
			checkLine(t, findLine(t, ls, "head"), with(map[string]any{"method": "HEAD", "status": 200.0, "bytes": 0.0, "cache": "hit"}))
		})
	}
}

// TestAccessLogHTTP2: the HTTPS tier (HTTP/2 to net/http) logs the
// protocol and TLS version; the health path is not logged.
func TestAccessLogHTTP2(t *testing.T) {
	f := newTLSFixture(t)
	e, lines := loggedEdge(t, Config{Origin: cachedOrigin(t).URL, TLSListen: "127.0.0.1:0", TLSCerts: f.certs})
	c := f.client("www.example.com", true)
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, "https://"+e.TLSAddr().String()+"/h2", nil)
		req.Host = "www.example.com"
		req.Header.Set("User-Agent", "h2-"+strconv.Itoa(i))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get(t, e.url+HealthPath)
	ls := lines()
	checkLine(t, findLine(t, ls, "h2-0"), map[string]any{"protocol": "HTTP/2", "tls": "TLSv1.3", "status": 200.0, "cache": "miss", "bytes": float64(len("body of /h2"))})
	checkLine(t, findLine(t, ls, "h2-1"), map[string]any{"protocol": "HTTP/2", "tls": "TLSv1.3", "status": 200.0, "cache": "hit"})
	for _, l := range ls {
		if l["url"] == HealthPath {
			t.Errorf("health probe logged: %v", l)
		}
	}
}

func TestCacheOutcome(t *testing.T) {
	for _, c := range []struct {
		cs     string
		status int
		want   string
	}{
		{"kubecdn; hit; ttl=30", 200, accesslog.Hit},
		{"kubecdn; hit; ttl=-3; detail=stale-while-revalidate", 200, accesslog.Stale},
		{"kubecdn; fwd=uri-miss; fwd-status=200; ttl=300; stored", 200, accesslog.Miss},
		{"kubecdn; fwd=uri-miss; fwd-status=200; collapsed", 200, accesslog.Miss},
		{"kubecdn; fwd=stale; fwd-status=200; ttl=300; stored", 200, accesslog.Miss},
		{"kubecdn; fwd=stale; fwd-status=304; ttl=300; detail=revalidated", 200, accesslog.Revalidated},
		{"kubecdn; fwd=stale; fwd-status=502; ttl=-5; detail=stale-if-error", 200, accesslog.Stale},
		{"kubecdn; fwd=stale; ttl=-5; detail=upstream-slow", 200, accesslog.Stale},
		{`kubecdn; fwd=uri-miss; detail="upstream unreachable"`, 502, accesslog.Error},
		{"kubecdn; fwd=miss; detail=only-if-cached", 504, accesslog.Error},
		{`kubecdn; fwd=bypass; detail="unknown host"`, 421, accesslog.Refused},
		{"kubecdn; fwd=bypass; fwd-status=201", 201, accesslog.Pass},
		{"kubecdn; fwd=bypass; fwd-status=503", 503, accesslog.Pass},
		{"", 308, accesslog.Pass},
		{"", 404, accesslog.Error},
	} {
		if got := cacheOutcome(c.cs, c.status); got != c.want {
			t.Errorf("cacheOutcome(%q, %d) = %s, want %s", c.cs, c.status, got, c.want)
		}
	}
}
