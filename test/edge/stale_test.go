package edge_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/edgetest"
)

// TestStaleIfError checks that cached content keeps flowing when the origin
// is down or answers 5xx once the object has expired, and that Cache-Status
// says so.
func TestStaleIfError(t *testing.T) {
	cases := []struct {
		name   string
		cc     string
		break_ func(o *origin, fail *atomic.Int32)
	}{
		{"origin down", "max-age=1", func(o *origin, _ *atomic.Int32) { o.Close() }},
		{"origin 500", "max-age=1", func(_ *origin, fail *atomic.Int32) { fail.Store(500) }},
		{"origin 503 with directive", "max-age=1, stale-if-error=60", func(_ *origin, fail *atomic.Int32) { fail.Store(503) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var fail atomic.Int32
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if code := fail.Load(); code != 0 {
					http.Error(w, "origin broken", int(code))
					return
				}
				w.Header().Set("Cache-Control", tc.cc)
				w.Header().Set("ETag", `"s1"`)
				fmt.Fprint(w, "the good body")
			})
			e := kubecdn.Start(t, edgetest.Options{Origin: o.URL})
			c := newClient()
			if r := get(t, c, e.URL(), "/page", ""); r.status != 200 || string(r.body) != "the good body" {
				t.Fatalf("first fetch: %d %q", r.status, r.body)
			}
			time.Sleep(1500 * time.Millisecond) // expire
			tc.break_(o, &fail)
			for i := range 3 {
				r := get(t, c, e.URL(), "/page", "")
				if r.status != 200 || string(r.body) != "the good body" {
					t.Fatalf("request %d with the origin broken: %d %q (Cache-Status %q)", i, r.status, r.body, r.cacheStatus())
				}
				if !strings.Contains(r.cacheStatus(), "stale") {
					t.Errorf("request %d: Cache-Status %q does not say stale", i, r.cacheStatus())
				}
			}
			// An object never cached cannot be served stale: the error shows.
			if r := get(t, c, e.URL(), "/never-cached", ""); r.status < 500 {
				t.Errorf("uncached object with the origin broken: status %d", r.status)
			}
			// Once the origin is back, fresh content is fetched again.
			if tc.name != "origin down" {
				fail.Store(0)
				before := o.count("/page")
				r := get(t, c, e.URL(), "/page", "")
				if r.status != 200 || csParam(r.cacheStatus(), "detail") == "stale-if-error" || o.count("/page") != before+1 {
					t.Errorf("origin back: %d %q, origin asked %d times", r.status, r.cacheStatus(), o.count("/page")-before)
				}
			}
		})
	}
}
