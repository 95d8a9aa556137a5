package demo

// The live stream's packager: ffmpeg writes fragmented MP4 to a pipe, and
// this turns it into LL-HLS (RFC 8216bis) at stable URLs under
// /video/live/: each moof+mdat is a part (~0.5 s), a segment starts at
// each part whose first video sample is a sync sample, and a window of
// recent segments is kept in memory. When the encoder stops and is
// restarted, the same playlist continues with a discontinuity and the new
// run's init segment; media sequence numbers keep advancing, so a segment
// or part URI never names two contents.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// liveFragMicros is the fragment duration ffmpeg is asked for: a
	// fragment is cut at the first frame at least this far from its start.
	liveFragMicros = 500000
	// livePartTarget bounds every part: the fragment duration plus one
	// frame at 25 fps (ffmpeg gives 0.52 s parts, 0.44-0.48 s at a
	// segment's end).
	livePartTarget = 0.54
	// liveMaxParts bounds the parts of one segment (a stream without
	// keyframes is cut into segments of the target duration anyway).
	liveMaxParts = 32
	// liveMaxBytes bounds the window's bytes: beyond it the oldest
	// segments go even if fewer than the window's count are kept.
	liveMaxBytes = 16 << 20
	// livePartSegments is how many segments at the playlist's end list
	// their parts: RFC 8216bis asks for those within three target
	// durations of the end.
	livePartSegments = 3
)

// liveHold bounds how long a blocking playlist reload or a request for a
// part not yet made waits: three target durations (RFC 8216bis 6.2.5.2).
const liveHold = 3 * liveTargetSecs * time.Second

// liveRun is one encoder run: its init segment.
type liveRun struct {
	id   string
	init []byte // ftyp+moov
	info fmp4Init
}

// livePart is one moof+mdat.
type livePart struct {
	data  []byte
	dur   float64
	indep bool
}

// liveSeg is one segment: its parts, complete once done.
type liveSeg struct {
	msn   int64
	run   *liveRun
	disc  bool // the first of a run after another run's segments
	pdt   time.Time
	parts []livePart
	dur   float64
	bytes int
	done  bool
}

// liveStream is the window of the live stream that is served. It holds at
// most window complete segments and the one in progress, and at most
// liveMaxBytes plus one part (two boxes of at most maxBox bytes; a
// segment takes no more parts past a quarter of liveMaxBytes): 24 MiB at
// worst, about 7 × 2 s × 40 KB/s ≈ 560 KB at the demo's 300 kbit/s.
type liveStream struct {
	window   int
	maxBytes int           // liveMaxBytes; smaller in tests
	hold     time.Duration // liveHold; shorter in tests
	now      func() time.Time

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	segs    []*liveSeg    // oldest first; the last may be in progress
	// nextMSN is the next segment's media sequence number: it starts at
	// the wall clock's count of 2 s periods (a later up starts above the
	// numbers an earlier one used, segments being made in real time) and
	// goes on by one, through encoder restarts too: players number the
	// segments from EXT-X-MEDIA-SEQUENCE, so the numbers may have no gap.
	nextMSN int64
	discSeq int64    // discontinuities of the segments that left the window
	bytes   int      // of every part kept
	lastRun *liveRun // the run of the newest segment
}

func newLiveStream(window int, now func() time.Time) *liveStream {
	return &liveStream{window: window, maxBytes: liveMaxBytes, hold: liveHold, now: now, changed: make(chan struct{}),
		nextMSN: now().Unix() / liveTargetSecs}
}

// notify wakes every waiter; s.mu is held.
func (s *liveStream) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// ingest reads one encoder run's box stream until it ends: ftyp+moov is
// the run's init segment, each moof+mdat a part.
func (s *liveStream) ingest(r io.Reader, runID string) error {
	var ftyp, moof []byte
	var run *liveRun
	var frag fmp4Frag
	var prft *fmp4Prft
	defer s.endRun(&run)
	for {
		typ, b, err := readBox(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch typ {
		case "ftyp":
			ftyp = b
		case "moov":
			info, err := parseMoov(b[8:])
			if err != nil {
				return err
			}
			if ftyp == nil {
				return errors.New("fmp4: moov without ftyp before it")
			}
			run = &liveRun{id: runID, init: append(ftyp, b...), info: info}
		case "prft":
			p, err := parsePrft(b[8:])
			if err != nil {
				return err
			}
			prft = &p
		case "moof":
			if run == nil {
				return errors.New("fmp4: moof before the moov")
			}
			if frag, err = parseMoof(b[8:], run.info); err != nil {
				return err
			}
			moof = b
		case "mdat":
			if moof == nil {
				return errors.New("fmp4: mdat without a moof before it")
			}
			s.addPart(run, frag, append(moof, b...), prft)
			moof, prft = nil, nil
		}
	}
}

// addPart appends one part to the segment in progress, or starts a new
// segment with it: at a sync sample, or after a segment that is whole.
func (s *liveStream) addPart(run *liveRun, fr fmp4Frag, data []byte, prft *fmp4Prft) {
	ts := float64(run.info.video.timescale)
	dur := float64(fr.dur) / ts
	// The encoder's wall clock at the part's first sample (prft) dates
	// it; without one, its arrival less its duration.
	pdt := s.now().Add(-time.Duration(dur * float64(time.Second)))
	if prft != nil && prft.track == run.info.video.id {
		off := (float64(prft.mediaTime) - float64(fr.start)) / ts
		pdt = prft.wall.Add(-time.Duration(off * float64(time.Second)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur *liveSeg
	if n := len(s.segs); n > 0 && !s.segs[n-1].done && s.segs[n-1].run == run {
		cur = s.segs[n-1]
	}
	if cur != nil && (fr.sync || len(cur.parts) >= liveMaxParts || cur.bytes > s.maxBytes/4) {
		cur.done = true
		cur = nil
	}
	if cur == nil {
		cur = &liveSeg{msn: s.nextMSN, run: run, pdt: pdt, disc: s.lastRun != nil && s.lastRun != run}
		s.nextMSN++
		s.lastRun = run
		s.segs = append(s.segs, cur)
	}
	cur.parts = append(cur.parts, livePart{data: data, dur: dur, indep: fr.sync})
	cur.dur += dur
	cur.bytes += len(data)
	s.bytes += len(data)
	s.trim()
	// Keyframes are forced at every target duration: a segment that long
	// is whole (and is published now, not with the next part).
	if cur.dur >= liveTargetSecs-0.02 {
		cur.done = true
	}
	s.notify()
}

// trim drops the oldest segments beyond the window; s.mu is held.
func (s *liveStream) trim() {
	done := 0
	for _, g := range s.segs {
		if g.done {
			done++
		}
	}
	for (done > s.window || s.bytes > s.maxBytes) && len(s.segs) > 1 {
		if s.segs[0].disc {
			s.discSeq++
		}
		if s.segs[0].done {
			done--
		}
		s.bytes -= s.segs[0].bytes
		s.segs[0] = nil
		s.segs = s.segs[1:]
	}
}

// endRun closes the run's segment in progress; the next run starts a new
// segment after a discontinuity, its media sequence going on.
func (s *liveStream) endRun(run **liveRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.segs); n > 0 && !s.segs[n-1].done && s.segs[n-1].run == *run {
		s.segs[n-1].done = true
		s.trim()
	}
	s.notify()
}

// ready tells whether a complete segment is there (a playlist to play).
func (s *liveStream) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.segs {
		if g.done {
			return true
		}
	}
	return false
}

// find returns segment msn; s.mu is held.
func (s *liveStream) find(msn int64) *liveSeg {
	if len(s.segs) == 0 {
		return nil
	}
	i := msn - s.segs[0].msn
	if i < 0 || i >= int64(len(s.segs)) || s.segs[i].msn != msn {
		return nil
	}
	return s.segs[i]
}

// lastDone is the media sequence number of the newest complete segment,
// or -1; s.mu is held.
func (s *liveStream) lastDone() int64 {
	for i := len(s.segs) - 1; i >= 0; i-- {
		if s.segs[i].done {
			return s.segs[i].msn
		}
	}
	return -1
}

// has tells whether the playlist holds segment msn whole (part < 0), or
// part of msn, or anything after it (RFC 8216bis 6.2.5.2: "or later");
// s.mu is held.
func (s *liveStream) has(msn int64, part int) bool {
	if len(s.segs) == 0 {
		return false
	}
	last := s.segs[len(s.segs)-1]
	if last.msn > msn && (last.done || len(last.parts) > 0) {
		return true
	}
	g := s.find(msn)
	if g == nil {
		return false
	}
	if part < 0 {
		return g.done
	}
	return part < len(g.parts)
}

// wait blocks until cond (called with s.mu held) is true, ctx ends or
// s.hold passes; it reports whether cond became true.
func (s *liveStream) wait(ctx context.Context, cond func() bool) bool {
	timer := time.NewTimer(s.hold)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-timer.C:
			return false
		}
	}
}

// playlist renders the media playlist; s.mu is held.
func (s *liveStream) playlist() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:%d\n", liveTargetSecs)
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f\n", 3*livePartTarget)
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%.3f\n", livePartTarget)
	if len(s.segs) == 0 {
		return b.Bytes()
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", s.segs[0].msn, s.discSeq)
	last := s.segs[len(s.segs)-1]
	var run *liveRun
	for _, g := range s.segs {
		if g.disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if g.run != run {
			run = g.run
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"init-%s.mp4\"\n", run.id)
		}
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", g.pdt.UTC().Format("2006-01-02T15:04:05.000Z"))
		if last.msn-g.msn < livePartSegments {
			for i, p := range g.parts {
				fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%.3f,URI=\"part-%d.%d.m4s\"", p.dur, g.msn, i)
				if p.indep {
					b.WriteString(",INDEPENDENT=YES")
				}
				b.WriteByte('\n')
			}
		}
		if g.done {
			fmt.Fprintf(&b, "#EXTINF:%.3f,\nseg-%d.m4s\n", g.dur, g.msn)
		}
	}
	// The next part: in the segment in progress, or the first of the next.
	next, idx := s.nextMSN, 0
	if !last.done {
		next, idx = last.msn, len(last.parts)
	}
	fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-%d.%d.m4s\"\n", next, idx)
	return b.Bytes()
}

// servePlaylist answers the media playlist, holding a blocking reload
// (_HLS_msn, _HLS_part) until what it asks for is there.
func (s *liveStream) servePlaylist(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	q := r.URL.Query()
	msn, part := int64(-1), -1
	if v := q.Get("_HLS_msn"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			liveError(w, http.StatusBadRequest, "_HLS_msn="+v+": want a media sequence number")
			return
		}
		msn = n
	}
	if v := q.Get("_HLS_part"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || msn < 0 {
			liveError(w, http.StatusBadRequest, "_HLS_part="+v+": want a part index, with _HLS_msn")
			return
		}
		part = n
	}
	if msn >= 0 {
		s.mu.Lock()
		last := max(s.lastDone(), s.nextMSN-1)
		s.mu.Unlock()
		// RFC 8216bis 6.2.5.2: more than two segments ahead is a bad
		// request, not a wait.
		if msn > last+2 {
			liveError(w, http.StatusBadRequest, fmt.Sprintf("_HLS_msn=%d is more than two segments past the playlist's last (%d)", msn, last))
			return
		}
		if !s.wait(r.Context(), func() bool { return s.has(msn, part) }) {
			hd.Set("Retry-After", "1")
			liveError(w, http.StatusServiceUnavailable, fmt.Sprintf("segment %d part %d did not appear within %s", msn, part, s.hold))
			return
		}
	}
	s.mu.Lock()
	ok := s.lastDone() >= 0
	body := s.playlist()
	s.mu.Unlock()
	if !ok {
		hd.Set("Retry-After", "2")
		liveError(w, http.StatusServiceUnavailable, "the live stream is not ready yet")
		return
	}
	// A plain reload changes with every part; a blocking reload's answer
	// is right for its URL for good (it holds the part asked for), so the
	// edge may keep it for the playlist's whole window.
	cache := "public, max-age=1"
	if msn >= 0 {
		cache = "public, max-age=" + strconv.Itoa(liveTargetSecs*s.window)
	}
	servePlaylist(w, r, body, cache, "demo video live")
}

// serveMedia answers init-RUN.mp4, seg-MSN.m4s and part-MSN.I.m4s; a
// part not yet made is waited for when it is the next one or close to
// it (the preload hint).
func (s *liveStream) serveMedia(w http.ResponseWriter, r *http.Request, name string) {
	var data []byte
	var ctype string
	switch {
	case strings.HasPrefix(name, "init-") && strings.HasSuffix(name, ".mp4"):
		id := strings.TrimSuffix(strings.TrimPrefix(name, "init-"), ".mp4")
		s.mu.Lock()
		for _, g := range s.segs {
			if g.run.id == id {
				data = g.run.init
				break
			}
		}
		s.mu.Unlock()
		ctype = "video/mp4"
	case strings.HasPrefix(name, "seg-") && strings.HasSuffix(name, ".m4s"):
		msn, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".m4s"), 10, 64)
		if err != nil {
			break
		}
		s.mu.Lock()
		if g := s.find(msn); g != nil && g.done {
			for _, p := range g.parts {
				data = append(data, p.data...)
			}
		}
		s.mu.Unlock()
		ctype = "video/iso.segment"
	case strings.HasPrefix(name, "part-") && strings.HasSuffix(name, ".m4s"):
		a, b, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(name, "part-"), ".m4s"), ".")
		msn, err1 := strconv.ParseInt(a, 10, 64)
		idx, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || idx < 0 || idx >= liveMaxParts {
			break
		}
		ctype = "video/iso.segment"
		get := func() ([]byte, bool) {
			g := s.find(msn)
			switch {
			case g != nil && idx < len(g.parts):
				return g.parts[idx].data, true
			case g != nil && g.done:
				return nil, true // that segment ended before this part
			case g == nil && msn == s.nextMSN:
				return nil, false // the next segment's part
			case g != nil:
				return nil, false // the segment in progress
			}
			return nil, true
		}
		s.mu.Lock()
		d, final := get()
		s.mu.Unlock()
		if !final {
			s.wait(r.Context(), func() bool { d, final = get(); return final })
			if !final {
				w.Header().Set("Retry-After", "1")
				liveError(w, http.StatusServiceUnavailable, "part "+name+" did not appear within "+s.hold.String())
				return
			}
		}
		data = d
	}
	if data == nil {
		w.Header().Set("Cache-Control", "public, max-age=1")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Cache-Control", immutable)
	hd.Set("Surrogate-Key", "demo video live")
	hd.Set("ETag", `"`+name+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// liveError answers an error that no cache may keep.
func liveError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}
