package demo

// A reader of the fragmented MP4 (ISO BMFF, ISO/IEC 14496-12) that ffmpeg
// writes to a pipe for the live stream: top-level boxes one at a time, the
// track table of the moov (which track is video, its timescale, the trex
// defaults), and of each moof the video run's start, duration and whether
// its first sample is a sync sample. Only what the LL-HLS packager needs.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// maxBox bounds one top-level box read from the encoder (a 0.5 s fragment
// of the 300 kbit/s stream is about 25 KB; 4 MiB would be 64 Mbit/s).
const maxBox = 4 << 20

// readBox reads one top-level box: its type and all its bytes, header
// included. io.EOF only when r ends between boxes.
func readBox(r io.Reader) (string, []byte, error) {
	var h [16]byte
	if _, err := io.ReadFull(r, h[:8]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return "", nil, fmt.Errorf("fmp4: stream ends inside a box header")
		}
		return "", nil, err
	}
	size := uint64(binary.BigEndian.Uint32(h[:4]))
	typ := string(h[4:8])
	hdr := 8
	switch size {
	case 0:
		return "", nil, fmt.Errorf("fmp4: box %q runs to the end of the stream (size 0); a live stream's boxes must say their size", typ)
	case 1:
		if _, err := io.ReadFull(r, h[8:16]); err != nil {
			return "", nil, fmt.Errorf("fmp4: box %q: large size: %w", typ, noEOF(err))
		}
		size, hdr = binary.BigEndian.Uint64(h[8:16]), 16
	}
	if size < uint64(hdr) || size > maxBox {
		return "", nil, fmt.Errorf("fmp4: box %q of %d bytes (want %d to %d)", typ, size, hdr, maxBox)
	}
	b := make([]byte, size)
	copy(b, h[:hdr])
	if _, err := io.ReadFull(r, b[hdr:]); err != nil {
		return "", nil, fmt.Errorf("fmp4: box %q is cut short: %w", typ, noEOF(err))
	}
	return typ, b, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// box is one box inside a parent's payload.
type box struct {
	typ     string
	payload []byte
}

// children splits a payload into its boxes.
func children(b []byte) ([]box, error) {
	var out []box
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("fmp4: %d stray bytes after the last box", len(b))
		}
		size := uint64(binary.BigEndian.Uint32(b))
		typ := string(b[4:8])
		hdr := uint64(8)
		if size == 1 {
			if len(b) < 16 {
				return nil, fmt.Errorf("fmp4: box %q: short large size", typ)
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size == 0 {
			size = uint64(len(b))
		}
		if size < hdr || size > uint64(len(b)) {
			return nil, fmt.Errorf("fmp4: box %q of %d bytes in %d", typ, size, len(b))
		}
		out = append(out, box{typ, b[hdr:size]})
		b = b[size:]
	}
	return out, nil
}

// child is the first box of type typ in a payload, or nil.
func child(bs []box, typ string) []byte {
	for _, b := range bs {
		if b.typ == typ {
			return b.payload
		}
	}
	return nil
}

// fullBox reads a full box's version and flags.
func fullBox(p []byte, typ string, min int) (version byte, flags uint32, body []byte, err error) {
	if len(p) < 4+min {
		return 0, 0, nil, fmt.Errorf("fmp4: %s of %d bytes is too short", typ, len(p))
	}
	return p[0], binary.BigEndian.Uint32(p[:4]) & 0xffffff, p[4:], nil
}

// afterTimes reads the 32-bit field that follows a full box's creation
// and modification times (tkhd's track_ID, mdhd's timescale): the times
// are 32-bit in version 0, 64-bit in version 1.
func afterTimes(p []byte, typ string) (uint32, error) {
	v, _, body, err := fullBox(p, typ, 12)
	if err != nil {
		return 0, err
	}
	off := 8
	if v == 1 {
		off = 16
	}
	if len(body) < off+4 {
		return 0, fmt.Errorf("fmp4: %s v%d of %d bytes is too short", typ, v, len(p))
	}
	return binary.BigEndian.Uint32(body[off:]), nil
}

// fmp4Track is one track of the init segment.
type fmp4Track struct {
	id           uint32
	timescale    uint32
	handler      string // "vide", "soun", ...
	defaultDur   uint32 // trex
	defaultFlags uint32 // trex
}

// fmp4Init is what the packager needs of an init segment: its video track.
type fmp4Init struct {
	video fmp4Track
}

// parseMoov finds the video track of a moov box's payload, with its
// timescale and the trex defaults that moofs may rely on.
func parseMoov(moov []byte) (fmp4Init, error) {
	top, err := children(moov)
	if err != nil {
		return fmp4Init{}, err
	}
	tracks := map[uint32]*fmp4Track{}
	var order []uint32
	for _, b := range top {
		if b.typ != "trak" {
			continue
		}
		kids, err := children(b.payload)
		if err != nil {
			return fmp4Init{}, err
		}
		tk := &fmp4Track{}
		if tk.id, err = afterTimes(child(kids, "tkhd"), "tkhd"); err != nil {
			return fmp4Init{}, err
		}
		mdia, err := children(child(kids, "mdia"))
		if err != nil {
			return fmp4Init{}, err
		}
		if tk.timescale, err = afterTimes(child(mdia, "mdhd"), "mdhd"); err != nil {
			return fmp4Init{}, err
		}
		_, _, body, err := fullBox(child(mdia, "hdlr"), "hdlr", 8)
		if err != nil {
			return fmp4Init{}, err
		}
		tk.handler = string(body[4:8])
		tracks[tk.id] = tk
		order = append(order, tk.id)
	}
	if mvex := child(top, "mvex"); mvex != nil {
		kids, err := children(mvex)
		if err != nil {
			return fmp4Init{}, err
		}
		for _, k := range kids {
			if k.typ != "trex" {
				continue
			}
			_, _, body, err := fullBox(k.payload, "trex", 20)
			if err != nil {
				return fmp4Init{}, err
			}
			if tk := tracks[binary.BigEndian.Uint32(body)]; tk != nil {
				tk.defaultDur = binary.BigEndian.Uint32(body[8:])
				tk.defaultFlags = binary.BigEndian.Uint32(body[16:])
			}
		}
	}
	for _, id := range order {
		if tk := tracks[id]; tk.handler == "vide" {
			if tk.timescale == 0 {
				return fmp4Init{}, fmt.Errorf("fmp4: video track %d has timescale 0", id)
			}
			return fmp4Init{video: *tk}, nil
		}
	}
	return fmp4Init{}, fmt.Errorf("fmp4: no video track among %d", len(order))
}

// fmp4Frag is a moof's video run: where it starts and how long it is, in
// the video timescale, and whether its first sample is a sync sample.
type fmp4Frag struct {
	start, dur uint64
	sync       bool
}

// sampleIsNonSync is sample_is_non_sync_sample in the sample flags
// (ISO/IEC 14496-12 8.8.3.1).
const sampleIsNonSync = 1 << 16

// parseMoof reads the video track's fragment of a moof box's payload. The
// sync flag comes from the sample flags (trun's first-sample or per-sample
// flags, else tfhd's default, else trex's): that is what says a decoder
// can start there, whatever the timing.
func parseMoof(moof []byte, in fmp4Init) (fmp4Frag, error) {
	top, err := children(moof)
	if err != nil {
		return fmp4Frag{}, err
	}
	for _, b := range top {
		if b.typ != "traf" {
			continue
		}
		kids, err := children(b.payload)
		if err != nil {
			return fmp4Frag{}, err
		}
		_, tf, body, err := fullBox(child(kids, "tfhd"), "tfhd", 4)
		if err != nil {
			return fmp4Frag{}, err
		}
		if binary.BigEndian.Uint32(body) != in.video.id {
			continue
		}
		body = body[4:]
		defDur, defFlags := in.video.defaultDur, in.video.defaultFlags
		for _, f := range []struct {
			bit uint32
			n   int
			dst *uint32
		}{{0x1, 8, nil}, {0x2, 4, nil}, {0x8, 4, &defDur}, {0x10, 4, nil}, {0x20, 4, &defFlags}} {
			if tf&f.bit == 0 {
				continue
			}
			if len(body) < f.n {
				return fmp4Frag{}, errors.New("fmp4: tfhd is too short for its flags")
			}
			if f.dst != nil {
				*f.dst = binary.BigEndian.Uint32(body)
			}
			body = body[f.n:]
		}
		var fr fmp4Frag
		if tfdt := child(kids, "tfdt"); tfdt != nil {
			v, _, body, err := fullBox(tfdt, "tfdt", 4)
			if err != nil {
				return fmp4Frag{}, err
			}
			if v == 1 {
				if len(body) < 8 {
					return fmp4Frag{}, errors.New("fmp4: tfdt v1 is too short")
				}
				fr.start = binary.BigEndian.Uint64(body)
			} else {
				fr.start = uint64(binary.BigEndian.Uint32(body))
			}
		} else {
			return fmp4Frag{}, errors.New("fmp4: video traf without tfdt")
		}
		first := true
		for _, k := range kids {
			if k.typ != "trun" {
				continue
			}
			_, rf, body, err := fullBox(k.payload, "trun", 4)
			if err != nil {
				return fmp4Frag{}, err
			}
			n := binary.BigEndian.Uint32(body)
			body = body[4:]
			if rf&0x1 != 0 {
				if len(body) < 4 {
					return fmp4Frag{}, errors.New("fmp4: trun is too short")
				}
				body = body[4:]
			}
			firstFlags, haveFirst := uint32(0), false
			if rf&0x4 != 0 {
				if len(body) < 4 {
					return fmp4Frag{}, errors.New("fmp4: trun is too short")
				}
				firstFlags, haveFirst = binary.BigEndian.Uint32(body), true
				body = body[4:]
			}
			per := 0
			for _, bit := range []uint32{0x100, 0x200, 0x400, 0x800} {
				if rf&bit != 0 {
					per += 4
				}
			}
			if uint64(len(body)) < uint64(n)*uint64(per) {
				return fmp4Frag{}, fmt.Errorf("fmp4: trun of %d samples is too short", n)
			}
			// Without per-sample fields every sample has the defaults: the
			// count alone (up to 2^32) says the duration, with no loop.
			loop := n
			if per == 0 && n > 0 {
				fr.dur += uint64(n-1) * uint64(defDur)
				loop = 1
			}
			for i := uint32(0); i < loop; i++ {
				s := body[int(i)*per:]
				dur, flags := defDur, defFlags
				if rf&0x100 != 0 {
					dur, s = binary.BigEndian.Uint32(s), s[4:]
				}
				if rf&0x200 != 0 {
					s = s[4:]
				}
				if rf&0x400 != 0 {
					flags = binary.BigEndian.Uint32(s)
				}
				if i == 0 && haveFirst {
					flags = firstFlags
				}
				if first && i == 0 {
					fr.sync = flags&sampleIsNonSync == 0
				}
				fr.dur += uint64(dur)
			}
			if n > 0 {
				first = false
			}
		}
		return fr, nil
	}
	return fmp4Frag{}, fmt.Errorf("fmp4: moof without a fragment of video track %d", in.video.id)
}

// ntpEpoch is 1900-01-01, the origin of NTP timestamps.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// fmp4Prft is a producer reference time box: the wall clock at which the
// encoder took the sample of mediaTime (in the track's timescale).
type fmp4Prft struct {
	track     uint32
	wall      time.Time
	mediaTime uint64
}

// parsePrft reads a prft box's payload (ISO/IEC 14496-12 8.16.5).
func parsePrft(p []byte) (fmp4Prft, error) {
	v, _, body, err := fullBox(p, "prft", 16)
	if err != nil {
		return fmp4Prft{}, err
	}
	ntp := binary.BigEndian.Uint64(body[4:])
	pr := fmp4Prft{track: binary.BigEndian.Uint32(body)}
	secs, frac := ntp>>32, ntp&0xffffffff
	pr.wall = ntpEpoch.Add(time.Duration(secs)*time.Second + time.Duration(frac*uint64(time.Second)>>32))
	if v == 1 {
		if len(body) < 20 {
			return fmp4Prft{}, errors.New("fmp4: prft v1 is too short")
		}
		pr.mediaTime = binary.BigEndian.Uint64(body[12:])
	} else {
		pr.mediaTime = uint64(binary.BigEndian.Uint32(body[12:]))
	}
	return pr, nil
}
