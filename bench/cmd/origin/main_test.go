package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseObjectPath(t *testing.T) {
	tests := []struct {
		path    string
		want    int64
		wantErr bool
	}{
		{"/obj/1024/a", 1024, false},
		{"/obj/1KiB/a", 1 << 10, false},
		{"/obj/64MiB/huge", 64 << 20, false},
		{"/obj/1GiB", 1 << 30, false},
		{"/obj/0B/empty", 0, false},
		{"/obj/5GiB/x", 0, true},
		{"/obj/-1/x", 0, true},
		{"/obj/abc/x", 0, true},
		{"/other/1KiB", 0, true},
	}
	for _, tt := range tests {
		got, err := parseObjectPath(tt.path)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseObjectPath(%q) = %d, %v; want %d, error %v", tt.path, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOriginServesAndCounts(t *testing.T) {
	o := newOrigin(0, 3600, func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) })
	srv := httptest.NewServer(o)
	defer srv.Close()

	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	resp, body := get("/obj/1000/a")
	if resp.StatusCode != http.StatusOK || len(body) != 1000 {
		t.Fatalf("got %d with %d bytes, want 200 with 1000", resp.StatusCode, len(body))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=3600" {
		t.Errorf("Cache-Control = %q", cc)
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "Wed, 31 Dec 2025 23:00:00 GMT" {
		t.Errorf("Last-Modified = %q", lm)
	}
	etag := resp.Header.Get("ETag")
	if resp, _ := get("/obj/1000/a", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET got %d, want 304", resp.StatusCode)
	}

	start := time.Now()
	if resp, _ := get("/obj/10/slow?delay=30ms"); resp.StatusCode != http.StatusOK {
		t.Errorf("delayed GET got %d", resp.StatusCode)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("delayed GET took %v, want at least 30ms", d)
	}
	if resp, _ := get("/obj/10/x?delay=bogus"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad delay got %d, want 400", resp.StatusCode)
	}
	if resp, _ := get("/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path got %d, want 404", resp.StatusCode)
	}

	for path, want := range map[string]int{"/__count": 4, "/__count?path=/obj/1000/a": 2, "/__count?path=/obj/10/slow": 1, "/__count?path=/none": 0} {
		_, body := get(path)
		if got, err := strconv.Atoi(strings.TrimSpace(body)); err != nil || got != want {
			t.Errorf("%s = %q, want %d", path, body, want)
		}
	}
}
