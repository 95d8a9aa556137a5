// Package video_test plays the demo origin's video through `kubecdn up`'s
// edges with real clients: headless Chromium (Debian's `chromium` driven
// by chromedp) plays the on-demand and the live stream through the player
// page, a seek lands where asked (the burned-in clock of the frame on
// screen against the frame ffmpeg extracts at that time), the live
// stream plays as LL-HLS and as whole segments with the latency of each
// (LL-HLS lower, under a target duration plus the part hold-back),
// viewers of one part cost the origin one request, the live URL outlives
// a killed encoder, and ffmpeg reads the live stream through an edge for
// 30 s without a gap or a decode error.
//
// The on-demand video is made once into the user cache dir
// (~/.cache/kubecdn/video) and reused. Missing ffmpeg or chromium skips
// the test unless CI=true.
package video_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/config/configtest"
	"github.com/kubecdn/kubecdn/internal/local/demo"
	"github.com/kubecdn/kubecdn/test/e2e"
)

var binPath string

func TestMain(m *testing.M) { e2e.Main(m, &binPath) }

// The CDN's hostnames: one per region's edge, so the browser can be
// pointed at either edge by name (--host-resolver-rules).
const (
	eastHost = "www.cdn.test"
	westHost = "west.cdn.test"
)

// cdn is one `kubecdn up` with the demo origin: us-east-1, and us-west-2
// whose parent is us-east-1.
type cdn struct {
	east, west, control, origin string
	up                          *e2e.UpProc
}

func startCDN(t *testing.T) *cdn {
	t.Helper()
	c := &cdn{}
	c.east = fmt.Sprintf("127.0.0.72:%d", e2e.FreePort(t, "127.0.0.72"))
	c.west = fmt.Sprintf("127.0.0.73:%d", e2e.FreePort(t, "127.0.0.73"))
	c.control, c.origin = e2e.FreeAddr(t), e2e.FreeAddr(t)
	dnsAddr, dnsAdmin := e2e.FreeAddr(t), e2e.FreeAddr(t)
	f := configtest.Minimal()
	f.Metadata.Name = "video-e2e"
	f.Spec.Zone = "cdn.test"
	f.Spec.Hostnames = []string{eastHost, westHost}
	f.Spec.Origin = config.Origin{URL: "http://" + c.origin}
	west := configtest.Region("us-west-2", "local", c.west)
	west.Parent = "us-east-1"
	f.Spec.Regions = config.Regions{AlwaysOn: []config.Region{configtest.Region("us-east-1", "local", c.east), west}}
	file := configtest.Write(t, t.TempDir(), f)
	c.up = e2e.StartUp(t, binPath, "up", "-f", file, "--demo", "--dns", dnsAddr, "--dns-admin", dnsAdmin,
		"--control", c.control, "--origin-addr", c.origin)
	c.up.WaitBanner(t, c.control)
	if strings.Contains(c.up.Stdout.String(), "video left out") {
		t.Fatalf("up left the video out:\n%s", c.up.Stdout)
	}
	// The first run in a cache dir encodes the on-demand video (about
	// 10 s of CPU); the live encoder's first segment takes 2 s.
	waitOK(t, "http://"+c.origin+demo.VODMaster, "", 3*time.Minute)
	lm := waitOK(t, "http://"+c.origin+demo.LiveMaster, "", 30*time.Second)
	media := regexp.MustCompile(`(?m)^live/.*\.m3u8$`).Find(lm)
	if media == nil {
		t.Fatalf("the live master names no media playlist:\n%s", lm)
	}
	// The master answers once the first segment is whole (2 s after the
	// encoder starts), and the media playlist it names keeps its URL
	// across encoder restarts (encoderRestart).
	waitOK(t, "http://"+c.origin+"/video/"+string(media), "", 30*time.Second)
	return c
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

func get(t *testing.T, url, host string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, b
}

// waitOK polls url until it answers 200, within d.
func waitOK(t *testing.T, url, host string, d time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, b := get(t, url, host)
		if resp.StatusCode == 200 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %s", url, resp.Status, d)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func port(hostport string) string { return hostport[strings.LastIndexByte(hostport, ':')+1:] }
func ip(hostport string) string   { return hostport[:strings.LastIndexByte(hostport, ':')] }

// playerState is window.kubecdnPlayer.
type playerState struct {
	Frags []struct {
		URL, Region, Edge, Fwd, Upstream, CacheStatus string
		Hit                                           bool
	} `json:"frags"`
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`
	Latency  *float64 `json:"latency"`
	LiveEdge *float64 `json:"liveEdge"`
}

func readState(t *testing.T, ctx context.Context) playerState {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[playerState](`window.kubecdnPlayer || {}`))
	if err != nil {
		t.Fatalf("reading the player's state: %v", err)
	}
	return s
}

func currentTime(t *testing.T, ctx context.Context) float64 {
	t.Helper()
	f, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById("video").currentTime`))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitPlaying waits (within d) until the video's time has passed at, with
// no player error on the way.
func waitPlaying(t *testing.T, ctx context.Context, at float64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if s := readState(t, ctx); len(s.Errors) > 0 {
			t.Fatalf("player errors: %v", s.Errors)
		}
		ct := currentTime(t, ctx)
		if ct > at {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("playback at %.2f s after %s, want past %.2f s", ct, d, at)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestVideoThroughTheCDN(t *testing.T) {
	ff := e2e.NeedTool(t, "ffmpeg", "ffmpeg")
	bin := e2e.Chromium(t)
	c := startCDN(t)

	// ffmpeg reads the live stream through the east edge while the
	// browser plays: 30 s of media, decoded, no error and no warning
	// (a skipped segment is a warning of ffmpeg's hls demuxer); and the
	// playlist, read through the edge, never skips a media sequence.
	var wg sync.WaitGroup
	var ffErr, ffOut string
	var ffRunErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, ff, "-nostdin", "-v", "warning", "-headers", "Host: "+eastHost+"\r\n",
			"-i", "http://"+c.east+demo.LiveMaster, "-t", "30", "-f", "null", "-progress", "pipe:1", "-nostats", "-")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		ffRunErr = cmd.Run()
		ffOut, ffErr = stdout.String(), stderr.String()
	}()
	seqDone := make(chan []string, 1)
	go func() { seqDone <- followSequence(c, 35*time.Second) }()

	ctx := e2e.StartBrowser(t, bin,
		chromedp.Flag("host-resolver-rules", fmt.Sprintf("MAP %s %s, MAP %s %s", eastHost, ip(c.east), westHost, ip(c.west))),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()

	eastURL := "http://" + eastHost + ":" + port(c.east) + demo.VideoPage
	westURL := "http://" + westHost + ":" + port(c.west) + demo.VideoPage

	t.Run("vod", func(t *testing.T) {
		top := len(demo.VODRungs) - 1
		if err := chromedp.Do(ctx, chromedp.Navigate(eastURL+"?src=vod&level="+strconv.Itoa(top))); err != nil {
			t.Fatal(err)
		}
		waitPlaying(t, ctx, 3, 60*time.Second)
		s := readState(t, ctx)
		if len(s.Frags) == 0 {
			t.Fatal("no segment rows")
		}
		for _, f := range s.Frags {
			if f.Region != "us-east-1" {
				t.Fatalf("segment %s: region %q (Cache-Status %q), want us-east-1", f.URL, f.Region, f.CacheStatus)
			}
		}
		checkSeek(t, ctx, c, 13.36)
	})

	t.Run("vod-west-byterange", func(t *testing.T) {
		// West misses go to its parent first: each row names both.
		if err := chromedp.Do(ctx, chromedp.Navigate(westURL+"?src=single&level=0")); err != nil {
			t.Fatal(err)
		}
		waitPlaying(t, ctx, 4, 60*time.Second)
		s := readState(t, ctx)
		if len(s.Frags) == 0 {
			t.Fatal("no segment rows")
		}
		seen := map[string]bool{}
		for _, f := range s.Frags {
			if f.Region != "us-west-2" || !strings.Contains(f.Upstream, "us-east-1") || !strings.Contains(f.URL, "@") {
				t.Fatalf("byte-range segment via west: %+v; want region us-west-2, upstream us-east-1, a byte range", f)
			}
			seen[f.URL] = true
		}
		// Another viewer (a browser context of its own, so its own HTTP
		// cache): what the first fetched is now a hit of west.
		vctx, vcancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
		defer vcancel()
		if err := chromedp.Do(vctx, chromedp.Navigate(westURL+"?src=single&level=0")); err != nil {
			t.Fatal(err)
		}
		waitPlaying(t, vctx, 2, 60*time.Second)
		hits := 0
		for _, f := range readState(t, vctx).Frags {
			if !seen[f.URL] {
				continue
			}
			if !f.Hit || f.Region != "us-west-2" {
				t.Fatalf("second viewer's %s: %q, want a hit of us-west-2", f.URL, f.CacheStatus)
			}
			hits++
		}
		if hits < 2 {
			t.Fatalf("second viewer got %d of the first viewer's segments", hits)
		}
	})

	// Live, low-latency (LL-HLS parts and blocking reloads) and then as
	// whole segments, as a player without LL-HLS plays it: the latency
	// of each, from capture (the encoder's clock in the playlist's
	// program date-time) to the screen.
	medians := map[bool]float64{}
	for _, ll := range []bool{true, false} {
		name := map[bool]string{true: "live-ll", false: "live-plain"}[ll]
		t.Run(name, func(t *testing.T) { medians[ll] = playLive(t, ctx, eastURL, ll) })
	}
	// LL: PART-HOLD-BACK (1.62 s) behind the playlist's end, which is at
	// most a part (0.54 s) behind the capture: under a target duration
	// (2 s) plus the part hold-back. Whole segments: 3 s behind the end,
	// which is up to a segment behind the capture.
	if ll, plain := medians[true], medians[false]; ll > 0 && plain > 0 {
		t.Logf("live latency from capture to screen, median: LL-HLS %.2f s, whole segments %.2f s", ll, plain)
		if ll > 2+1.62 || ll >= plain {
			t.Errorf("LL-HLS latency %.2f s: want under 3.62 s and under whole segments' %.2f s", ll, plain)
		}
	}

	t.Run("parts-collapsed", func(t *testing.T) { partsCollapsed(t, c) })

	wg.Wait()
	ffErr = dropKnownNotices(ffErr)
	if ffRunErr != nil || strings.TrimSpace(ffErr) != "" {
		t.Errorf("ffmpeg reading the live stream through the edge: %v\n%s", ffRunErr, ffErr)
	}
	if m := regexp.MustCompile(`(?m)^out_time_us=(\d+)$`).FindAllStringSubmatch(ffOut, -1); len(m) == 0 {
		t.Errorf("ffmpeg reported no progress:\n%s", ffOut)
	} else if us, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64); us < 29_500_000 {
		t.Errorf("ffmpeg decoded %.2f s of the live stream, want 30", float64(us)/1e6)
	}
	if gaps := <-seqDone; len(gaps) > 0 {
		t.Errorf("the live playlist through the edge: %s", strings.Join(gaps, "; "))
	}

	t.Run("encoder-restart", func(t *testing.T) { encoderRestart(t, ctx, c, eastURL) })

	// Ctrl-C stops up's ffmpeg too.
	encoders := e2e.Children(c.up.Cmd.Process.Pid, "ffmpeg")
	if len(encoders) == 0 {
		t.Errorf("no ffmpeg child of up's while the live stream ran")
	}
	c.up.Stop(t)
	for _, pid := range encoders {
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "ffmpeg" {
			t.Errorf("ffmpeg %d still runs after up stopped", pid)
		}
	}
}

// followSequence reads the live media playlist through the east edge
// every 500 ms for d and reports every gap: a playlist whose first
// segment lies past the last one seen (a segment nobody could fetch), or a
// media sequence that went back.
func followSequence(c *cdn, d time.Duration) []string {
	var gaps []string
	seqRe := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	get := func(path string) (string, error) {
		req, _ := http.NewRequest("GET", "http://"+c.east+path, nil)
		req.Host = eastHost
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("%s: %s", path, resp.Status)
		}
		return string(b), err
	}
	master, err := get(demo.LiveMaster)
	if err != nil {
		return []string{err.Error()}
	}
	var media string
	for _, l := range strings.Split(master, "\n") {
		if strings.HasSuffix(l, ".m3u8") {
			media = "/video/" + l
		}
	}
	if media == "" {
		return []string{"the live master names no playlist"}
	}
	first, last := -1, -1
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		pl, err := get(media)
		if err != nil {
			gaps = append(gaps, err.Error())
			continue
		}
		m := seqRe.FindStringSubmatch(pl)
		if m == nil {
			gaps = append(gaps, "a playlist without EXT-X-MEDIA-SEQUENCE")
			continue
		}
		seq, _ := strconv.Atoi(m[1])
		n := strings.Count(pl, "#EXTINF:")
		switch {
		case first >= 0 && seq < first:
			gaps = append(gaps, fmt.Sprintf("media sequence went back from %d to %d", first, seq))
		case last >= 0 && seq > last+1:
			gaps = append(gaps, fmt.Sprintf("segments %d..%d never listed", last+1, seq-1))
		}
		first, last = seq, max(last, seq+n-1)
	}
	if last-first < 0 {
		gaps = append(gaps, "the playlist never advanced")
	}
	return gaps
}

// checkSeek pauses the player, seeks to at, and compares the clock of the
// frame on screen (the video drawn to a canvas at its own size) with the
// frames ffmpeg extracts from the same rung through the edge around at: it
// must match one within 0.2 s (the rung's first frame is at 0.08 s, which
// players and ffmpeg count differently), and must not match the frame a
// second later.
func checkSeek(t *testing.T, ctx context.Context, c *cdn, at float64) {
	t.Helper()
	js := fmt.Sprintf(`new Promise(function (ok) {
		var v = document.getElementById("video");
		v.pause();
		v.addEventListener("seeked", function () {
			requestAnimationFrame(function () { requestAnimationFrame(function () { ok(window.kubecdnHls.currentLevel); }); });
		}, {once: true});
		v.currentTime = %g;
	})`, at)
	level, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("seeking: %v", err)
	}
	dataURL, err := chromedp.Run(ctx, chromedp.Evaluate[string](`kubecdnGrabFrame()`))
	if err != nil {
		t.Fatal(err)
	}
	shot := decodeDataURL(t, dataURL)
	dir := t.TempDir()
	if d := os.Getenv("KUBECDN_SCREENSHOT_DIR"); d != "" {
		dir = d
	}
	writePNG(t, filepath.Join(dir, "video-seek-browser.png"), shot)
	rung := demo.VODRungs[level].Name
	if b := shot.Bounds(); fmt.Sprintf("%dx%d", b.Dx(), b.Dy()) != demo.VODRungs[level].Size {
		t.Fatalf("the frame on screen is %v, rung %s is %s", b, rung, demo.VODRungs[level].Size)
	}
	url := "http://" + c.east + "/video/vod/" + rung + "/index.m3u8"
	frames := extractFrames(t, url, at-0.2, 10)
	later := extractFrames(t, url, at+1, 1)
	// Inside the clock's black box (at 854x480: x 12..543, y 12..85).
	w, h := shot.Bounds().Dx(), shot.Bounds().Dy()
	clock := image.Rect(w*20/854, h*16/480, w*535/854, h*82/480)
	best, bestI := 1.0, -1
	for i, f := range frames {
		if d := clockDiff(shot, f, clock); d < best {
			best, bestI = d, i
		}
	}
	off := clockDiff(shot, later[0], clock)
	t.Logf("seek to %.2f s on %s: clock differs by %.2f%% from ffmpeg's frame %d of those from %.2f s, by %.2f%% from the frame a second later",
		at, rung, 100*best, bestI, at-0.2, 100*off)
	if best > 0.03 {
		writePNG(t, filepath.Join(dir, "video-seek-ffmpeg.png"), frames[len(frames)/2])
		t.Fatalf("the clock on screen matches no frame within 0.2 s of %.2f s (best differs by %.1f%%); pictures in %s", at, 100*best, dir)
	}
	if off < 3*max(best, 0.02) {
		t.Fatalf("the comparison does not tell frames apart: a second later differs by only %.2f%%", 100*off)
	}
}

// extractFrames has ffmpeg read url through the east edge and return n
// frames from at on (decoded from the start: ffmpeg 5.1 cannot seek in an
// fMP4 HLS input).
func extractFrames(t *testing.T, url string, at float64, n int) []image.Image {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-headers", "Host: "+eastHost+"\r\n",
		"-i", url, "-ss", strconv.FormatFloat(at, 'f', 3, 64), "-frames:v", strconv.Itoa(n),
		filepath.Join(dir, "f%02d.png")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg extracting frames at %.2f s of %s: %v\n%s", at, url, err, out)
	}
	var imgs []image.Image
	for i := 1; i <= n; i++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%02d.png", i)))
		if err != nil {
			t.Fatalf("ffmpeg wrote %d of %d frames: %v", i-1, n, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	return imgs
}

func decodeDataURL(t *testing.T, s string) image.Image {
	t.Helper()
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(s, prefix) {
		t.Fatalf("the page gave no PNG: %.60q", s)
	}
	b, err := base64.StdEncoding.DecodeString(s[len(prefix):])
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// clockDiff compares the white pixels (the clock's digits on its black
// box) of a and b inside r: the share of pixels white in one and not the
// other among those white in either (0: the same digits). Thresholding
// makes it blind to the two decoders' colour conversions.
func clockDiff(a, b image.Image, r image.Rectangle) float64 {
	white := func(img image.Image, x, y int) bool {
		cr, cg, cb, _ := img.At(img.Bounds().Min.X+x, img.Bounds().Min.Y+y).RGBA()
		return (299*cr+587*cg+114*cb)/1000 > 0x8000
	}
	var either, differ int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			wa, wb := white(a, x, y), white(b, x, y)
			if wa || wb {
				either++
			}
			if wa != wb {
				differ++
			}
		}
	}
	if either == 0 {
		return 1
	}
	return float64(differ) / float64(either)
}

// dropKnownNotices removes the one warning ffmpeg 5.1's hls demuxer gives
// on every fMP4 live playlist reload (it feeds the init segment again:
// "Found duplicated MOOV Atom. Skipped it"), which is neither a gap nor a
// decode error.
func dropKnownNotices(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "Found duplicated MOOV Atom. Skipped it") || strings.Contains(l, "Last message repeated") || strings.TrimSpace(l) == "" {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// playLive plays the live stream through the east edge for 12 s, LL-HLS
// or whole segments, and returns the median latency from capture to
// screen once settled (after 4 s). Playback time advances with the wall
// clock, and the latency stays within three segments of the playlist's
// end and four of the capture.
func playLive(t *testing.T, ctx context.Context, eastURL string, ll bool) float64 {
	url := eastURL + "?src=live"
	if !ll {
		url += "&ll=0"
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitPlaying(t, ctx, 0.5, 30*time.Second)
	begin := time.Now()
	deadline := begin.Add(12 * time.Second)
	var worstEdge, worstCapture, settled float64
	var settledAt time.Time
	var samples []string
	var lat []float64
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		s := readState(t, ctx)
		if len(s.Errors) > 0 {
			t.Fatalf("player errors: %v", s.Errors)
		}
		if s.Latency == nil || s.LiveEdge == nil {
			continue
		}
		samples = append(samples, fmt.Sprintf("%.1f/%.1f", *s.Latency, *s.LiveEdge))
		if settled == 0 && time.Since(begin) > 4*time.Second {
			settled, settledAt = currentTime(t, ctx), time.Now()
		}
		if settled > 0 {
			worstCapture, worstEdge = max(worstCapture, *s.Latency), max(worstEdge, *s.LiveEdge)
			lat = append(lat, *s.Latency)
		}
	}
	t.Logf("live latency each 0.5 s (capture to screen / behind the playlist's end): %s", strings.Join(samples, " "))
	if worstEdge > 3*2 || worstCapture > 4*2 {
		t.Fatalf("live latency reached %.2f s behind the playlist's end (want at most three 2 s segments), %.2f s from capture (want at most four)", worstEdge, worstCapture)
	}
	advanced, took := currentTime(t, ctx)-settled, time.Since(settledAt).Seconds()
	if advanced < 0.7*took {
		t.Fatalf("live playback advanced %.2f s in %.2f s", advanced, took)
	}
	s := readState(t, ctx)
	parts := 0
	for _, f := range s.Frags {
		if strings.Contains(f.URL, "/part-") {
			parts++
		}
		// Each row, part or segment, names the edge that served it.
		if f.Region != "us-east-1" {
			t.Fatalf("%s: region %q (Cache-Status %q), want us-east-1", f.URL, f.Region, f.CacheStatus)
		}
	}
	if ll != (parts > 0) {
		t.Fatalf("LL-HLS %v, but the player fetched %d parts", ll, parts)
	}
	if len(lat) == 0 {
		t.Fatal("no latency once settled")
	}
	slices.Sort(lat)
	med := lat[len(lat)/2]
	t.Logf("live (LL-HLS %v): advanced %.2f s in %.2f s once settled; latency median %.2f s from capture, at most %.2f s, at most %.2f s behind the playlist's end; %d segments and %d parts fetched; warnings %v",
		ll, advanced, took, med, worstCapture, worstEdge, len(s.Frags)-parts, parts, s.Warnings)
	return med
}

// partsCollapsed has eight viewers ask the east edge at once for the
// next part (the playlist's preload hint, which the origin holds until it
// exists) and then for the playlist holding the part after it (a blocking
// reload): each answered whole, and one of the eight requests, or none,
// went upstream each time (Cache-Status without "collapsed" and with fwd).
func partsCollapsed(t *testing.T, c *cdn) {
	base := "http://" + c.east + "/video/live/"
	_, pl := get(t, base+"index.m3u8", eastHost)
	m := regexp.MustCompile(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-(\d+)\.(\d+)\.m4s"`).FindStringSubmatch(string(pl))
	if m == nil {
		t.Fatalf("no preload hint:\n%s", pl)
	}
	msn, _ := strconv.Atoi(m[1])
	part, _ := strconv.Atoi(m[2])
	for _, path := range []string{
		fmt.Sprintf("part-%d.%d.m4s", msn, part),
		fmt.Sprintf("index.m3u8?_HLS_msn=%d&_HLS_part=%d", msn, part+1),
	} {
		const n = 8
		type answer struct {
			status int
			body   []byte
			cs     string
		}
		answers := make(chan answer, n)
		for range n {
			go func() { // errors come back as status 0 (t.Fatal is for the test's goroutine)
				req, _ := http.NewRequest("GET", base+path, nil)
				req.Host = eastHost
				resp, err := client.Do(req)
				if err != nil {
					answers <- answer{0, []byte(err.Error()), ""}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answers <- answer{resp.StatusCode, b, resp.Header.Get("Cache-Status")}
			}()
		}
		upstream := 0
		var first []byte
		for range n {
			a := <-answers
			if a.status != 200 || len(a.body) == 0 {
				t.Fatalf("%s: %d, %d bytes %.80q", path, a.status, len(a.body), a.body)
			}
			if first == nil {
				first = a.body
			}
			if !bytes.Equal(a.body, first) {
				t.Fatalf("%s: viewers got different bodies", path)
			}
			if strings.Contains(a.cs, "fwd=") && !strings.Contains(a.cs, "collapsed") {
				upstream++
			}
		}
		t.Logf("%d viewers of %s at once: %d origin request(s)", n, path, upstream)
		if upstream > 1 {
			t.Errorf("%d viewers of %s: %d went to the origin, want at most 1", n, path, upstream)
		}
	}
}

// encoderRestart kills up's live encoder (its process group) while the
// browser plays the live stream: the playlist through the edge answers
// 200 throughout, goes on after a discontinuity with a new init segment,
// and the player goes on playing without a fatal error.
func encoderRestart(t *testing.T, ctx context.Context, c *cdn, eastURL string) {
	if err := chromedp.Do(ctx, chromedp.Navigate(eastURL+"?src=live")); err != nil {
		t.Fatal(err)
	}
	waitPlaying(t, ctx, 1, 30*time.Second)
	encoders := e2e.Children(c.up.Cmd.Process.Pid, "ffmpeg")
	if len(encoders) != 1 {
		t.Fatalf("up's ffmpeg: %v, want the one live encoder", encoders)
	}
	if err := syscall.Kill(-encoders[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	media := "http://" + c.east + demo.LiveMedia
	seqRe := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	last := -1
	for {
		resp, b := get(t, media, eastHost)
		if resp.StatusCode != 200 {
			t.Fatalf("the live playlist %.1f s after the encoder was killed: %s", time.Since(killed).Seconds(), resp.Status)
		}
		seq, _ := strconv.Atoi(seqRe.FindStringSubmatch(string(b))[1])
		if seq < last {
			t.Fatalf("media sequence went back from %d to %d", last, seq)
		}
		last = seq
		pl := string(b)
		if i := strings.Index(pl, "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:"); i >= 0 && strings.Contains(pl[i:], "#EXTINF:") {
			t.Logf("%.1f s after the encoder was killed, a whole segment of the new run is listed after a discontinuity", time.Since(killed).Seconds())
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("no discontinuity with a segment after it within 20 s:\n%s", pl)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The player crosses the discontinuity.
	at := currentTime(t, ctx)
	waitPlaying(t, ctx, at+3, 20*time.Second)
	s := readState(t, ctx)
	t.Logf("the player went on from %.2f s to %.2f s across the restart; warnings %v", at, currentTime(t, ctx), s.Warnings)
}
