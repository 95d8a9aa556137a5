package demo

import (
	"encoding/binary"
	"testing"
)

// mkbox makes a box of type typ around payload pieces.
func mkbox(typ string, payload ...[]byte) []byte {
	n := 8
	for _, p := range payload {
		n += len(p)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(n))
	b = append(b, typ...)
	for _, p := range payload {
		b = append(b, p...)
	}
	return b
}

func u32s(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return b
}

// TestParseMoofSyncFlags: the first video sample's sync flag comes from
// trun's first-sample flags, else its per-sample flags, else tfhd's
// default, else trex's; the duration from per-sample durations or the
// defaults; another track's traf is skipped; a run of 2^32-1 samples
// with default fields is summed, not walked.
func TestParseMoofSyncFlags(t *testing.T) {
	in := fmp4Init{video: fmp4Track{id: 1, timescale: 1000, defaultDur: 40, defaultFlags: sampleIsNonSync}}
	tfdt := mkbox("tfdt", u32s(0, 5000))
	audio := mkbox("traf", mkbox("tfhd", u32s(0, 2)), tfdt, mkbox("trun", u32s(0x4, 1, 0)))
	cases := []struct {
		name string
		traf []byte
		want fmp4Frag
	}{
		{"trex defaults: non-sync", mkbox("traf", mkbox("tfhd", u32s(0, 1)), tfdt, mkbox("trun", u32s(0, 3))), fmp4Frag{5000, 120, false}},
		{"tfhd default flags: sync", mkbox("traf", mkbox("tfhd", u32s(0x20, 1, 0)), tfdt, mkbox("trun", u32s(0, 2))), fmp4Frag{5000, 80, true}},
		{"first-sample flags: sync", mkbox("traf", mkbox("tfhd", u32s(0x8, 1, 20)), tfdt, mkbox("trun", u32s(0x4, 4, 0))), fmp4Frag{5000, 80, true}},
		{"per-sample durations and flags", mkbox("traf", mkbox("tfhd", u32s(0, 1)), tfdt, mkbox("trun", u32s(0x500, 2, 10, 0x2000000, 30, sampleIsNonSync))), fmp4Frag{5000, 40, true}},
		{"2^32-1 default samples", mkbox("traf", mkbox("tfhd", u32s(0, 1)), tfdt, mkbox("trun", u32s(0, 0xffffffff))), fmp4Frag{5000, 40 * 0xffffffff, false}},
	}
	for _, c := range cases {
		got, err := parseMoof(append(mkbox("mfhd", u32s(0, 1)), append(audio, c.traf...)...), in)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := parseMoof(audio, in); err == nil {
		t.Error("a moof without the video track: no error")
	}
}
