package edge

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/livehls"
)

// testClock is a clock a test moves by hand, shared by an edge and its
// origin (whose Date field it sets), so freshness is exact.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	// On a whole second, so the origin's Date (whole seconds) is exact.
	c.ns.Store(time.Now().Truncate(time.Second).UnixNano())
	return c
}

func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *testClock) useBy(s *Server)     { s.now = c.now }
func (c *testClock) dated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", c.now().UTC().Format(http.TimeFormat))
		h.ServeHTTP(w, r)
	})
}

// liveEdge starts a livehls origin on loopback and an edge in front of it,
// both on clock c (nil: the real clock).
func liveEdge(t *testing.T, c *testClock, o livehls.Options, cfg Config) (*livehls.Origin, *testEdge) {
	t.Helper()
	var h http.Handler
	var before []func(*Server)
	if c != nil {
		o.Now = c.now
		before = append(before, c.useBy)
	}
	g := livehls.New(o)
	h = g
	if c != nil {
		h = c.dated(g)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.Origin = srv.URL
	return g, startEdge(t, cfg, before...)
}

func TestVideoPlaylistCachedForFractionOfTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		video  config.Video
		// origin requests after GETs at 0, +0.4s, +0.9s, +1.6s, +2.1s
		want []int
		ll   bool // LL-HLS: a 4s target and a 1s part target
	}{
		{"no freshness: half the 2s target", nil, config.Video{}, []int{1, 1, 1, 2, 2}, false},
		// An LL-HLS playlist changes with every part: half the 1s part
		// target, at least 1s, not half the 4s target.
		{"LL-HLS: half the part target, at least 1s", nil, config.Video{}, []int{1, 1, 1, 2, 2}, true},
		{"max-age=0 is lengthened", http.Header{"Cache-Control": {"max-age=0"}}, config.Video{}, []int{1, 1, 1, 2, 2}, false},
		{"a longer max-age stands", http.Header{"Cache-Control": {"max-age=10"}}, config.Video{}, []int{1, 1, 1, 1, 1}, false},
		{"no-cache is obeyed", http.Header{"Cache-Control": {"no-cache"}}, config.Video{}, []int{1, 2, 3, 4, 5}, false},
		{"targeted field stands", http.Header{"Cdn-Cache-Control": {"max-age=0"}}, config.Video{}, []int{1, 2, 3, 4, 5}, false},
		{"fraction 1: the whole target", nil, config.Video{PlaylistFraction: 1}, []int{1, 1, 1, 1, 2}, false},
		{"rules off", nil, config.Video{Off: true}, []int{1, 2, 3, 4, 5}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClock()
			o := livehls.Options{PlaylistHeader: tc.header}
			if tc.ll {
				o.SegmentDuration, o.PartTarget = 4*time.Second, time.Second
			}
			g, e := liveEdge(t, c, o, Config{Video: tc.video})
			steps := []time.Duration{0, 400 * time.Millisecond, 500 * time.Millisecond, 700 * time.Millisecond, 500 * time.Millisecond}
			for i, d := range steps {
				c.add(d)
				resp, body := get(t, e.url+"/live.m3u8")
				if resp.StatusCode != 200 || !strings.Contains(body, "#EXT-X-TARGETDURATION:") {
					t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
				}
				if resp.Header.Get("Surrogate-Control") != "" {
					t.Fatalf("the edge's own Surrogate-Control reached the client")
				}
				if n := g.Count("/live.m3u8"); n != tc.want[i] {
					t.Fatalf("after GET %d: origin saw %d playlist requests, want %d (Cache-Status %q)", i, n, tc.want[i], resp.Header.Get("Cache-Status"))
				}
			}
		})
	}
}

func TestVideoSegmentsImmutable(t *testing.T) {
	c := newTestClock()
	g, e := liveEdge(t, c, livehls.Options{SegmentBytes: 1000, SegmentHeader: http.Header{"Cache-Control": {"max-age=2"}}}, Config{})
	_, body := get(t, e.url+"/seg/0.ts")
	if !bytes.Equal([]byte(body), g.Segment(0)) {
		t.Fatal("segment 0 differs from the origin's")
	}
	c.add(23 * time.Hour)
	if resp, body := get(t, e.url+"/seg/0.ts"); !bytes.Equal([]byte(body), g.Segment(0)) || !strings.HasPrefix(resp.Header.Get("Cache-Status"), "kubecdn; hit") {
		t.Fatalf("a day later: %q", resp.Header.Get("Cache-Status"))
	}
	if n := g.Count("/seg/0.ts"); n != 1 {
		t.Fatalf("origin saw %d requests for a segment, want 1", n)
	}
}

func TestVideoMissingSegmentCachedAtMostASecond(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"404 without freshness", nil},
		{"404 with a long max-age", http.Header{"Cache-Control": {"max-age=60"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClock()
			g, e := liveEdge(t, c, livehls.Options{SegmentBytes: 100, SegmentHeader: tc.header}, Config{})
			// Segment 1 is out 2s after the start: players ask early.
			for i := 0; i < 10; i++ {
				if resp, _ := get(t, e.url+"/seg/1.ts"); resp.StatusCode != 404 {
					t.Fatalf("early GET %d: %d", i, resp.StatusCode)
				}
				c.add(50 * time.Millisecond)
			}
			if n := g.Count("/seg/1.ts"); n != 1 {
				t.Fatalf("10 early GETs in 0.5s: origin saw %d, want 1", n)
			}
			c.add(1500 * time.Millisecond) // 2s after the start: published
			resp, body := get(t, e.url+"/seg/1.ts")
			if resp.StatusCode != 200 || !bytes.Equal([]byte(body), g.Segment(1)) {
				t.Fatalf("published segment: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
			}
		})
	}
}

// TestVideoRefreshStormOneOriginRequest: viewers arriving at random
// (seeded) refresh a live playlist in front of a slow origin; the edge
// asks the origin about once per rule lifetime, the playlist's refresh
// when stale included, and every viewer gets a whole playlist.
func TestVideoRefreshStormOneOriginRequest(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 14))
	g, e := liveEdge(t, nil, livehls.Options{Latency: 150 * time.Millisecond, SegmentDuration: 2 * time.Second}, Config{})
	const viewers, span = 300, 3 * time.Second
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, viewers)
	for i := 0; i < viewers; i++ {
		at := time.Duration(r.Int64N(int64(span)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(at)))
			resp, err := http.Get(e.url + "/live.m3u8")
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !strings.HasPrefix(string(b), "#EXTM3U") || !strings.HasSuffix(string(b), ".ts\n") {
				errs <- fmt.Errorf("viewer got %q (%v)", b, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The rule's 1s from each fill, each fill 150ms: at most one per
	// 1.15s of the span, and one for the start.
	took := time.Since(start)
	limit := int(took/(1150*time.Millisecond)) + 2
	if n := g.Count("/live.m3u8"); n > limit {
		t.Fatalf("%d viewers over %v: origin saw %d playlist requests, want at most %d", viewers, took, n, limit)
	}
}

// TestVideoPlaylistChangesMidFetch: the origin's playlist advances while
// one is on its way; every viewer of a fill gets that fill's whole version.
func TestVideoPlaylistChangesMidFetch(t *testing.T) {
	var version atomic.Int32
	release, started := make(chan struct{}), make(chan struct{})
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := version.Add(1)
		body := fmt.Sprintf("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXTINF:2.0,\nseg/%d.ts\n", v, v)
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body[:30])
		w.(http.Flusher).Flush()
		if v == 1 {
			close(started)
			<-release // the playlist changes upstream meanwhile
		}
		io.WriteString(w, body[30:])
	})
	e := startEdge(t, Config{Origin: origin.URL})
	const n = 50
	bodies := make(chan string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, b := get(t, e.url+"/live.m3u8")
			bodies <- b
		}()
	}
	waitCount(t, "collapsed requests", func() int { return joined(e.Server) }, n-1)
	// The viewers join the fill before it reaches the origin: change the
	// playlist only once version 1 is half sent.
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the fill did not reach the origin within 10s")
	}
	version.Add(5)
	close(release)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if !strings.Contains(b, "#EXT-X-MEDIA-SEQUENCE:1\n") || !strings.HasSuffix(b, "seg/1.ts\n") {
			t.Fatalf("viewer got %q, want version 1 whole", b)
		}
	}
	if co.n("/live.m3u8") != 1 {
		t.Fatalf("origin saw %d, want 1", co.n("/live.m3u8"))
	}
}

func TestVideoBlockingReloadsCollapsedAndBounded(t *testing.T) {
	g, e := liveEdge(t, nil, livehls.Options{SegmentDuration: 2 * time.Second, MaxBlock: 6 * time.Second}, Config{Video: config.Video{BlockingReloads: 2}})
	next := g.Live(time.Now()) + 1
	const n = 40
	var wg sync.WaitGroup
	got := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := get(t, fmt.Sprintf("%s/live.m3u8?_HLS_msn=%d", e.url, next))
			got <- fmt.Sprint(resp.StatusCode, " ", b)
		}()
	}
	wg.Wait()
	close(got)
	for b := range got {
		if !strings.HasPrefix(b, "200 ") || !strings.Contains(b, fmt.Sprintf("seg/%d.ts", next)) {
			t.Fatalf("blocking reload got %q", b)
		}
	}
	if c := g.Count(fmt.Sprintf("/live.m3u8?_HLS_msn=%d", next)); c != 1 {
		t.Fatalf("%d viewers of one blocking reload: origin saw %d, want 1", n, c)
	}
	// Distinct keys (parts of a segment 2 to 4s away): two wait at the
	// origin, the others are refused at once.
	far := g.Live(time.Now()) + 2
	codes := make(chan int, 4)
	for part := 0; part < 4; part++ {
		go func() {
			resp, _ := get(t, fmt.Sprintf("%s/live.m3u8?_HLS_msn=%d&_HLS_part=%d", e.url, far, part))
			codes <- resp.StatusCode
		}()
	}
	count := map[int]int{}
	for i := 0; i < 4; i++ {
		count[<-codes]++
	}
	if count[200] != 2 || count[503] != 2 {
		t.Fatalf("4 distinct blocking reloads with a bound of 2: %v, want two 200 and two 503", count)
	}
}

// joined counts the requests that joined a fill in flight, on either path.
func joined(s *Server) int {
	var m dto.Metric
	s.metrics.coalesced.Write(&m)
	n := int(m.GetCounter().GetValue())
	s.mu.Lock()
	for _, f := range s.fills {
		n += int(f.waiting.Load())
	}
	s.mu.Unlock()
	return n
}

// TestVideoByteRangeHLSFromSlices: players of a byte-range rendition
// (EXT-X-BYTERANGE: one file, each segment a range of it) fetch
// consecutive ranges that straddle slice boundaries; every byte matches
// and the origin is asked each slice about once, not each range.
func TestVideoByteRangeHLSFromSlices(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	const size, slice = 3<<20 + 12345, 256 << 10
	file := make([]byte, size)
	for i := range file {
		file[i] = byte(r.Uint32())
	}
	var sent atomic.Int64
	origin, co := newOrigin(t, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=5")
		http.ServeContent(countingWriter{w, &sent}, req, "v.mp4", time.Unix(1e9, 0), bytes.NewReader(file))
	})
	e := startEdge(t, Config{Origin: origin.URL, SliceBytes: slice})
	// The playlist's ranges: segments of 60 to 400 KiB, back to back.
	var ranges [][2]int
	for off := 0; off < size; {
		n := min(60<<10+r.IntN(340<<10), size-off)
		ranges = append(ranges, [2]int{off, n})
		off += n
	}
	var wg sync.WaitGroup
	for v := 0; v < 8; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, rg := range ranges {
				resp, body := get(t, e.url+"/v.mp4", "Range", fmt.Sprintf("bytes=%d-%d", rg[0], rg[0]+rg[1]-1))
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal([]byte(body), file[rg[0]:rg[0]+rg[1]]) {
					t.Errorf("range %v: %d, %d bytes, differs from the origin's", rg, resp.StatusCode, len(body))
					return
				}
			}
		}()
	}
	wg.Wait()
	slices := (size + slice - 1) / slice
	if n := co.n("/v.mp4"); n > slices {
		t.Errorf("8 players × %d ranges: origin asked %d times, want at most %d (slices)", len(ranges), n, slices)
	}
	if b := sent.Load(); b > size+slice {
		t.Errorf("origin sent %d bytes for a %d-byte file", b, size)
	}
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return w.ResponseWriter.Write(p)
}

func TestPlaylistTarget(t *testing.T) {
	for _, tc := range []struct {
		kind videoKind
		in   string
		want time.Duration
	}{
		{hlsPlaylist, "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n", 6 * time.Second},
		{hlsPlaylist, "#EXTM3U\r\n#EXT-X-TARGETDURATION: 2 \r\n", 2 * time.Second},
		{hlsPlaylist, "#EXTM3U\n#EXT-X-TARGETDURATION:2.5\n", 0}, // decimal-integer only
		{hlsPlaylist, "#EXTM3U\n#EXT-X-TARGETDURATION:99999\n", 0},
		{hlsPlaylist, "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nlo.m3u8\n", 0},
		{hlsPlaylist, "#EXT-X-TARGETDURATION:-1\n", 0},
		{hlsPlaylist, "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1.004\n", 1004 * time.Millisecond},
		{hlsPlaylist, "#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-TARGETDURATION:2\n", 500 * time.Millisecond},
		{hlsPlaylist, "#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=9\n", 2 * time.Second}, // above the target: ignored
		{hlsPlaylist, "#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=x\n", 2 * time.Second},
		{dashManifest, `<?xml version="1.0"?><MPD type="dynamic" minimumUpdatePeriod="PT2S" availabilityStartTime="x">`, 2 * time.Second},
		{dashManifest, `<MPD minimumUpdatePeriod="PT1M30.5S">`, 90500 * time.Millisecond},
		{dashManifest, `<MPD minimumUpdatePeriod="PT0H0M4S">`, 4 * time.Second},
		{dashManifest, `<MPD type="static"><Period minimumUpdatePeriod="PT2S">`, 0},
		{dashManifest, `<MPD minimumUpdatePeriod="P1D">`, 0},
		{dashManifest, `<MPD minimumUpdatePeriod="PTS">`, 0},
	} {
		if got := playlistTarget(tc.kind, []byte(tc.in)); got != tc.want {
			t.Errorf("playlistTarget(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestClassifyVideo(t *testing.T) {
	for _, tc := range []struct {
		path, ct string
		want     videoKind
	}{
		{"/live/index.m3u8", "", hlsPlaylist},
		{"/live/index", "application/vnd.apple.mpegurl", hlsPlaylist},
		{"/x", "application/x-mpegURL; charset=utf-8", hlsPlaylist},
		{"/a/manifest.MPD", "", dashManifest},
		{"/a/seg-1.m4s", "video/iso.segment", mediaSegment},
		{"/a/seg-1.ts", "text/plain", mediaSegment},
		{"/a/v.cmfv", "", mediaSegment},
		{"/index.html", "text/html", notVideo},
		{"/a.m3u8.html", "text/html", notVideo},
	} {
		if got := classifyVideo(tc.path, tc.ct); got != tc.want {
			t.Errorf("classifyVideo(%q, %q) = %v, want %v", tc.path, tc.ct, got, tc.want)
		}
	}
}

func FuzzPlaylistTarget(f *testing.F) {
	f.Add([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:6\n"), true)
	f.Add([]byte(`<MPD minimumUpdatePeriod="PT2.5S">`), false)
	f.Fuzz(func(t *testing.T, b []byte, hls bool) {
		kind := dashManifest
		if hls {
			kind = hlsPlaylist
		}
		if d := playlistTarget(kind, b); d < 0 || d > maxPlaylistTarget {
			t.Fatalf("target %v out of bounds", d)
		}
		head, err := peekTarget(bytes.NewReader(b), kind)
		if err != nil || !bytes.HasPrefix(b, head) || len(head) > playlistPeek {
			t.Fatalf("peek %d bytes of %d: %v", len(head), len(b), err)
		}
	})
}
