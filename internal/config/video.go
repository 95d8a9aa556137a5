package config

import "time"

// Video is how the edges cache HLS and DASH (spec.cache.video), by rules a
// user reads in the edges' edge.yaml and overrides here. A zero field takes
// its default (VideoDefaults).
//
// Precedence against the origin's own headers (the edge's Surrogate-Control,
// which no client sees, carries a rule's lifetime into the cache):
//   - a field targeted at the CDN (CDN-Cache-Control, Surrogate-Control),
//     and Cache-Control no-store, no-cache or private, are obeyed: no rule
//     applies to that response;
//   - a playlist or segment is fresh for the longer of the origin's
//     explicit lifetime (s-maxage, max-age, Expires) and the rule's;
//   - a 404 for a segment is fresh for the shorter of the two (at most
//     MissingSegment), so a segment published a moment later is seen.
type Video struct {
	// Off turns the rules off: video is cached as its headers say.
	Off bool `json:"off,omitempty"`
	// PlaylistFraction is the share of a live playlist's target duration
	// (HLS EXT-X-TARGETDURATION, or EXT-X-PART-INF's PART-TARGET for an
	// LL-HLS playlist; DASH minimumUpdatePeriod) it is cached for, at
	// least 1s, counted from when the edge received it and rounded
	// to whole seconds (HTTP's unit). If zero, 0.5.
	PlaylistFraction float64 `json:"playlistFraction,omitempty"`
	// Segment is how long a segment (.ts, .m4s, .mp4, .aac, ...) is
	// cached: segments are immutable once published. If zero, 24h.
	Segment Duration `json:"segment,omitempty"`
	// MissingSegment is the longest a 404 for a segment is cached, so a
	// storm of early requests makes one origin request. If zero, 1s.
	MissingSegment Duration `json:"missingSegment,omitempty"`
	// BlockingReloads bounds the LL-HLS blocking playlist reloads
	// (_HLS_msn, _HLS_part) waiting at the origin at once, one per
	// distinct URL (viewers of one URL share its request); more are
	// answered 503. If zero, 64.
	BlockingReloads int `json:"blockingReloads,omitempty"`
}

// VideoDefaults are the defaults of spec.cache.video.
func VideoDefaults() Video {
	return Video{
		PlaylistFraction: 0.5,
		Segment:          Duration(24 * time.Hour),
		MissingSegment:   Duration(time.Second),
		BlockingReloads:  64,
	}
}

// WithDefaults returns v with its zero fields set to their defaults.
func (v Video) WithDefaults() Video {
	d := VideoDefaults()
	if v.PlaylistFraction == 0 {
		v.PlaylistFraction = d.PlaylistFraction
	}
	if v.Segment == 0 {
		v.Segment = d.Segment
	}
	if v.MissingSegment == 0 {
		v.MissingSegment = d.MissingSegment
	}
	if v.BlockingReloads == 0 {
		v.BlockingReloads = d.BlockingReloads
	}
	return v
}

// Validate lists what is wrong with v, each error naming its field under
// path (e.g. "spec.cache.video"); nil when v is valid.
func (v Video) Validate(path string) Errors {
	var p validator
	if v.PlaylistFraction < 0 || v.PlaylistFraction > 1 {
		p.add(path+".playlistFraction", "%v: want a share from 0 to 1", v.PlaylistFraction)
	}
	if v.Segment < 0 {
		p.add(path+".segment", "must not be negative")
	}
	if v.MissingSegment < 0 || v.MissingSegment.D() > time.Minute {
		p.add(path+".missingSegment", "%v: want 0 to 1m", v.MissingSegment.D())
	}
	if v.BlockingReloads < 0 || v.BlockingReloads > 100000 {
		p.add(path+".blockingReloads", "%d: want 1 to 100000", v.BlockingReloads)
	}
	return p.errs
}
