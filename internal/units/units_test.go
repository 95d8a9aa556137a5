package units

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"1024", 1024, false},
		{"512MiB", 512 << 20, false},
		{"512Mi", 512 << 20, false},
		{"4MB", 4e6, false},
		{"1.5GiB", 3 << 29, false},
		{" 2 KiB ", 2048, false},
		{"10B", 10, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-1", 0, true},
		{"1e3", 0, true},
		{"12XB", 0, true},
		{"NaN", 0, true},
		{"99999999999TiB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFormatSizeRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, 1023, 1024, 512 << 20, 50 << 30, 3 << 29} {
		s := FormatSize(n)
		back, err := ParseSize(s)
		if err != nil {
			t.Fatalf("FormatSize(%d) = %q, which does not parse: %v", n, s, err)
		}
		if s[len(s)-1] == 'B' && back != n && n%1024 == 0 {
			t.Errorf("FormatSize(%d) = %q parses back to %d", n, s, back)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1", "512MiB", "1.5GiB", "-3", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d < 0", s, n)
		}
	})
}
