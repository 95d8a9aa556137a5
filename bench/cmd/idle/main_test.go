package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestIdleHoldsConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	var out strings.Builder
	err := run(context.Background(), []string{"-url", srv.URL + "/x", "-pid", strconv.Itoa(os.Getpid()),
		"-n", "40", "-batch", "15", "-gap", "10ms", "-settle", "10ms"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "conns=40 rss_before_kib=") || !strings.Contains(out.String(), "bytes_per_conn=") {
		t.Fatalf("output %q", out.String())
	}
}

func TestIdleRefusesOtherHosts(t *testing.T) {
	for _, u := range []string{"http://192.0.2.1/x", "https://127.0.0.1/x", "ftp://127.0.0.1/"} {
		if err := run(context.Background(), []string{"-url", u, "-pid", "1"}, io.Discard); err == nil {
			t.Errorf("%s: accepted", u)
		}
	}
}
