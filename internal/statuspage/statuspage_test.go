package statuspage_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/opstest"
	"github.com/kubecdn/kubecdn/internal/statuspage"
)

func TestStatusAndEvents(t *testing.T) {
	e := opstest.NewFakeEdge(t, "t")
	e.OnScrape(func(e *opstest.FakeEdge) { e.Add("hit", 3, 10); e.Add("miss", 1, 10) })
	src := statuspage.SourceFunc(func(context.Context) ([]ops.Target, error) {
		return []ops.Target{{Region: "us-east-1", State: ops.StateOpen, Admin: []string{e.URL()}}}, nil
	})
	srv := httptest.NewServer(statuspage.Handler(src, statuspage.Options{Title: `a <b>"title"`, Interval: 100 * time.Millisecond}))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "a &lt;b&gt;&#34;title&#34;") || strings.Contains(string(page), "<b>") {
		t.Errorf("title not escaped in the page")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if strings.Contains(string(page), "http://") || strings.Contains(string(page), "https://") {
		t.Errorf("the page refers to another origin")
	}
	for _, asset := range []string{"/static/app.js", "/static/app.css"} {
		r, err := http.Get(srv.URL + asset)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", asset, err, r.Status)
		}
		r.Body.Close()
	}

	// Events: the first at once, then one per interval, with rates.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/events", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var events []statuspage.Status
	for len(events) < 3 && sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var st statuspage.Status
		if err := json.Unmarshal([]byte(data), &st); err != nil {
			t.Fatal(err)
		}
		events = append(events, st)
	}
	if len(events) < 3 {
		t.Fatalf("got %d events: %v", len(events), sc.Err())
	}
	last := events[2].Regions[0]
	if last.ReqPerSec == nil || *last.ReqPerSec <= 0 || last.HitRatio == nil || *last.HitRatio != 0.75 {
		t.Errorf("third event: req/s %v hit ratio %v; want > 0 and 0.75", last.ReqPerSec, last.HitRatio)
	}
	if events[0].Title != `a <b>"title"` || events[0].IntervalMillis != 100 {
		t.Errorf("event title %q interval %d", events[0].Title, events[0].IntervalMillis)
	}
}

func TestSourceError(t *testing.T) {
	src := statuspage.SourceFunc(func(context.Context) ([]ops.Target, error) { return nil, errors.New("up is gone") })
	srv := httptest.NewServer(statuspage.Handler(src, statuspage.Options{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st statuspage.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.SourceError != "up is gone" || st.Title != "kubecdn" || st.Regions == nil {
		t.Errorf("status = %+v", st)
	}
}
