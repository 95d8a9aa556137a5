package httpcache

import (
	"net/http"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return t.Format(http.TimeFormat) }

func TestStorable(t *testing.T) {
	auth := hdr("Authorization", "Bearer x")
	tests := []struct {
		name   string
		method string
		req    http.Header
		status int
		resp   http.Header
		want   bool
	}{
		{"200 with max-age", "GET", nil, 200, hdr("Cache-Control", "max-age=60"), true},
		{"200 without directives is heuristically cacheable §4.2.2", "GET", nil, 200, hdr(), true},
		{"HEAD is not stored", "HEAD", nil, 200, hdr("Cache-Control", "max-age=60"), false},
		{"POST is not stored", "POST", nil, 200, hdr("Cache-Control", "max-age=60"), false},
		{"1xx is not final §3", "GET", nil, 103, hdr("Cache-Control", "max-age=60"), false},
		{"206 is left to the edge", "GET", nil, 206, hdr("Cache-Control", "max-age=60"), false},
		{"304 is not stored", "GET", nil, 304, hdr("Cache-Control", "max-age=60"), false},
		{"response no-store §5.2.2.5", "GET", nil, 200, hdr("Cache-Control", "max-age=60, no-store"), false},
		{"request no-store §5.2.1.5", "GET", hdr("Cache-Control", "no-store"), 200, hdr("Cache-Control", "max-age=60"), false},
		{"private §5.2.2.7", "GET", nil, 200, hdr("Cache-Control", "private, max-age=60"), false},
		{"qualified private is storable §5.2.2.7", "GET", nil, 200, hdr("Cache-Control", `private="X-User", max-age=60`), true},
		{"qualified and unqualified private", "GET", nil, 200, hdr("Cache-Control", `private="X-User", private, max-age=60`), false},
		{"no-cache is storable §5.2.2.4", "GET", nil, 200, hdr("Cache-Control", "no-cache"), true},
		{"Vary: * §4.1", "GET", nil, 200, hdr("Cache-Control", "max-age=60", "Vary", "Accept, *"), false},
		{"Vary names are fine", "GET", nil, 200, hdr("Cache-Control", "max-age=60", "Vary", "Accept"), true},
		{"Authorization without permission §3.5", "GET", auth, 200, hdr("Cache-Control", "max-age=60"), false},
		{"Authorization with public §3.5", "GET", auth, 200, hdr("Cache-Control", "public, max-age=60"), true},
		{"Authorization with s-maxage §3.5", "GET", auth, 200, hdr("Cache-Control", "s-maxage=60"), true},
		{"Authorization with must-revalidate §3.5", "GET", auth, 200, hdr("Cache-Control", "must-revalidate, max-age=60"), true},
		{"302 without freshness §3", "GET", nil, 302, hdr(), false},
		{"302 with max-age", "GET", nil, 302, hdr("Cache-Control", "max-age=60"), true},
		{"307 with Expires", "GET", nil, 307, hdr("Expires", httpDate(t0.Add(time.Hour))), true},
		{"307 with invalid Expires is stored, stale", "GET", nil, 307, hdr("Expires", "0"), true},
		{"500 with s-maxage", "GET", nil, 500, hdr("Cache-Control", "s-maxage=5"), true},
		{"500 with public", "GET", nil, 500, hdr("Cache-Control", "public"), true},
		{"500 without freshness", "GET", nil, 500, hdr(), false},
		{"599 unknown with max-age", "GET", nil, 599, hdr("Cache-Control", "max-age=60"), true},
		{"404 heuristically cacheable", "GET", nil, 404, hdr(), true},
		{"410 heuristically cacheable", "GET", nil, 410, hdr(), true},
		{"451 cacheable by default (RFC 7725)", "GET", nil, 451, hdr(), true},
		{"must-understand ignores no-store for understood status §5.2.2.3", "GET", nil, 200, hdr("Cache-Control", "must-understand, no-store, max-age=60"), true},
		{"must-understand with unknown status §5.2.2.3", "GET", nil, 299, hdr("Cache-Control", "must-understand, no-store, max-age=60"), false},
		{"CDN-Cache-Control max-age overrides CC no-store (RFC 9213)", "GET", nil, 200, hdr("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=60"), true},
		{"CDN-Cache-Control no-store (RFC 9213)", "GET", nil, 200, hdr("Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"), false},
		{"CDN-Cache-Control private", "GET", nil, 200, hdr("Cache-Control", "max-age=60", "CDN-Cache-Control", "private"), false},
		{"invalid CDN-Cache-Control is ignored (RFC 9213 §2.1)", "GET", nil, 200, hdr("Cache-Control", "no-store", "CDN-Cache-Control", "max-age=10000, &&&&&"), false},
		{"CDN-Cache-Control with a string max-age is ignored", "GET", nil, 200, hdr("Cache-Control", "no-store", "CDN-Cache-Control", `max-age="10000"`), false},
		{"Surrogate-Control no-store", "GET", nil, 200, hdr("Cache-Control", "max-age=10000", "Surrogate-Control", "no-store"), false},
		{"Surrogate-Control max-age for a 302", "GET", nil, 302, hdr("Surrogate-Control", "max-age=60"), true},
		{"targeted field replaces Expires", "GET", nil, 302, hdr("Surrogate-Control", "foo", "Expires", httpDate(t0)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Storable(tt.method, tt.req, tt.status, tt.resp); got != tt.want {
				t.Errorf("Storable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	date := httpDate(t0)
	tests := []struct {
		name    string
		status  int
		h       http.Header
		max     time.Duration
		want    time.Duration
		wantHeu bool
	}{
		{"max-age §5.2.2.1", 200, hdr("Cache-Control", "max-age=60"), 0, time.Minute, false},
		{"s-maxage wins over max-age §5.2.2.10", 200, hdr("Cache-Control", "max-age=60, s-maxage=10"), 0, 10 * time.Second, false},
		{"max-age wins over Expires §4.2.1", 200, hdr("Cache-Control", "max-age=60", "Date", date, "Expires", httpDate(t0.Add(time.Hour))), 0, time.Minute, false},
		{"Expires minus Date §4.2.1", 200, hdr("Date", date, "Expires", httpDate(t0.Add(time.Hour))), 0, time.Hour, false},
		{"Expires minus response time without Date", 200, hdr("Expires", httpDate(t0.Add(30*time.Minute))), 0, 30 * time.Minute, false},
		{"Expires in the past", 200, hdr("Date", date, "Expires", httpDate(t0.Add(-time.Hour))), 0, 0, false},
		{"invalid Expires is expired §5.3", 200, hdr("Date", date, "Expires", "0", "Last-Modified", httpDate(t0.Add(-100*time.Hour))), 0, 0, false},
		{"obsolete date format §5.6.7", 200, hdr("Date", "Saturday, 01-Mar-25 12:00:00 GMT", "Expires", "Sat Mar  1 13:00:00 2025"), 0, time.Hour, false},
		{"two Expires lines are invalid §5.3", 200, hdr("Date", date, "Expires", httpDate(t0.Add(time.Hour)), "Expires", httpDate(t0.Add(time.Hour))), 0, 0, false},
		{"Expires with a one-digit hour is invalid §5.3", 200, hdr("Date", date, "Expires", "Thu, 18 Aug 2050 2:01:18 GMT"), 0, 0, false},
		{"Expires with doubled spaces is invalid §5.3", 200, hdr("Date", date, "Expires", "Thu, 18  Aug  2050 02:01:18 GMT"), 0, 0, false},
		{"Expires in UTC is invalid §5.3", 200, hdr("Date", date, "Expires", "Thu, 18 Aug 2050 02:01:18 UTC"), 0, 0, false},
		{"Expires in lower case is invalid §5.3", 200, hdr("Date", date, "Expires", "Thu, 18 aug 2050 02:01:18 GMT"), 0, 0, false},
		{"invalid Expires ignores a heuristic", 200, hdr("Date", date, "Expires", "Thu, 18-Aug-2050 02:01:18 GMT", "Last-Modified", httpDate(t0.Add(-100*time.Hour))), 0, 0, false},
		{"invalid Date falls back to the response time", 200, hdr("Date", "Sat,  1 Mar 2025 11:00:00 GMT", "Expires", httpDate(t0.Add(time.Minute))), 0, time.Minute, false},
		{"conflicting max-age is stale §4.2.1", 200, hdr("Cache-Control", "max-age=1800, max-age=1"), 0, 0, false},
		{"invalid max-age is stale", 200, hdr("Cache-Control", "max-age=3600a", "Last-Modified", httpDate(t0.Add(-100*time.Hour))), 0, 0, false},
		{"clamped max-age §1.2.2", 200, hdr("Cache-Control", "max-age=99999999999"), 0, 2147483648 * time.Second, false},
		{"heuristic 10% §4.2.2", 200, hdr("Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), 0, time.Hour, true},
		{"heuristic capped", 200, hdr("Date", date, "Last-Modified", httpDate(t0.Add(-1000*time.Hour))), 2 * time.Hour, 2 * time.Hour, true},
		{"heuristic default cap 24h", 200, hdr("Date", date, "Last-Modified", httpDate(t0.Add(-10000*time.Hour))), 0, 24 * time.Hour, true},
		{"heuristic disabled by negative cap", 200, hdr("Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), -1, 0, false},
		{"heuristic without Last-Modified", 200, hdr("Date", date), 0, 0, false},
		{"no heuristic for 302", 302, hdr("Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), 0, 0, false},
		{"heuristic for public 302", 302, hdr("Cache-Control", "public", "Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), 0, time.Hour, true},
		{"Last-Modified in the future", 200, hdr("Date", date, "Last-Modified", httpDate(t0.Add(time.Hour))), 0, 0, true},
		{"CDN-Cache-Control replaces Cache-Control (RFC 9213)", 200, hdr("Cache-Control", "max-age=3600", "CDN-Cache-Control", "max-age=1"), 0, time.Second, false},
		{"CDN-Cache-Control replaces Expires", 200, hdr("CDN-Cache-Control", "max-age=3600", "Date", date, "Expires", "0"), 0, time.Hour, false},
		{"CDN-Cache-Control without max-age falls to heuristic", 200, hdr("CDN-Cache-Control", "public", "Cache-Control", "max-age=5", "Date", date, "Last-Modified", httpDate(t0.Add(-10*time.Hour))), 0, time.Hour, true},
		{"CDN-Cache-Control beats Surrogate-Control", 200, hdr("CDN-Cache-Control", "max-age=5", "Surrogate-Control", "max-age=50"), 0, 5 * time.Second, false},
		{"Surrogate-Control max-age beats s-maxage", 200, hdr("Cache-Control", "s-maxage=3600", "Surrogate-Control", "max-age=1"), 0, time.Second, false},
		{"Surrogate-Control max-age=N+M", 200, hdr("Surrogate-Control", "max-age=60+30"), 0, time.Minute, false},
		{"Surrogate-Control content= only is not targeted", 200, hdr("Surrogate-Control", `content="ESI/1.0"`, "Cache-Control", "max-age=7"), 0, 7 * time.Second, false},
		{"invalid Surrogate-Control element ignored", 200, hdr("Cache-Control", "max-age=1", "Surrogate-Control", "max-age =100"), 0, time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, heu := Lifetime(tt.status, tt.h, t0, tt.max)
			if got != tt.want || heu != tt.wantHeu {
				t.Errorf("Lifetime = %v, %v; want %v, %v", got, heu, tt.want, tt.wantHeu)
			}
		})
	}
}

func TestCurrentAge(t *testing.T) {
	req, resp := t0.Add(-2*time.Second), t0
	tests := []struct {
		name string
		h    http.Header
		now  time.Time
		want time.Duration
	}{
		{"no Age, no Date: delay plus resident", hdr(), t0.Add(10 * time.Second), 12 * time.Second},
		{"Age plus delay §4.2.3", hdr("Age", "100", "Date", httpDate(t0)), t0.Add(10 * time.Second), 112 * time.Second},
		{"apparent age wins", hdr("Date", httpDate(t0.Add(-time.Minute))), t0, time.Minute},
		{"Date in the future gives apparent 0", hdr("Date", httpDate(t0.Add(time.Hour))), t0, 2 * time.Second},
		{"non-numeric Age is ignored §5.1", hdr("Age", "abc"), t0, 2 * time.Second},
		{"negative Age is ignored §5.1", hdr("Age", "-7200"), t0, 2 * time.Second},
		{"float Age is ignored §5.1", hdr("Age", "7200.0"), t0, 2 * time.Second},
		{"Age with a parameter is ignored §5.1", hdr("Age", "7200;foo=1"), t0, 2 * time.Second},
		{"Age list is read by its first member §5.1", hdr("Age", "100, 7200"), t0, 102 * time.Second},
		{"old first member of an Age list counts §5.1", hdr("Age", "7200,0"), t0, 7202 * time.Second},
		{"two Age lines: the first counts §5.1", hdr("Age", "0", "Age", "7200"), t0, 2 * time.Second},
		{"invalid first member of an Age list: ignored §5.1", hdr("Age", "x, 7200"), t0, 2 * time.Second},
		{"huge Age clamped §1.2.2", hdr("Age", "99999999999999"), t0, 2147483648*time.Second + 2*time.Second},
		{"now before response time", hdr(), t0.Add(-time.Hour), 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CurrentAge(tt.h, req, resp, tt.now); got != tt.want {
				t.Errorf("CurrentAge = %v, want %v", got, tt.want)
			}
		})
	}
}

func stored(h http.Header) Stored {
	return Stored{Status: 200, Header: h, RequestTime: t0, ResponseTime: t0}
}

func TestDecide(t *testing.T) {
	type tc struct {
		name    string
		req     http.Header
		s       Stored
		after   time.Duration
		want    Decision
		wantTTL time.Duration
	}
	fresh := hdr("Cache-Control", "max-age=100")
	inv := stored(fresh)
	inv.Invalidated = true
	tests := []tc{
		{"fresh §4.2", nil, stored(fresh), 10 * time.Second, Fresh, 90 * time.Second},
		{"stale §4.2", nil, stored(fresh), 101 * time.Second, Revalidate, -time.Second},
		{"exactly expired is stale", nil, stored(fresh), 100 * time.Second, Revalidate, 0},
		{"Age counts §4.2.3", nil, stored(hdr("Cache-Control", "max-age=100", "Age", "95")), 10 * time.Second, Revalidate, -5 * time.Second},
		{"response no-cache §5.2.2.4", nil, stored(hdr("Cache-Control", "max-age=100, no-cache")), 0, Revalidate, 100 * time.Second},
		{"qualified no-cache does not force revalidation", nil, stored(hdr("Cache-Control", `max-age=100, no-cache="X-A"`)), 0, Fresh, 100 * time.Second},
		{"request no-cache §5.2.1.4", hdr("Cache-Control", "no-cache"), stored(fresh), 0, Revalidate, 100 * time.Second},
		{"Pragma no-cache without Cache-Control §5.4", hdr("Pragma", "no-cache"), stored(fresh), 0, Revalidate, 100 * time.Second},
		{"Pragma ignored with Cache-Control §5.4", hdr("Pragma", "no-cache", "Cache-Control", "max-stale"), stored(fresh), 0, Fresh, 100 * time.Second},
		{"request max-age exceeded §5.2.1.1", hdr("Cache-Control", "max-age=5"), stored(fresh), 10 * time.Second, Revalidate, 90 * time.Second},
		{"request max-age satisfied", hdr("Cache-Control", "max-age=50"), stored(fresh), 10 * time.Second, Fresh, 90 * time.Second},
		{"request max-age=0", hdr("Cache-Control", "max-age=0"), stored(fresh), 0, Revalidate, 100 * time.Second},
		{"invalid request max-age ignored", hdr("Cache-Control", "max-age=x"), stored(fresh), 10 * time.Second, Fresh, 90 * time.Second},
		{"min-fresh unmet §5.2.1.3", hdr("Cache-Control", "min-fresh=95"), stored(fresh), 10 * time.Second, Revalidate, 90 * time.Second},
		{"min-fresh met", hdr("Cache-Control", "min-fresh=30"), stored(fresh), 10 * time.Second, Fresh, 90 * time.Second},
		{"max-stale without value §5.2.1.2", hdr("Cache-Control", "max-stale"), stored(fresh), time.Hour, Fresh, 100*time.Second - time.Hour},
		{"max-stale within", hdr("Cache-Control", "max-stale=60"), stored(fresh), 150 * time.Second, Fresh, -50 * time.Second},
		{"max-stale exceeded", hdr("Cache-Control", "max-stale=60"), stored(fresh), 170 * time.Second, Revalidate, -70 * time.Second},
		{"max-stale vs must-revalidate §5.2.2.2", hdr("Cache-Control", "max-stale"), stored(hdr("Cache-Control", "max-age=100, must-revalidate")), 150 * time.Second, Revalidate, -50 * time.Second},
		{"max-stale vs proxy-revalidate §5.2.2.8", hdr("Cache-Control", "max-stale"), stored(hdr("Cache-Control", "max-age=100, proxy-revalidate")), 150 * time.Second, Revalidate, -50 * time.Second},
		{"max-stale vs s-maxage §5.2.2.10", hdr("Cache-Control", "max-stale"), stored(hdr("Cache-Control", "s-maxage=100")), 150 * time.Second, Revalidate, -50 * time.Second},
		{"stale-while-revalidate within (RFC 5861 §3)", nil, stored(hdr("Cache-Control", "max-age=100, stale-while-revalidate=60")), 150 * time.Second, ServeStale, -50 * time.Second},
		{"stale-while-revalidate exceeded", nil, stored(hdr("Cache-Control", "max-age=100, stale-while-revalidate=60")), 161 * time.Second, Revalidate, -61 * time.Second},
		{"stale-while-revalidate with s-maxage", nil, stored(hdr("Cache-Control", "s-maxage=100, stale-while-revalidate=60")), 150 * time.Second, ServeStale, -50 * time.Second},
		{"stale-while-revalidate vs must-revalidate", nil, stored(hdr("Cache-Control", "max-age=100, must-revalidate, stale-while-revalidate=60")), 150 * time.Second, Revalidate, -50 * time.Second},
		{"stale-while-revalidate vs no-cache", nil, stored(hdr("Cache-Control", "max-age=100, no-cache, stale-while-revalidate=60")), 150 * time.Second, Revalidate, -50 * time.Second},
		{"stale-while-revalidate vs request max-age", hdr("Cache-Control", "max-age=120"), stored(hdr("Cache-Control", "max-age=100, stale-while-revalidate=60")), 150 * time.Second, Revalidate, -50 * time.Second},
		{"invalidated is stale", nil, inv, time.Second, Revalidate, 0},
		{"invalidated with swr serves stale", nil, Stored{Status: 200, Header: hdr("Cache-Control", "max-age=100, stale-while-revalidate=5"), RequestTime: t0, ResponseTime: t0, Invalidated: true}, time.Second, ServeStale, 0},
		{"Authorization without permission §3.5", hdr("Authorization", "x"), stored(fresh), 0, Revalidate, 100 * time.Second},
		{"Authorization with public §3.5", hdr("Authorization", "x"), stored(hdr("Cache-Control", "public, max-age=100")), 0, Fresh, 100 * time.Second},
		{"CDN-Cache-Control no-cache (RFC 9213)", nil, stored(hdr("CDN-Cache-Control", "no-cache", "Cache-Control", "max-age=10000")), 0, Revalidate, 0},
		{"CDN-Cache-Control must-revalidate", nil, stored(hdr("CDN-Cache-Control", "max-age=10, must-revalidate, stale-while-revalidate=60", "Cache-Control", "max-age=10000")), 20 * time.Second, Revalidate, -10 * time.Second},
		{"Surrogate-Control beats CC no-cache", nil, stored(hdr("Surrogate-Control", "max-age=100", "Cache-Control", "no-cache")), 0, Fresh, 100 * time.Second},
		{"heuristic freshness", nil, stored(hdr("Date", httpDate(t0), "Last-Modified", httpDate(t0.Add(-10*time.Hour)))), 30 * time.Minute, Fresh, 30 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, age, ttl := Decide(tt.req, tt.s, tt.s.ResponseTime.Add(tt.after), Options{})
			if d != tt.want || ttl != tt.wantTTL {
				t.Errorf("Decide = %v (age %v, ttl %v), want %v ttl %v", d, age, ttl, tt.want, tt.wantTTL)
			}
		})
	}
}

func TestDecideOptionsHeuristicMax(t *testing.T) {
	s := stored(hdr("Date", httpDate(t0), "Last-Modified", httpDate(t0.Add(-10*time.Hour))))
	if d, _, ttl := Decide(nil, s, t0.Add(30*time.Minute), Options{HeuristicMax: 20 * time.Minute}); d != Revalidate || ttl != -10*time.Minute {
		t.Errorf("Decide with HeuristicMax 20m = %v, ttl %v; want revalidate, -10m", d, ttl)
	}
}

func TestStaleIfError(t *testing.T) {
	tests := []struct {
		name  string
		req   http.Header
		resp  http.Header
		after time.Duration
		cap   time.Duration
		want  bool
	}{
		{"stale-if-error within (RFC 5861 §4)", nil, hdr("Cache-Control", "max-age=10, stale-if-error=60"), 50 * time.Second, 0, true},
		{"stale-if-error exceeded", nil, hdr("Cache-Control", "max-age=10, stale-if-error=60"), 71 * time.Second, time.Hour, false},
		{"stale-if-error with s-maxage is honoured", nil, hdr("Cache-Control", "s-maxage=10, stale-if-error=60"), 50 * time.Second, 0, true},
		{"s-maxage alone forbids §5.2.2.10", nil, hdr("Cache-Control", "s-maxage=10"), 20 * time.Second, time.Hour, false},
		{"must-revalidate forbids §5.2.2.2", nil, hdr("Cache-Control", "max-age=10, must-revalidate, stale-if-error=60"), 20 * time.Second, time.Hour, false},
		{"proxy-revalidate forbids §5.2.2.8", nil, hdr("Cache-Control", "max-age=10, proxy-revalidate"), 20 * time.Second, time.Hour, false},
		{"no-cache forbids §5.2.2.4", nil, hdr("Cache-Control", "max-age=10, no-cache, stale-if-error=60"), 20 * time.Second, time.Hour, false},
		{"cap without directive", nil, hdr("Cache-Control", "max-age=10"), 20 * time.Second, time.Minute, true},
		{"cap exceeded", nil, hdr("Cache-Control", "max-age=10"), 80 * time.Second, time.Minute, false},
		{"no cap, no directive", nil, hdr("Cache-Control", "max-age=10"), 20 * time.Second, 0, false},
		{"request stale-if-error", hdr("Cache-Control", "stale-if-error=30"), hdr("Cache-Control", "max-age=10"), 20 * time.Second, 0, true},
		{"request stale-if-error exceeded", hdr("Cache-Control", "stale-if-error=5"), hdr("Cache-Control", "max-age=10"), 20 * time.Second, 0, false},
		{"request max-stale", hdr("Cache-Control", "max-stale"), hdr("Cache-Control", "max-age=10"), time.Hour, 0, true},
		{"request stale-if-error cannot beat s-maxage", hdr("Cache-Control", "stale-if-error=30"), hdr("Cache-Control", "s-maxage=10"), 20 * time.Second, 0, false},
		{"CDN-Cache-Control stale-if-error", nil, hdr("CDN-Cache-Control", "max-age=10, stale-if-error=60", "Cache-Control", "no-cache"), 50 * time.Second, 0, true},
		{"fresh response", nil, hdr("Cache-Control", "max-age=100"), 0, 0, false},
		{"fresh response with cap", nil, hdr("Cache-Control", "max-age=100"), 0, time.Second, true},
		{"Authorization without permission §3.5", hdr("Authorization", "x"), hdr("Cache-Control", "max-age=10, stale-if-error=60"), 20 * time.Second, 0, false},
		// The cache's own window (the cap) is for content the origin gave
		// a lifetime and that is the same for everyone.
		{"cap: no explicit freshness", nil, hdr("Content-Type", "text/html"), 20 * time.Second, time.Hour, false},
		{"cap: heuristic freshness only", nil, hdr("Date", httpDate(t0), "Last-Modified", httpDate(t0.Add(-10*time.Hour))), 2 * time.Hour, 24 * time.Hour, false},
		{"cap: Set-Cookie", nil, hdr("Cache-Control", "max-age=10", "Set-Cookie", "session=alice"), 20 * time.Second, time.Hour, false},
		{"cap: Expires counts as explicit", nil, hdr("Date", httpDate(t0), "Expires", httpDate(t0.Add(10*time.Second))), 20 * time.Second, time.Hour, true},
		{"cap: invalid Expires is not explicit", nil, hdr("Expires", "0"), 20 * time.Second, time.Hour, false},
		{"cap: targeted max-age counts", nil, hdr("CDN-Cache-Control", "max-age=10"), 20 * time.Second, time.Hour, true},
		{"cap: targeted field replaces Expires", nil, hdr("CDN-Cache-Control", "public", "Date", httpDate(t0), "Expires", httpDate(t0.Add(10*time.Second))), 20 * time.Second, time.Hour, false},
		{"explicit stale-if-error with Set-Cookie still applies", nil, hdr("Cache-Control", "max-age=10, stale-if-error=60", "Set-Cookie", "a=b"), 50 * time.Second, 0, true},
		{"explicit stale-if-error without freshness still applies", nil, hdr("Cache-Control", "stale-if-error=60"), 50 * time.Second, time.Hour, true},
		{"request stale-if-error without freshness still applies", hdr("Cache-Control", "stale-if-error=60"), hdr("Content-Type", "text/html"), 20 * time.Second, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stored(tt.resp)
			if got := StaleIfError(tt.req, s, t0.Add(tt.after), Options{StaleIfErrorCap: tt.cap}); got != tt.want {
				t.Errorf("StaleIfError = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOnlyIfCached(t *testing.T) {
	if !OnlyIfCached(hdr("Cache-Control", "only-if-cached")) || OnlyIfCached(hdr("Cache-Control", "max-age=0")) {
		t.Error("OnlyIfCached wrong")
	}
}

func TestEffectiveCacheControl(t *testing.T) {
	tests := []struct {
		h         http.Header
		wantField string
		wantCC    string
	}{
		{hdr("Cache-Control", "max-age=1"), "Cache-Control", "max-age=1"},
		{hdr("Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=2"), "CDN-Cache-Control", "max-age=2"},
		{hdr("Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=2, &&"), "Cache-Control", "max-age=1"},
		{hdr("Cache-Control", "max-age=1", "Surrogate-Control", "max-age=3"), "Surrogate-Control", "max-age=3"},
	}
	for _, tt := range tests {
		cc, f := EffectiveCacheControl(tt.h)
		if f != tt.wantField || cc.String() != tt.wantCC {
			t.Errorf("EffectiveCacheControl(%v) = %q, %q; want %q, %q", tt.h, cc, f, tt.wantCC, tt.wantField)
		}
	}
}

// TestDecideDoesNotAllocate guards the edge's hit path.
func TestDecideDoesNotAllocate(t *testing.T) {
	s := Stored{
		Status:       200,
		Header:       hdr("Cache-Control", "public, max-age=3600, stale-while-revalidate=60", "Date", httpDate(t0), "Age", "3", "Last-Modified", httpDate(t0.Add(-time.Hour)), "Content-Type", "text/css"),
		RequestTime:  t0,
		ResponseTime: t0,
	}
	req := hdr("Accept-Encoding", "gzip", "User-Agent", "x")
	now := t0.Add(time.Minute)
	allocs := testing.AllocsPerRun(100, func() {
		if d, _, _ := Decide(req, s, now, Options{}); d != Fresh {
			t.Fatalf("decision %v", d)
		}
	})
	if allocs != 0 {
		t.Errorf("Decide allocates %v times per fresh hit, want 0", allocs)
	}
}

func TestStaleIfErrorInvalidDirective(t *testing.T) {
	s := stored(hdr("Cache-Control", "max-age=10, stale-if-error=abc"))
	if StaleIfError(nil, s, t0.Add(20*time.Second), Options{}) {
		t.Error("invalid stale-if-error allowed stale content")
	}
	if !StaleIfError(nil, s, t0.Add(20*time.Second), Options{StaleIfErrorCap: time.Minute}) {
		t.Error("invalid stale-if-error should fall back to the cap")
	}
}
