package up_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/internal/loadgen"
)

// firstMinute is how much of the opened region's traffic the warming
// test measures: the "first minute".
const firstMinute = 60

// serveKeyOrigin serves every path on addr with a body of its own (2 KiB,
// derived from the path) that caches for an hour: an origin with as many
// objects as the load asks for.
func serveKeyOrigin(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.Sum256([]byte(r.URL.Path))
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sum[:8]))
		w.Header().Set("Content-Type", "application/octet-stream")
		for range 64 { // 64 × 32 bytes
			w.Write(sum[:])
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// firstMinuteHitRatio runs up with eu-west-1 closed, sends seeded Zipf load
// (1000 keys) from Dublin until eu-west-1 has served it firstMinute
// seconds, and returns the hit ratio of eu-west-1's edge over those seconds
// and over its first 10, as the users saw it (Cache-Status of each
// response). The autoscale window is 5 s, or $KUBECDN_WARM_WINDOW (a
// longer one lets us-east-1 learn more of Dublin's keys before the open).
func firstMinuteHitRatio(t *testing.T, warm bool, eastIP, euIP string) (ratio, first10 float64, requests int) {
	t.Helper()
	window := 5 * time.Second
	if v := os.Getenv("KUBECDN_WARM_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 3*time.Second {
			t.Fatalf("KUBECDN_WARM_WINDOW=%q: want a duration of 3s or more", v)
		}
		window = d
	}
	c := newAutoscaleCDN(t, true, func(c *autoscaleCDN) {
		c.eastIP, c.euIP, c.ownOrigin = eastIP, euIP, true
		// Long enough for us-east-1 to learn Dublin's hot keys.
		c.window, c.cooldown = window, time.Minute
	})
	serveKeyOrigin(t, c.origin)
	args := append(c.args, fmt.Sprintf("--autoscale-warm=%v", warm))
	p := startUp(t, args...)
	p.WaitBanner(t, c.control)
	if !edgesCountDemand(t, c) {
		t.Skip("the edges do not count demand by nearest region; the thresholds here are users' requests per second")
	}
	var mu sync.Mutex
	var seconds []loadgen.Second
	twin, _ := loadgen.LoopbackTwin(netip.MustParsePrefix(dublin))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	euSeconds := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range seconds {
			if s.ByEdge[c.euEdgeName] > 0 || n > 0 {
				n++
			}
		}
		return n
	}
	done := make(chan loadgen.Summary, 1)
	go func() {
		sum, _ := loadgen.Run(ctx, loadgen.Options{URL: fmt.Sprintf("http://%s:%s/k/", hostname, c.port), DNS: c.dns,
			From: netip.MustParsePrefix(dublin), Source: twin, Rate: 40, Duration: 3 * time.Minute, Timeout: 5 * time.Second,
			Seed: 1, Keys: 1000, OnSecond: func(s loadgen.Second) {
				mu.Lock()
				seconds = append(seconds, s)
				mu.Unlock()
			}}, discard{})
		done <- sum
	}()
	deadline := time.Now().Add(c.window + 20*time.Second + firstMinute*time.Second)
	for euSeconds() <= firstMinute && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	sum := <-done
	if sum.Failed > 0 {
		t.Errorf("%d of %d requests failed: %v", sum.Failed, sum.Requests, sum.Errors)
	}
	if n := euSeconds(); n <= firstMinute {
		v := autoscaleView(t, c.control)
		t.Fatalf("eu-west-1 served %d s of the load, want %d: phase %s, frozen %q, decisions %+v",
			n, firstMinute, phaseOf(v, "eu-west-1"), v.Frozen, v.State.Decisions)
	}
	mu.Lock()
	defer mu.Unlock()
	hits, n, hits10, requests10 := 0, 0, 0, 0
	for _, s := range seconds {
		if n == 0 && s.ByEdge[c.euEdgeName] == 0 {
			continue
		}
		if n++; n > firstMinute {
			break
		}
		requests += s.ByEdge[c.euEdgeName]
		hits += s.Hits[c.euEdgeName]
		if n <= 10 {
			requests10 += s.ByEdge[c.euEdgeName]
			hits10 += s.Hits[c.euEdgeName]
		}
	}
	p.Stop(t)
	return float64(hits) / float64(requests), float64(hits10) / float64(max(requests10, 1)), requests
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestUpAutoscaleWarmingRaisesFirstMinuteHitRatio is the figure:
// the same seeded Zipf load from Dublin opens eu-west-1 once with warming
// (its edge first fetches the hottest keys us-east-1 served Dublin) and
// once without; eu-west-1's hit ratio over its first minute must be higher
// warmed. The two runs go side by side on their own addresses.
func TestUpAutoscaleWarmingRaisesFirstMinuteHitRatio(t *testing.T) {
	type result struct {
		ratio, first10 float64
		requests       int
	}
	var warm, cold result
	t.Run("group", func(t *testing.T) {
		t.Run("warm", func(t *testing.T) {
			t.Parallel()
			warm.ratio, warm.first10, warm.requests = firstMinuteHitRatio(t, true, "127.0.0.82", "127.0.0.84")
		})
		t.Run("cold", func(t *testing.T) {
			t.Parallel()
			cold.ratio, cold.first10, cold.requests = firstMinuteHitRatio(t, false, "127.0.0.92", "127.0.0.94")
		})
	})
	if t.Failed() || warm.requests == 0 || cold.requests == 0 {
		return
	}
	t.Logf("eu-west-1's first %d s: hit ratio %.1f %% warmed (%d requests), %.1f %% cold (%d requests); first 10 s: %.1f %% warmed, %.1f %% cold",
		firstMinute, 100*warm.ratio, warm.requests, 100*cold.ratio, cold.requests, 100*warm.first10, 100*cold.first10)
	if warm.ratio < cold.ratio+0.02 {
		t.Errorf("warming did not help: hit ratio %.3f warmed, %.3f cold", warm.ratio, cold.ratio)
	}
}
