package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/ops"
	"github.com/kubecdn/kubecdn/internal/ops/opstest"
)

// A status taken right after a burst sees no request between its two
// looks; it shows what the edges served since they started instead of
// 0.0, marked as such, and the total's hit ratio is there whenever a
// region's is.
func TestStatusRightAfterTraffic(t *testing.T) {
	e := opstest.NewFakeEdge(t, "tok")
	e.Add("hit", 150, 1<<20)
	e.Add("miss", 50, 1<<20)
	e.SetStartTime(time.Now().Add(-20 * time.Second)) // 200 requests in 20 s: 10/s
	idle := opstest.NewFakeEdge(t, "tok")
	targets := []ops.Target{
		{Region: "us-east-1", State: ops.StateOpen, Admin: []string{e.URL()}},
		{Region: "us-west-2", State: ops.StateOpen, Admin: []string{idle.URL()}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/regions", func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(targets) })
	ctl := httptest.NewServer(mux)
	defer ctl.Close()

	var out, errb bytes.Buffer
	if code := runStatus(context.Background(), []string{"--control", ctl.URL, "--interval", "50ms"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, errb.String())
	}
	t.Logf("\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, 2 regions, a total and the note on ~:\n%s", out.String())
	}
	east, west, total := strings.Fields(lines[1]), strings.Fields(lines[2]), strings.Fields(lines[3])
	check := func(region, rateCell, hitCell string) {
		t.Helper()
		rate, ok := strings.CutPrefix(rateCell, "~")
		v, err := strconv.ParseFloat(rate, 64)
		if !ok || err != nil || v < 9 || v > 10.1 {
			t.Errorf("%s REQ/S = %q, want ~10.0 (the average since the edge started)", region, rateCell)
		}
		if hitCell != "75.0%" {
			t.Errorf("%s HIT%% = %q, want 75.0%% (since the edges started)", region, hitCell)
		}
	}
	check("us-east-1", east[4], east[5])
	check("total", total[5], total[6]) // total, 2 open, 2 up, REQ/S, HIT%
	if west[4] != "0.0" || west[5] != "-" {
		t.Errorf("idle us-west-2: REQ/S %q HIT%% %q, want 0.0 and -", west[4], west[5])
	}
	if !strings.Contains(lines[4], "~ no request in the last 50ms") {
		t.Errorf("note = %q", lines[4])
	}
}
