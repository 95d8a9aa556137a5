package httpcache

import (
	"testing"
	"time"
)

func TestParseAge(t *testing.T) {
	tests := []struct {
		name string
		vals []string
		want time.Duration
	}{
		{"absent", nil, 0},
		{"one value", []string{"120"}, 2 * time.Minute},
		{"surrounding OWS", []string{" 7 "}, 7 * time.Second},
		{"zero", []string{"0"}, 0},
		{"list: first member", []string{"0,7200"}, 0},
		{"list: first member old", []string{"7200, 0"}, 2 * time.Hour},
		{"duplicates", []string{"3600, 3600"}, time.Hour},
		{"two lines: the first", []string{"0", "7200"}, 0},
		{"two lines: the first old", []string{"7200", "0"}, 2 * time.Hour},
		{"empty list elements skipped", []string{" , ,5, 9"}, 5 * time.Second},
		{"empty first line skipped", []string{"", "9"}, 9 * time.Second},
		{"non-numeric ignored", []string{"abc"}, 0},
		{"negative ignored", []string{"-7200"}, 0},
		{"plus sign ignored", []string{"+7200"}, 0},
		{"float ignored", []string{"7200.0"}, 0},
		{"parameter ignored", []string{"7200;foo=bar"}, 0},
		{"numeric parameter ignored", []string{"7200;foo=111"}, 0},
		{"invalid first member, valid second: ignored", []string{"x, 60"}, 0},
		{"inner space ignored", []string{"72 00"}, 0},
		{"clamped at 2^31 s §1.2.2", []string{"99999999999999999999"}, 2147483648 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseAge(tt.vals); got != tt.want {
				t.Errorf("parseAge(%q) = %v, want %v", tt.vals, got, tt.want)
			}
		})
	}
}

func TestAppendAge(t *testing.T) {
	tests := []struct {
		age  time.Duration
		want string
	}{
		{0, "0"},
		{-time.Hour, "0"},
		{999 * time.Millisecond, "0"},
		{61500 * time.Millisecond, "61"},
		{MaxSentAge, "31536000"},
		{MaxSentAge + time.Second, "31536000"},
		// What an upstream Age: 2147483648 becomes once resident.
		{2147483648*time.Second + 5*time.Second, "31536000"},
		{time.Duration(1<<63 - 1), "31536000"},
	}
	for _, tt := range tests {
		if got := string(AppendAge([]byte("Age: "), tt.age)); got != "Age: "+tt.want {
			t.Errorf("AppendAge(%v) = %q, want %q", tt.age, got, "Age: "+tt.want)
		}
	}
}
