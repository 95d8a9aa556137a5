package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
		{ms(hundred...), 1, 100 * time.Millisecond},
		{ms(hundred...), 0, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for host, ok := range map[string]bool{"127.0.0.1": true, "127.9.9.9": true, "::1": true, "localhost": true, "10.0.0.1": false, "192.168.1.1": false, "example.com": false} {
		if err := checkLoopback(host); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok %v", host, err, ok)
		}
	}
}

func TestRunStorm(t *testing.T) {
	var storm, warm atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/warm":
			warm.Add(1)
		case "/cold":
			storm.Add(1)
			time.Sleep(20 * time.Millisecond)
		default:
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("hello"))
	}))
	defer srv.Close()

	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-url", srv.URL + "/cold", "-n", "50", "-warm", "/warm", "-timeout", "20s"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v (%s)", err, errOut.String())
	}
	if storm.Load() != 50 || warm.Load() != 50 {
		t.Errorf("server saw %d storm and %d warm requests, want 50 each", storm.Load(), warm.Load())
	}
	line := out.String()
	for _, want := range []string{"n=50 ", "ok=50 ", "errors=0 ", "p99_ms="} {
		if !strings.Contains(line, want) {
			t.Errorf("output %q lacks %q", line, want)
		}
	}

	out.Reset()
	if err := run(context.Background(), []string{"-url", srv.URL + "/missing", "-n", "3"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(out.String(), "errors=3 ") || !strings.Contains(out.String(), "status_404=3") {
		t.Errorf("404 storm output %q, want 3 errors with status_404=3", out.String())
	}

	if err := run(context.Background(), []string{"-url", "http://10.1.2.3/x"}, &out, &errOut); err == nil {
		t.Error("run accepted a non-loopback target")
	}
}
