package httpcache

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	many := "bytes=" + strings.Repeat("0-0,", 33)
	tests := []struct {
		name    string
		header  string
		size    int64
		want    []ByteRange
		wantErr error
	}{
		{"absent", "", 1000, nil, nil},
		{"first bytes §14.1.2", "bytes=0-99", 1000, []ByteRange{{0, 99}}, nil},
		{"unit is case-insensitive §14.1", "Bytes=0-99", 1000, []ByteRange{{0, 99}}, nil},
		{"open range", "bytes=900-", 1000, []ByteRange{{900, 999}}, nil},
		{"suffix", "bytes=-100", 1000, []ByteRange{{900, 999}}, nil},
		{"suffix longer than size", "bytes=-5000", 1000, []ByteRange{{0, 999}}, nil},
		{"last clamped", "bytes=500-5000", 1000, []ByteRange{{500, 999}}, nil},
		{"overflowing last clamped", "bytes=5-99999999999999999999999", 1000, []ByteRange{{5, 999}}, nil},
		{"coalesced overlap and order", "bytes=500-600, 0-10,550-700", 1000, []ByteRange{{0, 10}, {500, 700}}, nil},
		{"coalesced adjacent", "bytes=0-9,10-19", 1000, []ByteRange{{0, 19}}, nil},
		{"OWS and empty elements", "bytes= 0-1 ,, 5-6 ", 1000, []ByteRange{{0, 1}, {5, 6}}, nil},
		{"unsatisfiable dropped", "bytes=0-1,2000-3000", 1000, []ByteRange{{0, 1}}, nil},
		{"all unsatisfiable §14.1.1", "bytes=1000-", 1000, nil, ErrUnsatisfiable},
		{"zero suffix", "bytes=-0", 1000, nil, ErrUnsatisfiable},
		{"empty representation", "bytes=0-", 0, nil, ErrUnsatisfiable},
		{"huge first", "bytes=99999999999999999999999-", 1000, nil, ErrUnsatisfiable},
		{"other unit", "items=0-1", 1000, nil, nil},
		{"no equals", "bytes 0-1", 1000, nil, nil},
		{"last before first is invalid", "bytes=5-1", 1000, nil, nil},
		{"no dash", "bytes=5", 1000, nil, nil},
		{"signs", "bytes=+1-2", 1000, nil, nil},
		{"spaces inside spec", "bytes=1 - 2", 1000, nil, nil},
		{"only commas", "bytes=,,", 1000, nil, nil},
		{"double dash", "bytes=--1", 1000, nil, nil},
		{"too many ranges", many, 1000, nil, nil},
		{"32 ranges are fine", "bytes=" + strings.Repeat("0-0,", 32), 1000, []ByteRange{{0, 0}}, nil},
		{"unknown size", "bytes=0-1", -1, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRange(tt.header, tt.size)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRange = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestByteRange(t *testing.T) {
	r := ByteRange{0, 99}
	if r.Length() != 100 || r.ContentRange(1000) != "bytes 0-99/1000" || r.ContentRange(-1) != "bytes 0-99/*" {
		t.Errorf("ByteRange helpers: %d %q %q", r.Length(), r.ContentRange(1000), r.ContentRange(-1))
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in        string
		want      ByteRange
		wantTotal int64
		wantErr   bool
	}{
		{"bytes 0-99/1000", ByteRange{0, 99}, 1000, false},
		{"Bytes 5-5/6", ByteRange{5, 5}, 6, false},
		{"bytes 0-99/*", ByteRange{0, 99}, -1, false},
		{" bytes 0-0/1 ", ByteRange{0, 0}, 1, false},
		{"bytes */1000", ByteRange{}, 0, true},
		{"bytes 99-0/1000", ByteRange{}, 0, true},
		{"bytes 0-1000/1000", ByteRange{}, 0, true},
		{"bytes 0-99", ByteRange{}, 0, true},
		{"bytes=0-99/1000", ByteRange{}, 0, true},
		{"items 0-99/1000", ByteRange{}, 0, true},
		{"bytes 0-99999999999999999999/*", ByteRange{}, 0, true},
		{"bytes -1-5/10", ByteRange{}, 0, true},
		{"", ByteRange{}, 0, true},
	}
	for _, tt := range tests {
		r, total, err := ParseContentRange(tt.in)
		if (err != nil) != tt.wantErr || r != tt.want || (err == nil && total != tt.wantTotal) {
			t.Errorf("ParseContentRange(%q) = %v, %d, %v; want %v, %d, err %v", tt.in, r, total, err, tt.want, tt.wantTotal, tt.wantErr)
		}
	}
}
