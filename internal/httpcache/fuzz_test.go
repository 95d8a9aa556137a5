package httpcache

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60, public", `no-cache="Set-Cookie, X-A"`, `extension="max-age=3600", max-age=1`,
		"max-age =5", `a="x\"y"`, `a="unterminated`, "max-age=1, max-age=2", ",,,", "\x00\xff",
		`no-cache="", no-cache=x`, "s-maxage=99999999999999999999", "stale-while-revalidate=30\t, private",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		cc := ParseCacheControl(lines)
		out := cc.String()
		back := ParseCacheControl([]string{out})
		if !maps.Equal(back, cc) {
			t.Fatalf("round trip: %q -> %q -> %q (%q)", s, cc, out, back)
		}
		if back.String() != out {
			t.Fatalf("String not canonical: %q vs %q", back.String(), out)
		}
		// The allocation-free scanner agrees with the map.
		ds := parseDirectives(lines, false)
		if ds.noStore != cc.Has("no-store") || ds.public != cc.Has("public") || ds.maxAge.set != cc.Has("max-age") {
			t.Fatalf("directives disagree with map for %q", s)
		}
		if d, ok := cc.Seconds("max-age"); ok != ds.maxAge.valid || d != ds.maxAge.d {
			t.Fatalf("max-age disagree for %q: %v,%v vs %v,%v", s, d, ok, ds.maxAge.d, ds.maxAge.valid)
		}
		// The decisions never panic on it either.
		h := http.Header{"Cache-Control": lines, "Cdn-Cache-Control": lines[:1]}
		Storable("GET", h, 200, h)
		Decide(h, Stored{Status: 200, Header: h, RequestTime: t0, ResponseTime: t0}, t0.Add(time.Minute), Options{})
		StaleIfError(h, Stored{Status: 200, Header: h}, t0, Options{StaleIfErrorCap: time.Hour})
		StorableHeader(h)
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-5", "bytes=5-", "bytes=0-1,1-2,5-9", "bytes=9-1", "bytes=,", "bytes=99999999999999999999-"} {
		f.Add(s, int64(100))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		rs, err := ParseRange(header, size)
		if err != nil && rs != nil {
			t.Fatalf("ranges with error")
		}
		for i, r := range rs {
			if r.Start < 0 || r.Start > r.End || r.End >= size {
				t.Fatalf("range %v out of [0,%d) for %q", r, size, header)
			}
			if i > 0 && r.Start <= rs[i-1].End {
				t.Fatalf("ranges overlap or unsorted: %v for %q", rs, header)
			}
		}
		if len(rs) > maxRanges {
			t.Fatalf("%d ranges", len(rs))
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/1000", "bytes 0-99/*", "bytes */10", "Bytes 1-1/2", "bytes 01-2/3", "bytes 5-1/9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, total, err := ParseContentRange(s)
		if err != nil {
			return
		}
		if r.Start < 0 || r.End < r.Start || (total >= 0 && r.End >= total) || total < -1 {
			t.Fatalf("bad result %v/%d for %q", r, total, s)
		}
		cr := r.ContentRange(total)
		r2, total2, err := ParseContentRange(cr)
		if err != nil || r2 != r || total2 != total {
			t.Fatalf("round trip %q -> %q -> %v/%d, %v", s, cr, r2, total2, err)
		}
	})
}
