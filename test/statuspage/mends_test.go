package statuspage_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/opstest"
	"github.com/kubecdn/kubecdn/internal/statuspage"
	"github.com/kubecdn/kubecdn/test/e2e"
)

// statusRecorder remembers every answer the page's server gave, by path.
type statusRecorder struct {
	mu   sync.Mutex
	seen []string // "404 /favicon.ico"
}

func (s *statusRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/events" {
			// No server-sent events: the page falls back to polling, which
			// lets --virtual-time-budget end (an open EventSource never
			// lets it).
			http.Error(w, "no events in this test", http.StatusServiceUnavailable)
			return
		}
		cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(cw, r)
		s.mu.Lock()
		s.seen = append(s.seen, fmt.Sprintf("%d %s", cw.code, r.URL.Path))
		s.mu.Unlock()
	})
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}

// The page as a browser shows it between two bursts: each region has a
// hit ratio since its edges started and none over the last interval; the
// total tile shows the ratio over all of them (it was blank), and the
// browser asks for nothing that answers 404 (it asked for /favicon.ico).
func TestTotalHitRatioAndNoMissingFavicon(t *testing.T) {
	bin := e2e.Chromium(t)
	east, west := opstest.NewFakeEdge(t, "t"), opstest.NewFakeEdge(t, "t")
	east.Add("hit", 90, 1<<20)
	east.Add("miss", 10, 1<<20)
	west.Add("hit", 10, 1<<20)
	west.Add("miss", 90, 1<<20)
	src := &fakeSource{targets: []ops.Target{
		{Region: "us-east-1", State: ops.StateOpen, Admin: []string{east.URL()}},
		{Region: "us-west-2", State: ops.StateOpen, Admin: []string{west.URL()}},
	}}
	rec := &statusRecorder{}
	srv := httptest.NewServer(rec.wrap(statuspage.Handler(src, statuspage.Options{Interval: 200 * time.Millisecond})))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--virtual-time-budget=3000", "--dump-dom", srv.URL+"/")
	cmd.Env = append(os.Environ(), "HOME="+profile)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	field := func(id string) string {
		m := regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("no #%s in the page:\n%s", id, dom)
		}
		return m[1]
	}
	if u := field("t-regions"); u != "2 / 2" {
		t.Fatalf("the page never rendered a status (regions tile %q); answers: %v", u, rec.seen)
	}
	if got := field("t-hit"); got != "50.0%" { // 100 hits of 200 cacheable requests
		t.Errorf("total hit ratio = %q, want 50.0%% (the regions show 90.0%% and 10.0%% since start)", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.seen {
		if s[:3] == "404" {
			t.Errorf("the browser asked for something missing: %s (all answers: %v)", s, rec.seen)
		}
	}
}
