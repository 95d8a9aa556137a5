package edge

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// TestAgeParsedAndCapped: an upstream Age is read by the rules of RFC 9111
// §5.1 (a list by its first member, an invalid value ignored), and the Age
// the edge sends is never above httpcache.MaxSentAge, on the miss, on the
// fast path's hit and on net/http's hit (a Keep-Alive field sends a request
// that way), with io_uring on and off.
func TestAgeParsedAndCapped(t *testing.T) {
	ages := map[string][2]string{ // path: Age, Cache-Control
		"/list":   {"100, 7200", "max-age=3600"},
		"/lines":  {"100\n7200", "max-age=3600"},
		"/float":  {"7200.0", "max-age=3600"},
		"/old":    {"40000000", "max-age=2147483648"}, // fresh, older than a year
		"/absurd": {"2147483648", "max-age=60"},       // stale, 68 years old
	}
	capped := strconv.FormatInt(int64(httpcache.MaxSentAge.Seconds()), 10)
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				a := ages[r.URL.Path]
				w.Header()["Age"] = strings.Split(a[0], "\n")
				w.Header().Set("Cache-Control", a[1])
				w.Write([]byte("body"))
			})
			e := startEdge(t, Config{Origin: origin.URL, IOUring: mode})
			ageOf := func(path string, hdr ...string) (int, string) {
				t.Helper()
				resp, body := get(t, e.url+path, append([]string{"Host", "h"}, hdr...)...)
				if resp.StatusCode != 200 || body != "body" {
					t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
				}
				n, err := strconv.Atoi(resp.Header.Get("Age"))
				if err != nil || len(resp.Header["Age"]) != 1 {
					t.Fatalf("%s: Age %q", path, resp.Header["Age"])
				}
				return n, resp.Header.Get("Cache-Status")
			}
			for _, p := range []string{"/list", "/lines"} {
				primeHit(t, e, p) // fresh: its age is 100, not 7200
				for _, kv := range [][]string{nil, {"Keep-Alive", "timeout=5"}} {
					if n, cs := ageOf(p, kv...); n < 100 || n > 160 || !strings.Contains(cs, "hit") {
						t.Errorf("%s %v: Age %d, %s; want a hit aged about 100 s", p, kv, n, cs)
					}
				}
			}
			primeHit(t, e, "/float") // the invalid Age is ignored
			if n, _ := ageOf("/float"); n > 60 {
				t.Errorf("/float: Age %d, want the edge's own small age", n)
			}
			for i, kv := range [][]string{nil, nil, {"Keep-Alive", "timeout=5"}} {
				n, cs := ageOf("/old", kv...)
				if strconv.Itoa(n) != capped || (i > 0 && !strings.Contains(cs, "hit")) {
					t.Errorf("/old #%d: Age %d, %s; want %s from a hit", i, n, cs, capped)
				}
			}
			for i := range 2 {
				if n, cs := ageOf("/absurd"); strconv.Itoa(n) != capped || strings.Contains(cs, "hit") {
					t.Errorf("/absurd #%d: Age %d, %s; want %s, never a hit", i, n, cs, capped)
				}
			}
		})
	}
}
