package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func TestEvaluateConditional(t *testing.T) {
	lm := httpDate(t0.Add(-time.Hour))
	resp := hdr("ETag", `"v1"`, "Last-Modified", lm)
	weakResp := hdr("ETag", `W/"v1"`, "Last-Modified", lm)
	tests := []struct {
		name   string
		method string
		req    http.Header
		status int
		resp   http.Header
		want   int
	}{
		{"no preconditions", "GET", hdr(), 200, resp, 0},
		{"If-None-Match match §13.1.2", "GET", hdr("If-None-Match", `"v0", "v1"`), 200, resp, 304},
		{"If-None-Match weak comparison", "GET", hdr("If-None-Match", `W/"v1"`), 200, resp, 304},
		{"If-None-Match weak stored", "GET", hdr("If-None-Match", `"v1"`), 200, weakResp, 304},
		{"If-None-Match no match", "GET", hdr("If-None-Match", `"v2"`), 200, resp, 0},
		{"If-None-Match star", "HEAD", hdr("If-None-Match", "*"), 200, resp, 304},
		{"If-None-Match match on POST is 412", "POST", hdr("If-None-Match", `"v1"`), 200, resp, 412},
		{"If-None-Match overrides If-Modified-Since §13.1.3", "GET", hdr("If-None-Match", `"v2"`, "If-Modified-Since", httpDate(t0)), 200, resp, 0},
		{"If-None-Match multiple lines", "GET", hdr("If-None-Match", `"a"`, "If-None-Match", `"v1"`), 200, resp, 304},
		{"If-None-Match without stored ETag", "GET", hdr("If-None-Match", `"v1"`), 200, hdr(), 0},
		{"If-Modified-Since not modified §13.1.3", "GET", hdr("If-Modified-Since", httpDate(t0)), 200, resp, 304},
		{"If-Modified-Since equal", "GET", hdr("If-Modified-Since", lm), 200, resp, 304},
		{"If-Modified-Since modified", "GET", hdr("If-Modified-Since", httpDate(t0.Add(-2*time.Hour))), 200, resp, 0},
		{"If-Modified-Since invalid ignored", "GET", hdr("If-Modified-Since", "yesterday"), 200, resp, 0},
		{"If-Modified-Since on POST ignored", "POST", hdr("If-Modified-Since", httpDate(t0)), 200, resp, 0},
		{"If-Modified-Since without Last-Modified", "GET", hdr("If-Modified-Since", httpDate(t0)), 200, hdr("ETag", `"v1"`), 0},
		{"If-Match strong match §13.1.1", "GET", hdr("If-Match", `"v1"`), 200, resp, 0},
		{"If-Match no match", "GET", hdr("If-Match", `"v2"`), 200, resp, 412},
		{"If-Match weak never matches", "GET", hdr("If-Match", `W/"v1"`), 200, resp, 412},
		{"If-Match with weak stored ETag", "GET", hdr("If-Match", `"v1"`), 200, weakResp, 412},
		{"If-Match star", "GET", hdr("If-Match", "*"), 200, resp, 0},
		{"If-Match before If-None-Match §13.2.2", "GET", hdr("If-Match", `"v2"`, "If-None-Match", `"v1"`), 200, resp, 412},
		{"If-Unmodified-Since failed §13.1.4", "GET", hdr("If-Unmodified-Since", httpDate(t0.Add(-2*time.Hour))), 200, resp, 412},
		{"If-Unmodified-Since passed", "GET", hdr("If-Unmodified-Since", httpDate(t0)), 200, resp, 0},
		{"If-Unmodified-Since ignored with If-Match", "GET", hdr("If-Match", `"v1"`, "If-Unmodified-Since", httpDate(t0.Add(-2*time.Hour))), 200, resp, 0},
		{"preconditions ignored for 404 §13.2.1", "GET", hdr("If-None-Match", "*"), 404, resp, 0},
		{"garbage If-None-Match", "GET", hdr("If-None-Match", `v1`), 200, resp, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EvaluateConditional(tt.method, tt.req, tt.status, tt.resp); got != tt.want {
				t.Errorf("EvaluateConditional = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestIfRangeMatches(t *testing.T) {
	lm := t0.Add(-time.Hour)
	strong := hdr("ETag", `"v1"`, "Last-Modified", httpDate(lm), "Date", httpDate(t0))
	tests := []struct {
		name    string
		ifRange string
		resp    http.Header
		want    bool
	}{
		{"strong etag equal §13.1.5", `"v1"`, strong, true},
		{"etag differs", `"v2"`, strong, false},
		{"weak If-Range never matches", `W/"v1"`, strong, false},
		{"weak stored ETag never matches", `"v1"`, hdr("ETag", `W/"v1"`), false},
		{"date equal to Last-Modified", httpDate(lm), strong, true},
		{"date differs", httpDate(lm.Add(time.Second)), strong, false},
		{"Last-Modified weak: Date within 1s §8.8.2.2", httpDate(lm), hdr("Last-Modified", httpDate(lm), "Date", httpDate(lm)), false},
		{"no Date: cannot be strong", httpDate(lm), hdr("Last-Modified", httpDate(lm)), false},
		{"no Last-Modified", httpDate(lm), hdr("ETag", `"v1"`), false},
		{"empty", "", strong, false},
		{"garbage", "yesterday", strong, false},
		{"two tags", `"v1", "v1"`, strong, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IfRangeMatches(tt.ifRange, tt.resp); got != tt.want {
				t.Errorf("IfRangeMatches(%q) = %v, want %v", tt.ifRange, got, tt.want)
			}
		})
	}
}
