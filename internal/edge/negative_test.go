package edge

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A live player asks for a media playlist before the encoder has written
// it: the origin answers 404 (cached briefly) until some time T, then 200.
// The edge must serve the 200 within the 404's lifetime plus a small bound,
// whatever the 404 carries, however many clients poll, on every serving
// tier, and through a parent edge as `kubecdn up`'s us-west-2 → us-east-1.

// appearingOrigin answers 404 with hdr404 until it is told the resource
// exists, then a live playlist (max-age=1, a content ETag).
type appearingOrigin struct {
	url    string
	hdr404 http.Header
	since  atomic.Int64 // Unix ns the 200 began; 0 before
	n404   atomic.Int64
	n200   atomic.Int64
}

const appearingPlaylist = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000,\nseg0.m4s\n"

func newAppearingOrigin(t *testing.T, hdr404 http.Header) *appearingOrigin {
	t.Helper()
	o := &appearingOrigin{hdr404: hdr404}
	srv, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if o.since.Load() == 0 {
			o.n404.Add(1)
			for k, v := range o.hdr404 {
				h[k] = v
			}
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		o.n200.Add(1)
		h.Set("Content-Type", "application/vnd.apple.mpegurl")
		h.Set("Cache-Control", "public, max-age=1")
		h.Set("ETag", `"pl-0"`)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(appearingPlaylist))
	})
	o.url = srv.URL
	return o
}

func (o *appearingOrigin) appear() { o.since.Store(time.Now().UnixNano()) }

// pollUntil200 polls url (one connection, kept alive) with method and hdr
// every 20..150 ms (from rng) until a 200 with the playlist (a HEAD: a 200
// of its length), or until deadline; it returns when it first saw it
// (zero if never) and the last status and Cache-Status seen.
func pollUntil200(url, method string, hdr http.Header, rng *rand.Rand, deadline time.Time) (time.Time, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	last := "no answer"
	for time.Now().Before(deadline) {
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			return time.Time{}, err.Error()
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d (Cache-Status %q, Cache-Control %q, Age %q)", resp.StatusCode, resp.Header.Get("Cache-Status"), resp.Header.Get("Cache-Control"), resp.Header.Get("Age"))
			ok := (resp.StatusCode == 200 || resp.StatusCode == 206) && (string(b) == appearingPlaylist || method == http.MethodHead && resp.ContentLength == int64(len(appearingPlaylist)))
			if ok {
				return time.Now(), last
			}
			if resp.StatusCode != 404 {
				return time.Time{}, "unexpected " + last
			}
		}
		time.Sleep(time.Duration(20+rng.IntN(130)) * time.Millisecond)
	}
	return time.Time{}, last
}

// appearBound is how long after the origin's 200 begins every poller must
// have it: the 404's 1 s lifetime (its Date is truncated to the second,
// so up to 2 s from the edge's clock) and a poll interval, with slack.
const appearBound = 3 * time.Second

func TestMissingPlaylistAppearsWithinItsLifetime(t *testing.T) {
	type tier int
	const (
		uringTier tier = iota
		fastTier
		netHTTPTier
	)
	tierNames := map[tier]string{uringTier: "io_uring", fastTier: "fastpath", netHTTPTier: "net/http"}
	headers := []struct {
		name string
		h    http.Header
	}{
		{"max-age=1", http.Header{"Cache-Control": {"public, max-age=1"}}},
		{"no Cache-Control", nil},
		{"max-age=1 ETag", http.Header{"Cache-Control": {"max-age=1"}, "Etag": {`"nf"`}}},
		{"Last-Modified only", http.Header{"Last-Modified": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}},
		{"max-age=1 ETag Last-Modified", http.Header{"Cache-Control": {"max-age=1"}, "Etag": {`"nf"`}, "Last-Modified": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}},
	}
	methods := []struct {
		name   string
		method string
		hdr    http.Header
	}{
		{"GET", http.MethodGet, nil},
		{"HEAD", http.MethodHead, nil},
		{"conditional GET", http.MethodGet, http.Header{"If-None-Match": {`"nf"`}}},
		// As ffmpeg's HTTP client asks.
		{"ranged GET", http.MethodGet, http.Header{"Range": {"bytes=0-"}, "Icy-Metadata": {"1"}, "User-Agent": {"Lavf/61.7.100"}}},
		// As Chromium's XHR (hls.js) asks.
		{"browser GET", http.MethodGet, http.Header{"Accept": {"*/*"}, "Accept-Encoding": {"gzip, deflate, br, zstd"}, "Origin": {"http://www.cdn.test"}, "Sec-Fetch-Mode": {"cors"}}},
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 14))
	for _, parent := range []bool{false, true} {
		for tr := uringTier; tr <= netHTTPTier; tr++ {
			// Every 404 and every way of asking on each tier and topology,
			// paired by the seed (the whole product takes minutes).
			off := rng.IntN(len(methods))
			for i, hv := range headers {
				m := methods[(i+off)%len(methods)]
				pollers := []int{1, 3, 20, 200}[rng.IntN(4)]
				caseSeed := rng.Uint64()
				name := fmt.Sprintf("%s/%s/%s/parent=%v/%d pollers", tierNames[tr], hv.name, m.name, parent, pollers)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					o := newAppearingOrigin(t, hv.h)
					cfg := Config{Origin: o.url}
					if tr != uringTier {
						cfg.IOUring = IOUringOff
					}
					if parent {
						p := startEdge(t, Config{Origin: o.url, Name: "parent"})
						cfg.Parent = p.url
					}
					e := startEdge(t, cfg)
					if tr == uringTier && e.uring.Load() == nil {
						t.Skip("io_uring is not available here")
					}
					hdr := m.hdr.Clone()
					if tr == netHTTPTier && hdr == nil {
						// Outside the fast parser's subset, harmless to a GET.
						hdr = http.Header{"Max-Forwards": {"10"}}
					}
					appearAt := time.Now().Add(700 * time.Millisecond)
					deadline := appearAt.Add(appearBound)
					type result struct {
						at   time.Time
						last string
					}
					res := make([]result, pollers)
					var wg sync.WaitGroup
					prng := rand.New(rand.NewPCG(caseSeed, 0))
					for i := range pollers {
						r := rand.New(rand.NewPCG(prng.Uint64(), uint64(i)))
						wg.Add(1)
						go func() {
							defer wg.Done()
							time.Sleep(time.Duration(r.IntN(200)) * time.Millisecond)
							res[i].at, res[i].last = pollUntil200(e.url+"/live/run/index.m3u8", m.method, hdr, r, deadline)
						}()
					}
					time.Sleep(time.Until(appearAt))
					o.appear()
					wg.Wait()
					var late []string
					for i, r := range res {
						if r.at.IsZero() {
							late = append(late, fmt.Sprintf("poller %d: last %s", i, r.last))
						}
					}
					if len(late) > 0 {
						t.Fatalf("%d of %d pollers still without the playlist %s after the origin served it (origin: %d 404s, %d 200s):\n%s",
							len(late), pollers, appearBound, o.n404.Load(), o.n200.Load(), strings.Join(late[:min(len(late), 5)], "\n"))
					}
				})
			}
		}
	}
}
