package httpcache

import (
	"testing"
	"time"
)

func BenchmarkParseCacheControl(b *testing.B) {
	lines := []string{`public, max-age=3600, s-maxage=600, stale-while-revalidate=60, no-cache="Set-Cookie"`}
	b.ReportAllocs()
	for b.Loop() {
		_ = ParseCacheControl(lines)
	}
}

// BenchmarkDecide is the edge's hit path: a fresh stored response.
func BenchmarkDecide(b *testing.B) {
	s := Stored{
		Status: 200,
		Header: hdr("Cache-Control", "public, max-age=3600, stale-while-revalidate=60", "Date", httpDate(t0),
			"Age", "3", "Last-Modified", httpDate(t0.Add(-time.Hour)), "ETag", `"abc"`, "Content-Type", "text/css"),
		RequestTime:  t0,
		ResponseTime: t0,
	}
	req := hdr("Accept-Encoding", "gzip, br", "User-Agent", "bench")
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if d, _, _ := Decide(req, s, now, Options{}); d != Fresh {
			b.Fatal(d)
		}
	}
}
