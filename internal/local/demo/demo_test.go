package demo

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDemoServes(t *testing.T) {
	h, err := New(Options{LargeSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		path, rng  string
		wantStatus int
		wantType   string
		minLen     int
	}{
		{"/", "", 200, "text/html; charset=utf-8", 200},
		{"/assets/style.css", "", 200, "text/css; charset=utf-8", 50},
		{"/assets/app.js", "", 200, "text/javascript; charset=utf-8", 50},
		{"/img/small.png", "", 200, "image/png", 1000},
		{"/img/large.png", "", 200, "image/png", 1 << 20},
		{LargePath, "bytes=1000-1999", 206, "application/octet-stream", 1000},
		{"/nope", "", 404, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus >= 300 {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type %q, want %q", got, tc.wantType)
			}
			if len(body) < tc.minLen {
				t.Errorf("body %d bytes, want at least %d", len(body), tc.minLen)
			}
			for _, hd := range []string{"ETag", "Cache-Control", "Last-Modified", "Surrogate-Key"} {
				if resp.Header.Get(hd) == "" {
					t.Errorf("no %s", hd)
				}
			}
			if tc.path == LargePath {
				want := make([]byte, 1000)
				FillLarge(want, 1000)
				if !bytes.Equal(body, want) {
					t.Error("range bytes differ from FillLarge")
				}
			}
		})
	}
}

func TestLargeConditionalAndSize(t *testing.T) {
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h.LargeSize() < 64<<20 {
		t.Fatalf("large file %d bytes, want at least 64 MiB", h.LargeSize())
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("HEAD", LargePath, nil))
	etag := rec.Header().Get("ETag")
	if rec.Header().Get("Content-Length") != "67108864" || etag == "" {
		t.Fatalf("HEAD: length %q etag %q", rec.Header().Get("Content-Length"), etag)
	}
	req := httptest.NewRequest("GET", LargePath, nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match: status %d, want 304", rec.Code)
	}
	// The tail read by seeking from the end matches FillLarge.
	lr := &largeReader{size: h.LargeSize()}
	if _, err := lr.Seek(-16, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(lr)
	want := make([]byte, 16)
	FillLarge(want, h.LargeSize()-16)
	if !bytes.Equal(got, want) {
		t.Fatalf("tail %x, want %x", got, want)
	}
}
