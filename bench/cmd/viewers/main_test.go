package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/edge"
	"github.com/kubecdn/kubecdn/internal/livehls"
)

// The runs are short: a segment every 200ms (so a target duration of 1s,
// the viewers' refresh), 3s of watching.
const (
	testSegment  = 200 * time.Millisecond
	testBytes    = 4096
	testDuration = 3 * time.Second
	testViewers  = 20
	// hostileViewers watch each hostile origin: seven at once.
	hostileViewers = 5
)

// startOrigin serves a live origin (wrapped by wrap, if set) on loopback.
func startOrigin(t *testing.T, wrap func(*livehls.Origin, http.Handler) http.Handler) (*livehls.Origin, string) {
	t.Helper()
	g := livehls.New(livehls.Options{SegmentDuration: testSegment, SegmentBytes: testBytes, Seed: 14})
	var h http.Handler = originHandler(g)
	if wrap != nil {
		h = wrap(g, h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return g, srv.URL
}

// startEdge runs a kubecdn edge in this process in front of origin, with
// parent (if set) as its parent region.
func startEdge(t *testing.T, name, origin, parent string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := edge.Config{Name: name, Origin: origin, Parent: parent, Listen: ln.Addr().String(), Admin: aln.Addr().String(), AdminToken: "t", AccessLog: "off"}
	s, err := edge.New(cfg, edge.Options{Listener: ln, AdminListener: aln, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Started():
	case err := <-done:
		t.Fatalf("edge %s: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("edge %s: %v", name, err)
		}
	})
	return "http://" + ln.Addr().String()
}

// report is the viewers' one line, parsed.
type report map[string]float64

// viewersRun is a `viewers run` under way.
type viewersRun struct {
	start          time.Time
	stdout, stderr bytes.Buffer
	done           chan error
}

// startViewers starts `viewers run` against regions and origin.
func startViewers(regions []string, origin string, extra ...string) *viewersRun {
	args := append([]string{"run", "-regions", strings.Join(regions, ","), "-origin", origin,
		"-n", strconv.Itoa(testViewers), "-duration", testDuration.String(), "-bytes", strconv.Itoa(testBytes)}, extra...)
	v := &viewersRun{start: time.Now(), done: make(chan error, 1)}
	go func() { v.done <- run(context.Background(), args, &v.stdout, &v.stderr) }()
	return v
}

// runViewers runs `viewers run` against regions and origin (see wait).
func runViewers(t *testing.T, regions []string, origin string, bound time.Duration, extra ...string) (report, string) {
	t.Helper()
	return startViewers(regions, origin, extra...).wait(t, bound)
}

// wait returns the run's report and standard error, failing t if it errs
// or does not end within the watching time and bound of its start (the
// hostile origins must not make it hang).
func (v *viewersRun) wait(t *testing.T, bound time.Duration) (report, string) {
	t.Helper()
	select {
	case err := <-v.done:
		if err != nil {
			t.Fatalf("viewers: %v\n%s", err, v.stderr.String())
		}
	case <-time.After(time.Until(v.start.Add(testDuration + bound))):
		t.Fatalf("viewers still running %v after starting (watching %v)", time.Since(v.start).Round(time.Millisecond), testDuration)
	}
	line := strings.TrimSpace(v.stdout.String())
	t.Logf("viewers (%v): %s %s", time.Since(v.start).Round(time.Millisecond), line, strings.TrimSpace(v.stderr.String()))
	r := report{}
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("field %q of %q is not key=value", f, line)
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("field %q of %q: %v", f, line, err)
		}
		r[k] = n
	}
	for _, k := range []string{"viewers", "segments", "origin_req_per_segment", "origin_playlist_per_refresh", "playlist_reqs", "segment_reqs", "ttfb_p50_ms", "ttfb_p99_ms", "bad_bytes", "errors"} {
		if _, ok := r[k]; !ok {
			t.Fatalf("no %s in %q", k, line)
		}
	}
	return r, v.stderr.String()
}

// originTotals sums the origin's counts of playlists and of segments.
func originTotals(g *livehls.Origin) (playlists, segments int) {
	for p, n := range g.Counts() {
		switch {
		case p == "/live.m3u8":
			playlists += n
		case strings.HasPrefix(p, "/seg/"):
			segments += n
		}
	}
	return playlists, segments
}

func checkTTFB(t *testing.T, r report, most float64) {
	t.Helper()
	if p50, p99 := r["ttfb_p50_ms"], r["ttfb_p99_ms"]; !(p50 > 0 && p50 <= p99 && p99 < most) {
		t.Errorf("ttfb p50 %v ms, p99 %v ms: want 0 < p50 <= p99 < %v", p50, p99, most)
	}
}

// Straight at the origin, no cache: what the viewers say they asked for
// is what reached the origin, every viewer watched, and each segment
// reached the origin once per viewer that played it.
func TestViewersAgainstOrigin(t *testing.T) {
	g, origin := startOrigin(t, nil)
	r, _ := runViewers(t, []string{origin, origin}, origin, 3*time.Second)
	pl, seg := originTotals(g)
	if r["errors"] != 0 || r["bad_bytes"] != 0 {
		t.Fatalf("errors %v, bad bytes %v against a well origin", r["errors"], r["bad_bytes"])
	}
	// A viewer's last request may be cut by the end of the run after it
	// reached the origin: at most one per viewer.
	if got := r["playlist_reqs"]; got > float64(pl) || float64(pl) > got+testViewers {
		t.Errorf("viewers made %v playlist requests, the origin saw %d", got, pl)
	}
	if got := r["segment_reqs"]; got > float64(seg) || float64(seg) > got+testViewers {
		t.Errorf("viewers fetched %v segments, the origin saw %d requests for segments", got, seg)
	}
	// Each viewer watches at least 1s (it joins within the first 2s): one
	// playlist, three segments from the live end; at most a segment per
	// 200ms after that.
	perViewer := r["segment_reqs"] / testViewers
	if most := 3 + float64(testDuration/testSegment) + 1; perViewer < 1 || perViewer > most {
		t.Errorf("%v segments per viewer, want 1..%v (3 or more on a quiet machine)", perViewer, most)
	}
	if n := r["origin_req_per_segment"]; n <= 1 || n > testViewers {
		t.Errorf("origin requests per segment %v without a cache, want 1 < n <= %d viewers", n, testViewers)
	}
	checkTTFB(t, r, 5000)
}

// Through two regions' edges, the second with the first as its parent, as
// bench/video/run.sh runs them: one origin request per live segment, the
// playlist a couple of times per refresh (fresh for half the target).
func TestViewersThroughEdges(t *testing.T) {
	g, origin := startOrigin(t, nil)
	a := startEdge(t, "region-a", origin, "")
	b := startEdge(t, "region-b", origin, a)
	r, _ := runViewers(t, []string{a, b}, origin, 3*time.Second)
	if r["errors"] != 0 || r["bad_bytes"] != 0 {
		t.Fatalf("errors %v, bad bytes %v", r["errors"], r["bad_bytes"])
	}
	if r["segments"] < 5 {
		t.Fatalf("%v live segments in the run, want at least 5", r["segments"])
	}
	if n := r["origin_req_per_segment"]; n != 1 {
		t.Errorf("origin requests per live segment %v through a shielded pair of edges, want 1 (origin counts %v)", n, g.Counts())
	}
	if n := r["origin_playlist_per_refresh"]; n < 1 || n > 3 {
		t.Errorf("origin playlist requests per refresh %v, want 1..3 (fresh for half the 1s target)", n)
	}
	checkTTFB(t, r, 5000)
}

// Hostile origins are reported as errors, with what went wrong, and the
// run still ends on time.
func TestViewersHostileOrigin(t *testing.T) {
	// Every third segment misbehaves.
	bad := func(r *http.Request) bool {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/seg/"), ".ts"))
		return err == nil && strings.HasPrefix(r.URL.Path, "/seg/") && n%3 == 0
	}
	stall := func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	cases := []struct {
		name string
		h    func(w http.ResponseWriter, r *http.Request)
		want string // in the first error
	}{
		{"404 without a body", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) }, "404 Not Found"},
		{"500 with a body", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, "500 Internal Server Error"},
		{"stall before the header", func(w http.ResponseWriter, r *http.Request) { stall(r) }, "Client.Timeout"},
		{"stall in the body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(testBytes))
			w.Write(make([]byte, testBytes/2))
			w.(http.Flusher).Flush()
			stall(r)
		}, "Client.Timeout"},
		{"close in the body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(testBytes))
			w.Write(make([]byte, testBytes/2))
			w.(http.Flusher).Flush()
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		}, "unexpected EOF"},
		{"short segment", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, testBytes/2)) }, ""},
		// The right size, another segment's bytes: what a cache serving a
		// stale key would send.
		{"another segment's bytes", func(w http.ResponseWriter, r *http.Request) {
			w.Write(livehls.New(livehls.Options{SegmentBytes: testBytes, Seed: 14}).Segment(1))
		}, ""},
	}
	// Every case's run at once, with few viewers (t.Parallel would run two at a time on two
	// cores), then each checked.
	origins := make([]*livehls.Origin, len(cases))
	runs := make([]*viewersRun, len(cases))
	for i, tc := range cases {
		g, origin := startOrigin(t, func(g *livehls.Origin, h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !bad(r) {
					h.ServeHTTP(w, r)
					return
				}
				g.ServeHTTP(httptest.NewRecorder(), r) // counted
				tc.h(w, r)
			})
		})
		origins[i], runs[i] = g, startViewers([]string{origin}, origin, "-timeout", "1s", "-n", strconv.Itoa(hostileViewers))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := origins[i]
			r, stderr := runs[i].wait(t, 3*time.Second)
			var badReqs int
			for p, n := range g.Counts() {
				if bad(&http.Request{URL: mustURL(t, p)}) {
					badReqs += n
				}
			}
			if badReqs == 0 {
				t.Fatal("no viewer asked for a bad segment")
			}
			if tc.want == "" { // served in full, but not the segment's bytes
				// No good segment is bad; every bad one is, bar those the
				// end of the run cut or a busy machine timed out.
				if b := r["bad_bytes"]; b == 0 || b > float64(badReqs) || float64(badReqs) > b+r["errors"]+hostileViewers {
					t.Errorf("bad bytes %v, errors %v; want the %d bad segments counted as bad bytes", b, r["errors"], badReqs)
				}
				return
			}
			// Every bad request is an error, bar those the end of the run
			// cut (at most one per viewer). (On a quiet machine, errors
			// equal bad requests; on a busy one a good request may time
			// out too.)
			if e := r["errors"]; e == 0 || float64(badReqs) > e+hostileViewers {
				t.Errorf("%v errors; the origin saw %d requests for bad segments", e, badReqs)
			}
			if r["bad_bytes"] != 0 {
				t.Errorf("bad bytes %v: a failed segment is an error, not a wrong size", r["bad_bytes"])
			}
			if !strings.Contains(stderr, "error: ") || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not name %q", stderr, tc.want)
			}
		})
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
