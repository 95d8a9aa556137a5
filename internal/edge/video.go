package edge

// The video rules (config.Video, spec.cache.video): how long playlists,
// segments and missing segments are cached when the origin says less, and
// the bound on LL-HLS blocking playlist reloads. A rule's lifetime is
// written into the stored header as the edge's own Surrogate-Control
// max-age, which every tier's freshness decision already obeys and no
// client sees (edgeOnlyHeaders), so nothing else of the cache changes.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kubecdn/kubecdn/internal/config"
	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// videoKind is what a resource is to the video rules.
type videoKind int

const (
	notVideo videoKind = iota
	hlsPlaylist
	dashManifest
	mediaSegment
)

// segmentExts are the extensions of media segments and byte-range files.
var segmentExts = []string{".ts", ".m4s", ".mp4", ".m4a", ".m4v", ".aac", ".cmfv", ".cmfa", ".cmft", ".vtt", ".webm", ".mp3", ".ac3", ".ec3"}

// classifyVideo says what a request path (without query) and a response's
// Content-Type are: a playlist content type decides, else the extension.
func classifyVideo(path, contentType string) videoKind {
	ct, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(ct)) {
	case "application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl":
		return hlsPlaylist
	case "application/dash+xml":
		return dashManifest
	}
	p := strings.ToLower(path)
	switch {
	case strings.HasSuffix(p, ".m3u8"):
		return hlsPlaylist
	case strings.HasSuffix(p, ".mpd"):
		return dashManifest
	}
	for _, e := range segmentExts {
		if strings.HasSuffix(p, e) {
			return mediaSegment
		}
	}
	return notVideo
}

// uriPath is the path of a request target, without its query.
func uriPath(uri string) string {
	p, _, _ := strings.Cut(uri, "?")
	return p
}

// blockingReload reports whether a request target is an LL-HLS blocking
// playlist reload (its query has _HLS_msn or _HLS_part).
func blockingReload(uri string) bool {
	_, q, ok := strings.Cut(uri, "?")
	return ok && (strings.Contains(q, "_HLS_msn=") || strings.Contains(q, "_HLS_part="))
}

// maxPlaylistTarget bounds a target duration read from a playlist: beyond
// it the value is taken as garbage and no rule applies.
const maxPlaylistTarget = time.Hour

// videoLifetime decides the lifetime the rules give a response, pure: ok
// is false when no rule applies (not video, off, the origin said no-store,
// no-cache or private, or targeted the CDN itself, or a playlist without a
// target) or the origin's own explicit lifetime already stands (longer for
// a playlist or segment, shorter for a 404). target is the playlist's
// target duration (0 when unknown). upTo says the lifetime is a cap, to be
// rounded down.
func videoLifetime(v config.Video, kind videoKind, status int, h http.Header, target time.Duration, respTime time.Time) (d time.Duration, upTo, ok bool) {
	if v.Off || kind == notVideo {
		return 0, false, false
	}
	cc, field := httpcache.EffectiveCacheControl(h)
	if field != "Cache-Control" || cc.Has("no-store") || cc.Has("no-cache") || cc.Has("private") {
		return 0, false, false
	}
	life, _ := httpcache.Lifetime(status, h, respTime, -1) // explicit only
	explicit := cc.Has("s-maxage") || cc.Has("max-age") || len(h["Expires"]) > 0
	switch {
	case status == http.StatusNotFound:
		if explicit && life <= v.MissingSegment.D() {
			return 0, false, false
		}
		return v.MissingSegment.D(), true, true
	case status != http.StatusOK && status != http.StatusPartialContent:
		return 0, false, false
	}
	var rule time.Duration
	switch kind {
	case mediaSegment:
		rule = v.Segment.D()
	default:
		if target <= 0 {
			return 0, false, false
		}
		// At least 1s: HTTP counts whole seconds, and an LL-HLS part
		// target's share (0.25s of a 0.5s part) would be none at all.
		rule = max(time.Duration(float64(target)*v.PlaylistFraction), time.Second)
	}
	if explicit && life >= rule {
		return 0, false, false
	}
	return rule, false, true
}

// setEdgeLifetime writes d as the edge's own Surrogate-Control max-age,
// counted from when the edge received the response: its initial age (up
// to 1s: the Date field's truncation to whole seconds, or a parent's Age)
// is added, so that a 1s rule is not worth nothing on a response whose
// Date is 0.9s old. HTTP counts whole seconds: d is rounded to the
// nearest, or down when it is a cap (upTo).
func setEdgeLifetime(h http.Header, d time.Duration, initialAge time.Duration, upTo bool) {
	d += min(max(initialAge, 0), time.Second)
	n := int64(d / time.Second)
	if !upTo && d%time.Second >= time.Second/2 {
		n++
	}
	h["Surrogate-Control"] = []string{"max-age=" + strconv.FormatInt(n, 10)}
}

// playlistPeek is how much of a playlist is read for its target duration
// before the header is published: the tags sit at the top.
const playlistPeek = 16 << 10

// errBlockingReloads answers a blocking playlist reload beyond the bound.
var errBlockingReloads = errors.New("edge: too many blocking playlist reloads waiting")

// applyVideo applies the video rules to a response about to be stored:
// it sets the edge's lifetime in resp.Header and, for a playlist, reads the
// top of the body for its target duration (resp.Body then replays it).
func applyVideo(v config.Video, uri string, resp *http.Response, reqTime, respTime time.Time) error {
	if v.Off {
		return nil
	}
	kind := classifyVideo(uriPath(uri), resp.Header.Get("Content-Type"))
	if kind == notVideo {
		return nil
	}
	var target time.Duration
	if (kind == hlsPlaylist || kind == dashManifest) && resp.StatusCode == http.StatusOK {
		head, err := peekTarget(resp.Body, kind)
		resp.Body = replayBody{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		if err != nil {
			return err
		}
		target = playlistTarget(kind, head)
	}
	if d, upTo, ok := videoLifetime(v, kind, resp.StatusCode, resp.Header, target, respTime); ok {
		setEdgeLifetime(resp.Header, d, httpcache.CurrentAge(resp.Header, reqTime, respTime, respTime), upTo)
	}
	return nil
}

// replayBody reads the peeked head, then the rest; Close closes the body.
type replayBody struct {
	io.Reader
	body io.Closer
}

func (r replayBody) Close() error { return r.body.Close() }

// peekTarget reads from body until the playlist's target tag is complete,
// the top of the playlist is past, the body ends or playlistPeek bytes.
func peekTarget(body io.Reader, kind videoKind) ([]byte, error) {
	buf := make([]byte, 0, 2048)
	for len(buf) < playlistPeek {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):min(cap(buf), playlistPeek)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if targetSeen(kind, buf) {
			return buf, nil
		}
	}
	return buf, nil
}

// targetSeen reports whether buf holds all a target can be read from: for
// HLS the target duration's line and the part target's (LL-HLS), or the
// first segment or part, before which a part target stands.
func targetSeen(kind videoKind, buf []byte) bool {
	if kind == hlsPlaylist {
		line := func(tag string) bool {
			i := bytes.Index(buf, []byte(tag))
			return i >= 0 && bytes.IndexByte(buf[i:], '\n') >= 0
		}
		return line("#EXT-X-TARGETDURATION:") &&
			(line("#EXT-X-PART-INF:") || bytes.Contains(buf, []byte("#EXTINF:")) || bytes.Contains(buf, []byte("#EXT-X-PART:")))
	}
	// DASH: the root element's start tag holds minimumUpdatePeriod.
	i := bytes.Index(buf, []byte("<MPD"))
	return i >= 0 && bytes.IndexByte(buf[i:], '>') >= 0
}

// playlistTarget reads a playlist's refresh interval: HLS
// EXT-X-TARGETDURATION (integer seconds; RFC 8216 §4.3.3.1), or for an
// LL-HLS playlist, which changes with every part, its
// EXT-X-PART-INF:PART-TARGET (decimal seconds; RFC 8216bis §4.4.3.7); DASH
// MPD@minimumUpdatePeriod of a dynamic MPD (an ISO 8601 duration). Zero
// when absent, malformed or above maxPlaylistTarget.
func playlistTarget(kind videoKind, b []byte) time.Duration {
	var d time.Duration
	if kind == hlsPlaylist {
		val := func(tag string) (string, bool) {
			i := bytes.Index(b, []byte(tag))
			if i < 0 {
				return "", false
			}
			line := b[i+len(tag):]
			if j := bytes.IndexAny(line, "\r\n"); j >= 0 {
				line = line[:j]
			}
			return strings.TrimSpace(string(line)), true
		}
		v, ok := val("#EXT-X-TARGETDURATION:")
		if !ok {
			return 0
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0
		}
		d = time.Duration(n) * time.Second
		if attrs, ok := val("#EXT-X-PART-INF:"); ok {
			for _, a := range strings.Split(attrs, ",") {
				if pt, ok := strings.CutPrefix(strings.TrimSpace(a), "PART-TARGET="); ok {
					if f, err := strconv.ParseFloat(pt, 64); err == nil && f > 0 && f <= d.Seconds() {
						d = time.Duration(f * float64(time.Second))
					}
				}
			}
		}
	} else {
		i := bytes.Index(b, []byte("<MPD"))
		if i < 0 {
			return 0
		}
		tag := b[i:]
		if j := bytes.IndexByte(tag, '>'); j >= 0 {
			tag = tag[:j]
		}
		k := bytes.Index(tag, []byte(`minimumUpdatePeriod="`))
		if k < 0 {
			return 0
		}
		val := tag[k+len(`minimumUpdatePeriod="`):]
		j := bytes.IndexByte(val, '"')
		if j < 0 {
			return 0
		}
		d = isoDuration(string(val[:j]))
	}
	if d <= 0 || d > maxPlaylistTarget {
		return 0
	}
	return d
}

// isoDuration parses the time part of an ISO 8601 duration as DASH writes
// it ("PT2S", "PT1M30.5S", "PT0H0M4S"); 0 when it is anything else.
func isoDuration(s string) time.Duration {
	rest, ok := strings.CutPrefix(s, "PT")
	if !ok || rest == "" || len(rest) > 32 {
		return 0
	}
	var d time.Duration
	for rest != "" {
		i := strings.IndexAny(rest, "HMS")
		if i <= 0 {
			return 0
		}
		f, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || f < 0 || f > 1e6 {
			return 0
		}
		unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}[rest[i]]
		d += time.Duration(f * float64(unit))
		rest = rest[i+1:]
	}
	return d
}

// reloadGate bounds the blocking playlist reloads waiting upstream.
type reloadGate struct{ n atomic.Int64 }

// enter takes a place if fewer than max are taken.
func (g *reloadGate) enter(max int) bool {
	if g.n.Add(1) > int64(max) {
		g.n.Add(-1)
		return false
	}
	return true
}

func (g *reloadGate) leave() { g.n.Add(-1) }
