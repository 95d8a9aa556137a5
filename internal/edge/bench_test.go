package edge

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kubecdn/kubecdn/internal/edge/wire"
)

// discardWriter is a minimal http.ResponseWriter, so the benchmark measures
// the edge's handler and not a recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// benchEdge1KiB is an edge in front of an origin whose every object is
// 1 KiB, fresh for an hour.
func benchEdge1KiB(b *testing.B) *Server {
	b.Helper()
	body := strings.Repeat("x", 1024)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"1"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	}))
	b.Cleanup(origin.Close)
	s, err := New(Config{Listen: "127.0.0.1:1", Origin: origin.URL}, Options{Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkServeHit1KiB(b *testing.B) {
	s := benchEdge1KiB(b)
	req := httptest.NewRequest(http.MethodGet, "http://www.example.com/obj", nil)
	req.Header.Set("User-Agent", "wrk")
	req.Header.Set("Accept", "*/*")
	benchServe(b, s, req)
}

// benchServe serves req with h once (a miss), then b.N times (hits).
func benchServe(b *testing.B, h http.Handler, req *http.Request) {
	h.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &discardWriter{h: make(http.Header, 8)}
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkFastHit1KiB measures the fast path's work for one fresh 1 KiB
// hit, without the connection's system calls.
func BenchmarkFastHit1KiB(b *testing.B) {
	s := benchEdge1KiB(b)
	req := httptest.NewRequest(http.MethodGet, "http://www.example.com/obj", nil)
	s.ServeHTTP(&discardWriter{h: http.Header{}}, req)
	bw := bufio.NewWriterSize(io.Discard, 16<<10)
	fr := wire.Request{Target: []byte("/obj"), Host: []byte("www.example.com")}
	var st fastConnState
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x := fastExchange{s: s, bw: bw, st: &st, req: fr}
		if !x.serveHit() {
			b.Fatal("not served on the fast path")
		}
		bw.Flush()
	}
}
