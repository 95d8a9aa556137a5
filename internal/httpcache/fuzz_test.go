package httpcache

import (
	"maps"
	"net/http"
	"strconv"
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

// FuzzParseHTTPDate checks that the date parser is exactly the grammar of
// RFC 9110 §5.6.7: whatever it accepts is, after its day name, byte for
// byte the canonical spelling of the time it returns in the same form, so
// no lenient spelling (a one-digit field, a doubled space, another zone or
// case) gets through; and the IMF-fixdate of that time parses back to it.
func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Sun Nov 06 08:49:37 1994", "Wed, 31 Dec 2025 23:59:60 GMT", "Thu, 18 Aug 2050 2:01:18 GMT",
		"Thu, 18  Aug  2050 02:01:18 GMT", "Thu 18 Aug 2050 02:01:18 GMT", "0", "",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseHTTPDate(s, now)
		if !ok {
			return
		}
		if got.Location() != time.UTC || got.Nanosecond() != 0 {
			t.Fatalf("%q: %v not whole UTC seconds", s, got)
		}
		if back, ok := parseHTTPDate(got.Format(http.TimeFormat), now); !ok || !back.Equal(got) {
			t.Fatalf("%q: %v does not survive IMF-fixdate: %v, %v", s, got, back, ok)
		}
		v := trimOWS(s)
		if strings.Contains(v, ":60") {
			return // a leap second has no canonical spelling in package time
		}
		var canon, rest string
		switch i := strings.IndexByte(v, ','); {
		case i == 3: // IMF-fixdate
			canon, rest = got.Format("02 Jan 2006 15:04:05 GMT"), v[5:]
		case i > 3: // rfc850-date
			canon, rest = got.Format("02-Jan-06 15:04:05 GMT"), v[i+2:]
		default: // asctime-date; a zero-padded day is allowed (2DIGIT)
			canon, rest = got.Format("Jan _2 15:04:05 2006"), v[4:]
			if rest[4] == '0' {
				rest = rest[:4] + " " + rest[5:]
			}
		}
		if canon != rest {
			t.Fatalf("%q accepted as %v, whose spelling is %q", s, got, canon)
		}
	})
}

// FuzzParseAge checks the Age rules of RFC 9111 §5.1 as properties: field
// lines are one list (splitting a line into lines changes nothing), the
// result is within [0, 2^31 s], and the Age sent for it is its whole
// seconds, capped.
func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"0", "7200, 0", "0\n7200", "abc", "-1", "7200.0", "1;a=b", " , 5", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		d := parseAge(lines)
		if d < 0 || d > maxDeltaSeconds*time.Second || d%time.Second != 0 {
			t.Fatalf("parseAge(%q) = %v", lines, d)
		}
		if one := parseAge([]string{strings.Join(lines, ",")}); one != d {
			t.Fatalf("%q as lines gives %v, as one line %v", lines, d, one)
		}
		sent := string(AppendAge(nil, d))
		if want := min(d, MaxSentAge) / time.Second; sent != strconv.FormatInt(int64(want), 10) {
			t.Fatalf("AppendAge(%v) = %q", d, sent)
		}
	})
}
