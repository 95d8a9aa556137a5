package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// encodeLive runs ffmpeg with the live encoder's arguments for secs
// seconds of media, as fast as it can (no -re), and returns its output.
func encodeLive(t *testing.T, ff string, secs int) []byte {
	t.Helper()
	v := NewVideo(VideoOptions{FFmpeg: ff, CacheDir: t.TempDir()})
	var args []string
	for _, a := range v.liveArgs() {
		switch a {
		case "-re":
			continue
		case "pipe:1":
			args = append(args, "-t", strconv.Itoa(secs))
		}
		args = append(args, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ff, args...).Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	return out
}

// choppy returns its data in pieces of seeded random sizes, 1 byte to 4 KiB.
type choppy struct {
	b   []byte
	rnd *rand.Rand
}

func (c *choppy) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.b), 1+c.rnd.IntN(4096))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

// wantParts is what the packager must find in ffmpeg's output: every
// moof+mdat, in order, found by walking the top-level boxes.
func wantParts(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var parts [][]byte
	r := bytes.NewReader(b)
	var moof []byte
	for {
		typ, box, err := readBox(r)
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "moof":
			moof = box
		case "mdat":
			parts = append(parts, append(moof, box...))
		}
	}
}

// TestLivePackager feeds real ffmpeg output (7 s) to the packager in
// seeded random pieces, twice in a row as two encoder runs: every part
// is kept byte for byte; segments start at a keyframe and last 2 s, parts
// at most the part target; the second run continues the media sequence
// after a discontinuity with its own init segment; and the playlist is
// the same whatever the pieces.
func TestLivePackager(t *testing.T) {
	ff := needFFmpeg(t)
	out := encodeLive(t, ff, 7)
	want := wantParts(t, out)
	clock := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var first string
	for seed := uint64(1); seed <= 5; seed++ {
		now := clock
		s := newLiveStream(10, func() time.Time { return now })
		rnd := rand.New(rand.NewPCG(seed, 7))
		for _, run := range []string{"a", "b"} {
			// Each run ends a minute after the clock's start (the
			// encoder was down, or the stream fell behind the wall
			// clock): the media sequence still goes on by one. Players
			// number the segments from EXT-X-MEDIA-SEQUENCE; a gap
			// renumbers them, and hls.js stops on "media sequence
			// mismatch".
			now = now.Add(time.Minute)
			if err := s.ingest(&choppy{out, rnd}, run); err != nil {
				t.Fatalf("seed %d run %s: %v", seed, run, err)
			}
		}
		s.mu.Lock()
		pl := string(s.playlist())
		var got [][]byte
		var msns []int64
		for _, g := range s.segs {
			msns = append(msns, g.msn)
			if !g.done || len(g.parts) == 0 || !g.parts[0].indep {
				t.Fatalf("seed %d: segment %d: done %v, %d parts, first independent %v", seed, g.msn, g.done, len(g.parts), len(g.parts) > 0 && g.parts[0].indep)
			}
			last := g.msn == s.segs[len(s.segs)-1].msn || s.segs[len(s.segs)-1-int(s.segs[len(s.segs)-1].msn-g.msn)+1].disc
			if !last && (g.dur < 1.98 || g.dur > 2.03) {
				t.Errorf("seed %d: segment %d lasts %.3f s, want 2", seed, g.msn, g.dur)
			}
			for i, p := range g.parts {
				if p.dur > livePartTarget || p.indep != (i == 0) {
					t.Errorf("seed %d: segment %d part %d: %.3f s independent %v", seed, g.msn, i, p.dur, p.indep)
				}
				got = append(got, p.data)
			}
		}
		s.mu.Unlock()
		if !slices.EqualFunc(got, append(slices.Clone(want), want...), bytes.Equal) {
			t.Fatalf("seed %d: %d parts kept, want the %d moof+mdat pairs of two runs byte for byte", seed, len(got), 2*len(want))
		}
		for i := range msns {
			if msns[i] != msns[0]+int64(i) {
				t.Fatalf("seed %d: media sequence numbers %v", seed, msns)
			}
		}
		if strings.Count(pl, "#EXT-X-DISCONTINUITY\n") != 1 || !strings.Contains(pl, `#EXT-X-MAP:URI="init-a.mp4"`) || !strings.Contains(pl, `#EXT-X-MAP:URI="init-b.mp4"`) {
			t.Fatalf("seed %d: two runs without one discontinuity and both init segments:\n%s", seed, pl)
		}
		if first == "" {
			first = pl
			t.Logf("playlist of two 7 s runs:\n%s", pl)
		} else if pl != first {
			t.Fatalf("seed %d: another playlist from other pieces:\n%s\nfirst:\n%s", seed, pl, first)
		}
	}
	// Part durations as ffmpeg gives them.
	durs := regexp.MustCompile(`DURATION=([0-9.]+)`).FindAllStringSubmatch(first, -1)
	var ds []string
	for _, d := range durs {
		ds = append(ds, d[1])
	}
	t.Logf("part durations: %s", strings.Join(ds, " "))

	// A window of 2 drops the oldest segments and counts the
	// discontinuity that left with them.
	s := newLiveStream(2, func() time.Time { return clock })
	for _, run := range []string{"a", "b"} {
		if err := s.ingest(bytes.NewReader(out), run); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	pl := string(s.playlist())
	s.mu.Unlock()
	if !strings.Contains(pl, "#EXT-X-DISCONTINUITY-SEQUENCE:1\n") || strings.Contains(pl, "init-a") || strings.Count(pl, "#EXTINF:") != 2 {
		t.Fatalf("a window of 2 after two runs:\n%s", pl)
	}

	// The byte bound holds below the window's count: with room for about
	// a segment, a few one-part segments are kept (a segment takes no
	// part past a quarter of the bound), at most the bound and a part.
	s = newLiveStream(10, func() time.Time { return clock })
	s.maxBytes = len(out) / 4
	if err := s.ingest(bytes.NewReader(out), "a"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	kept := 0
	for _, g := range s.segs {
		for _, p := range g.parts {
			kept += len(p.data)
		}
	}
	n := len(s.segs)
	s.mu.Unlock()
	biggest := 0
	for _, p := range want {
		biggest = max(biggest, len(p))
	}
	if n > 5 || kept != s.bytes || kept > s.maxBytes+biggest {
		t.Fatalf("a bound of %d bytes: %d segments, %d bytes kept, %d counted", s.maxBytes, n, kept, s.bytes)
	}
}

// TestLivePackagerBadInput: a truncated or garbled stream is an error
// naming what is wrong, never a panic.
func TestLivePackagerBadInput(t *testing.T) {
	ff := needFFmpeg(t)
	out := encodeLive(t, ff, 1)
	cases := map[string][]byte{
		"is cut short":         out[:len(out)-10],
		"of 4294967295 bytes":  append(slices.Clone(out), 0xff, 0xff, 0xff, 0xff, 'm', 'o', 'o', 'f'),
		"moof before the moov": out[bytes.Index(out, []byte("moof"))-4:],
	}
	for want, in := range cases {
		s := newLiveStream(3, time.Now)
		err := s.ingest(bytes.NewReader(in), "x")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v", want, err)
		}
	}
	rnd := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 300; i++ {
		b := slices.Clone(out)
		for j := 0; j < 1+rnd.IntN(8); j++ {
			b[rnd.IntN(len(b))] = byte(rnd.IntN(256))
		}
		s := newLiveStream(3, time.Now)
		_ = s.ingest(bytes.NewReader(b), "x")
		s.mu.Lock()
		s.playlist()
		s.mu.Unlock()
	}
}

// FuzzLiveIngest: whatever the encoder's pipe carries, the packager
// returns (an error or nil) without panicking, keeps its window, keeps
// only parts that begin with a moof, and renders a playlist. Seeded with
// a second of real ffmpeg output when ffmpeg is there.
func FuzzLiveIngest(f *testing.F) {
	if ff, err := exec.LookPath("ffmpeg"); err == nil {
		v := NewVideo(VideoOptions{FFmpeg: ff, CacheDir: f.TempDir()})
		var args []string
		for _, a := range v.liveArgs() {
			if a == "-re" {
				continue
			}
			if a == "pipe:1" {
				args = append(args, "-t", "1")
			}
			args = append(args, a)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, ff, args...).Output()
		cancel()
		if err == nil {
			// The init segment and the first part: small inputs fuzz fast.
			if i := bytes.Index(out, []byte("moof")); i > 4 {
				if j := bytes.Index(out[i+4:], []byte("moof")); j > 4 {
					out = out[:i+j]
				}
			}
			f.Add(out)
		}
	}
	f.Add([]byte("\x00\x00\x00\x08ftyp\x00\x00\x00\x08moov"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newLiveStream(2, time.Now)
		_ = s.ingest(bytes.NewReader(b), "a")
		_ = s.ingest(bytes.NewReader(b), "b")
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.segs) > 3 {
			t.Fatalf("%d segments kept with a window of 2", len(s.segs))
		}
		kept := 0
		for _, g := range s.segs {
			for _, p := range g.parts {
				kept += len(p.data)
			}
		}
		if kept != s.bytes || kept > s.maxBytes+2*maxBox { // a part is at most two boxes
			t.Fatalf("%d bytes kept, %d counted, bound %d", kept, s.bytes, s.maxBytes+2*maxBox)
		}
		for _, g := range s.segs {
			if len(g.parts) > liveMaxParts {
				t.Fatalf("%d parts in a segment", len(g.parts))
			}
			for _, p := range g.parts {
				if len(p.data) < 8 || string(p.data[4:8]) != "moof" {
					t.Fatalf("a part that is not a moof: %.16q", p.data)
				}
			}
		}
		s.playlist()
	})
}

// TestLiveBlocking serves a packaged stream (real ffmpeg output) and
// checks the LL-HLS delivery directives (RFC 8216bis 6.2.5.2): what is
// there answers at once, what is next waits for it and is released by
// its arrival, what does not come is 503 after the hold, a media
// sequence more than two ahead is 400 at once, and bad values are 400.
func TestLiveBlocking(t *testing.T) {
	ff := needFFmpeg(t)
	out := encodeLive(t, ff, 5)
	s := newLiveStream(6, time.Now)
	s.hold = 300 * time.Millisecond
	v := &Video{live: s}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !v.serve(w, r) {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	if resp, _ := fetch(t, srv.URL+LiveMedia); resp.StatusCode != 503 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("before any segment: %s %q, want 503 no-store", resp.Status, resp.Header.Get("Cache-Control"))
	}
	if err := s.ingest(bytes.NewReader(out), "a"); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	last := s.segs[len(s.segs)-1]
	lastMSN, lastParts, next := last.msn, len(last.parts), s.nextMSN
	s.mu.Unlock()
	at := func(q string) (int, string, time.Duration) {
		start := time.Now()
		resp, b := fetch(t, srv.URL+LiveMedia+q)
		return resp.StatusCode, string(b), time.Since(start)
	}
	for _, c := range []struct {
		q      string
		status int
		waits  bool
	}{
		{fmt.Sprintf("?_HLS_msn=%d", lastMSN), 200, false},
		{fmt.Sprintf("?_HLS_msn=%d&_HLS_part=%d", lastMSN, lastParts-1), 200, false},
		{fmt.Sprintf("?_HLS_msn=%d&_HLS_part=0", lastMSN-3), 200, false},
		{fmt.Sprintf("?_HLS_msn=%d&_HLS_part=0", next), 503, true},
		{fmt.Sprintf("?_HLS_msn=%d", next+1), 503, true},
		{fmt.Sprintf("?_HLS_msn=%d", next+2), 400, false},
		{"?_HLS_msn=-1", 400, false},
		{"?_HLS_part=0", 400, false},
		{fmt.Sprintf("?_HLS_msn=%d&_HLS_part=z", lastMSN), 400, false},
	} {
		status, body, took := at(c.q)
		if status != c.status || c.waits != (took >= s.hold) || took > s.hold+time.Second {
			t.Errorf("%s: %d after %s, want %d (waiting %v)\n%s", c.q, status, took, c.status, c.waits, body)
		}
	}
	// Parts: one there, one past its segment's end, one waited for.
	for _, c := range []struct {
		name   string
		status int
	}{
		{fmt.Sprintf("part-%d.%d.m4s", lastMSN, lastParts-1), 200},
		{fmt.Sprintf("part-%d.%d.m4s", lastMSN, lastParts), 404},
		{fmt.Sprintf("part-%d.0.m4s", next), 503},
		{fmt.Sprintf("part-%d.0.m4s", next+5), 404},
		{fmt.Sprintf("seg-%d.m4s", next), 404},
	} {
		if resp, _ := fetch(t, srv.URL+livePrefix+c.name); resp.StatusCode != c.status {
			t.Errorf("%s: %s, want %d", c.name, resp.Status, c.status)
		}
	}
	// A waiting reload and a waiting part are released by the next run's
	// first part, after a discontinuity.
	s.hold = 10 * time.Second
	type answer struct {
		status int
		body   string
	}
	// (t.Fatal is for the test's goroutine: these report errors as a 0.)
	bg := func(url string, to chan<- answer) {
		c := &http.Client{Timeout: 20 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			to <- answer{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		to <- answer{resp.StatusCode, string(b)}
	}
	reload, part := make(chan answer, 1), make(chan answer, 1)
	go bg(fmt.Sprintf("%s%s?_HLS_msn=%d&_HLS_part=0", srv.URL, LiveMedia, next), reload)
	go bg(fmt.Sprintf("%s%spart-%d.0.m4s", srv.URL, livePrefix, next), part)
	time.Sleep(200 * time.Millisecond)
	if err := s.ingest(bytes.NewReader(out), "b"); err != nil {
		t.Fatal(err)
	}
	r, p := <-reload, <-part
	if r.status != 200 || !strings.Contains(r.body, fmt.Sprintf("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-b.mp4\"\n")) ||
		!strings.Contains(r.body, fmt.Sprintf("URI=\"part-%d.0.m4s\",INDEPENDENT=YES", next)) {
		t.Fatalf("the waiting reload: %d\n%s", r.status, r.body)
	}
	if p.status != 200 || len(p.body) < 8 || p.body[4:8] != "moof" {
		t.Fatalf("the waiting part: %d %.40q", p.status, p.body)
	}
}
