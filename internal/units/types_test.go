package units

import (
	"encoding/json"
	"flag"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"8760h", 8760 * time.Hour, false},
		{"31536000", 365 * 24 * time.Hour, false},
		{"365d", 365 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"0", 0, false},
		{"0s", 0, false},
		{"-1s", -time.Second, false},
		{"-1", -time.Second, false},
		{"-2d", -48 * time.Hour, false},
		{" 500ms ", 500 * time.Millisecond, false},
		{"1h30m", 90 * time.Minute, false},
		{"", 0, true},
		{"-", 0, true},
		{"d", 0, true},
		{"1.5d", 0, true},
		{"1d-5h", 0, true},
		{"1x", 0, true},
		{"12", 12 * time.Second, false},
		{"9999999999999999d", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestDurationAndSizeText: what String and MarshalJSON write reads back to
// the same value, through flags and through JSON (numbers included).
func TestDurationAndSizeText(t *testing.T) {
	for _, d := range []time.Duration{0, time.Second, 500 * time.Millisecond, 24 * time.Hour, 90 * time.Minute, 8760 * time.Hour, -time.Second, time.Hour + time.Second} {
		var back Duration
		if err := back.Set(Duration(d).String()); err != nil || back.Std() != d {
			t.Errorf("Duration(%v).String() = %q reads back as %v, %v", d, Duration(d).String(), back, err)
		}
	}
	if s := Duration(24 * time.Hour).String(); s != "24h" {
		t.Errorf("24h prints as %q", s)
	}
	for _, n := range []int64{0, 1, 1023, 1024, 512 << 20, 3 << 29, 1234567, 50 << 30} {
		var back Size
		if err := back.Set(Size(n).String()); err != nil || int64(back) != n {
			t.Errorf("Size(%d).String() = %q reads back as %d, %v", n, Size(n).String(), back, err)
		}
	}
	var v struct {
		D Duration `json:"d"`
		S Size     `json:"s"`
	}
	if err := json.Unmarshal([]byte(`{"d": 31536000, "s": 1024}`), &v); err != nil || v.D.Std() != 8760*time.Hour || v.S != 1024 {
		t.Errorf("numbers: %+v, %v", v, err)
	}
	if err := json.Unmarshal([]byte(`{"d": "365d", "s": "4MiB"}`), &v); err != nil || v.D.Std() != 8760*time.Hour || v.S != 4<<20 {
		t.Errorf("strings: %+v, %v", v, err)
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"d":"8760h","s":"4MiB"}` {
		t.Errorf("marshal: %s", b)
	}
	for _, in := range []string{`{"d": true}`, `{"d": "soon"}`, `{"s": "lots"}`, `{"s": [1]}`} {
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
	var _ flag.Value = (*Duration)(nil)
	var _ flag.Value = (*Size)(nil)
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1", "365d", "1d12h", "8760h", "-1s", "x", "d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %v prints as %q, which reads back as %v, %v", s, d, Duration(d).String(), back, err)
		}
	})
}
