package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubecdn/kubecdn/test/e2e"
)

// needFFmpeg returns ffmpeg's path; without it the test is skipped (CI
// installs it: test/all.sh).
func needFFmpeg(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg not found and CI=true")
		}
		t.Skip("ffmpeg not found (apt-get install ffmpeg)")
	}
	if _, err := os.Stat(defaultFont); err != nil {
		t.Skip("font not found (apt-get install fonts-dejavu-core)")
	}
	return p
}

func fetch(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// waitFor polls url until it answers 200, within d.
func waitFor(t *testing.T, url string, d time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, b := fetch(t, url)
		if resp.StatusCode == 200 {
			return b
		}
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %s", url, resp.Status, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestVideoServes runs the real ffmpeg: a short on-demand video into a
// temporary cache folder, and the live encoder; every kind of file comes
// with its type and caching, the byte-range file answers ranges, the live
// playlist slides, and ffmpeg is gone once Run returns.
func TestVideoServes(t *testing.T) {
	ff := needFFmpeg(t)
	v := NewVideo(VideoOptions{FFmpeg: ff, CacheDir: t.TempDir(), VODSeconds: 4, LiveWindow: 3})
	if v.Reason() != "" {
		t.Fatal(v.Reason())
	}
	h, err := New(Options{LargeSize: 1 << 20, Video: v})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// Before Run: nothing yet, and said so without caching.
	resp, _ := fetch(t, srv.URL+VODMaster)
	if resp.StatusCode != 503 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("before Run: %s %q, want 503 no-store", resp.Status, resp.Header.Get("Cache-Control"))
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	master := string(waitFor(t, srv.URL+VODMaster, 90*time.Second))
	for _, r := range VODRungs {
		if !strings.Contains(master, r.Name+"/index.m3u8") || !strings.Contains(master, "RESOLUTION="+r.Size) {
			t.Errorf("master lacks %s:\n%s", r.Name, master)
		}
	}
	_, rung := fetch(t, srv.URL+"/video/vod/480p/index.m3u8")
	initM := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindSubmatch(rung)
	if initM == nil {
		t.Fatalf("480p playlist has no EXT-X-MAP:\n%s", rung)
	}
	checks := []struct {
		path, rng, ctype, cache string
		status                  int
	}{
		{VODMaster, "", "application/vnd.apple.mpegurl", "public, max-age=60", 200},
		{"/video/vod/480p/index.m3u8", "", "application/vnd.apple.mpegurl", "public, max-age=60", 200},
		{"/video/vod/480p/000.m4s", "", "video/iso.segment", immutable, 200},
		{"/video/vod/480p/" + string(initM[1]), "", "video/mp4", immutable, 200},
		{VODSingle, "", "application/vnd.apple.mpegurl", "public, max-age=60", 200},
		{"/video/vod/single/480p.m4s", "bytes=0-99", "video/iso.segment", immutable, 206},
		{VODMP4, "bytes=100-199", "video/mp4", immutable, 206},
		{"/video/vod/480p/999.m4s", "", "", "public, max-age=1", 404},
		{"/video/vod/../demo.go", "", "", "", 404},
		{VideoPage, "", "text/html; charset=utf-8", "public, max-age=60", 200},
		{"/video/hls.light.min.js", "", "text/javascript; charset=utf-8", "public, max-age=86400", 200},
	}
	for _, c := range checks {
		resp, body := fetch(t, srv.URL+c.path, "Range", c.rng)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %s, want %d", c.path, resp.Status, c.status)
			continue
		}
		if c.ctype != "" && resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, resp.Header.Get("Content-Type"), c.ctype)
		}
		if c.cache != "" && resp.Header.Get("Cache-Control") != c.cache {
			t.Errorf("%s: Cache-Control %q, want %q", c.path, resp.Header.Get("Cache-Control"), c.cache)
		}
		if c.status == 206 && len(body) != 100 {
			t.Errorf("%s: %d bytes for a 100-byte range", c.path, len(body))
		}
	}
	_, single := fetch(t, srv.URL+"/video/vod/single/480p.m3u8")
	if !strings.Contains(string(single), "#EXT-X-BYTERANGE:") {
		t.Errorf("single-file playlist has no EXT-X-BYTERANGE:\n%s", single)
	}

	// Live: the master names the one media playlist, an LL-HLS one.
	lm := string(waitFor(t, srv.URL+LiveMaster, 30*time.Second))
	if !strings.Contains(lm, "\nlive/index.m3u8\n") {
		t.Fatalf("live master does not name live/index.m3u8:\n%s", lm)
	}
	media := srv.URL + LiveMedia
	resp, b := fetch(t, media)
	pl := string(b)
	for _, tag := range []string{"#EXT-X-PART-INF:PART-TARGET=", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=", "#EXT-X-MEDIA-SEQUENCE:", "#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-MAP:URI=", ",INDEPENDENT=YES", "#EXT-X-PRELOAD-HINT:TYPE=PART,URI="} {
		if !strings.Contains(pl, tag) {
			t.Fatalf("live playlist lacks %s:\n%s", tag, pl)
		}
	}
	if got := resp.Header.Get("Cache-Control"); got != "public, max-age=1" || resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") != "" {
		t.Fatalf("live playlist Cache-Control %q ETag %q Last-Modified %q", got, resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"))
	}
	hint := regexp.MustCompile(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-(\d+)\.(\d+)\.m4s"`).FindStringSubmatch(pl)
	msn, _ := strconv.ParseInt(hint[1], 10, 64)
	part, _ := strconv.Atoi(hint[2])

	// A blocking reload for the hinted part waits for it (under a part
	// target or so), and the answer lists it.
	start := time.Now()
	resp, b = fetch(t, fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", media, msn, part))
	held := time.Since(start)
	// The newest part's program date-time (the encoder's clock at its
	// first frame) plus its duration is when its capture ended: not
	// after now, when it is already served, and not long before.
	v.live.mu.Lock()
	g := v.live.segs[len(v.live.segs)-1]
	captureEnd := g.pdt.Add(time.Duration(g.dur * float64(time.Second)))
	v.live.mu.Unlock()
	if d := time.Since(captureEnd); d < -20*time.Millisecond || d > time.Second {
		t.Fatalf("the newest part's capture ended %s before it was served; want 0 to 1 s", d)
	}
	t.Logf("the newest part's capture ended %s before it was served", time.Since(captureEnd).Round(time.Millisecond))
	if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`URI="part-%d.%d.m4s"`, msn, part)) && !strings.Contains(string(b), fmt.Sprintf("part-%d.0.m4s", msn+1)) {
		t.Fatalf("blocking reload for part %d.%d: %s after %s:\n%s", msn, part, resp.Status, held, b)
	}
	if held > 2*time.Second {
		t.Fatalf("blocking reload for the next part took %s", held)
	}
	t.Logf("a blocking reload for the next part was held %s", held.Round(time.Millisecond))
	// Too far ahead: 400 at once (RFC 8216bis 6.2.5.2); garbage: 400.
	for _, q := range []string{fmt.Sprintf("_HLS_msn=%d", msn+4), "_HLS_msn=x", "_HLS_part=1"} {
		start := time.Now()
		if resp, _ := fetch(t, media+"?"+q); resp.StatusCode != 400 || time.Since(start) > time.Second {
			t.Fatalf("?%s: %s after %s, want 400 at once", q, resp.Status, time.Since(start))
		}
	}
	// The next hinted part is waited for, then served as immutable media.
	_, b = fetch(t, media)
	hint = regexp.MustCompile(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(part-\d+\.\d+\.m4s)"`).FindStringSubmatch(string(b))
	resp, b = fetch(t, srv.URL+livePrefix+hint[1])
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/iso.segment" || resp.Header.Get("Cache-Control") != immutable || !bytes.Contains(b[:min(len(b), 16)], []byte("moof")) {
		t.Fatalf("hinted part %s: %s %q %q", hint[1], resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	seg := regexp.MustCompile(`(?m)^seg-\d+\.m4s$`).FindString(pl)
	initURI := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(pl)[1]
	for _, name := range []string{seg, initURI} {
		if resp, _ := fetch(t, srv.URL+livePrefix+name); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != immutable {
			t.Fatalf("%s: %s %q", name, resp.Status, resp.Header.Get("Cache-Control"))
		}
	}
	for _, name := range []string{"seg-1.m4s", "part-1.0.m4s", "init-zz.mp4", "part-x.m4s", "index2.m3u8"} {
		if resp, _ := fetch(t, srv.URL+livePrefix+name); resp.StatusCode != 404 {
			t.Fatalf("%s: %s, want 404", name, resp.Status)
		}
	}

	// Kill the live encoder (its own process group): up starts another,
	// and the same playlist goes on, never failing, after a
	// discontinuity with the new run's init segment, its media sequence
	// going on.
	encoders := e2e.Children(os.Getpid(), "ffmpeg")
	if len(encoders) != 1 {
		t.Fatalf("live encoders running: %v, want one", encoders)
	}
	if err := syscall.Kill(-encoders[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	seqRe := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	lastSeq := int64(-1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, b := fetch(t, media)
		if resp.StatusCode != 200 {
			t.Fatalf("live playlist after the encoder was killed: %s %s", resp.Status, b)
		}
		m := seqRe.FindStringSubmatch(string(b))
		n, _ := strconv.ParseInt(m[1], 10, 64)
		if n < lastSeq {
			t.Fatalf("media sequence went back from %d to %d", lastSeq, n)
		}
		lastSeq = n
		if maps := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindAllStringSubmatch(string(b), -1); strings.Contains(string(b), "#EXT-X-DISCONTINUITY\n") &&
			len(maps) == 2 && maps[0][1] == initURI && strings.Contains(string(b[strings.LastIndex(string(b), "#EXT-X-MAP"):]), "#EXTINF") {
			if resp, _ := fetch(t, srv.URL+livePrefix+maps[1][1]); resp.StatusCode != 200 {
				t.Fatalf("the new run's init segment %s: %s", maps[1][1], resp.Status)
			}
			t.Logf("after the encoder was killed:\n%s", b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no discontinuity with a new init segment within 20 s of killing the encoder:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Stop: no ffmpeg of this test's is left.
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context's end")
	}
	if pids := e2e.Children(os.Getpid(), "ffmpeg"); len(pids) > 0 {
		t.Fatalf("ffmpeg still running after Run returned: %v", pids)
	}
}

func TestVideoOffWithoutFFmpeg(t *testing.T) {
	if v := NewVideo(VideoOptions{CacheDir: t.TempDir(), Font: "/nonexistent/font.ttf"}); !strings.Contains(v.Reason(), "font") {
		t.Fatalf("without its font: reason %q", v.Reason())
	}
	t.Setenv("PATH", t.TempDir())
	v := NewVideo(VideoOptions{CacheDir: t.TempDir()})
	if !strings.Contains(v.Reason(), "ffmpeg not found") {
		t.Fatalf("without ffmpeg: reason %q", v.Reason())
	}
	h, err := New(Options{Video: v})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, body := fetch(t, srv.URL+VODMaster)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "not found") {
		t.Fatalf("%s %q, want a 404 that says what is missing", resp.Status, body)
	}
	if !strings.Contains(v.Describe(), "left out") {
		t.Fatalf("Describe %q does not say the video is left out", v.Describe())
	}
}
