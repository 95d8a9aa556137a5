package httpcache

import (
	"testing"
	"time"
)

func TestParseHTTPDate(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	d := func(y int, mo time.Month, day, h, mi, s int) time.Time {
		return time.Date(y, mo, day, h, mi, s, 0, time.UTC)
	}
	tests := []struct {
		name string
		in   string
		now  time.Time
		ok   bool
		want time.Time
	}{
		{"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", now, true, d(1994, 11, 6, 8, 49, 37)},
		{"IMF-fixdate with surrounding OWS", " \tSun, 06 Nov 1994 08:49:37 GMT ", now, true, d(1994, 11, 6, 8, 49, 37)},
		{"IMF-fixdate without a clock", "Sun, 06 Nov 1994 08:49:37 GMT", time.Time{}, true, d(1994, 11, 6, 8, 49, 37)},
		{"IMF-fixdate leap second", "Wed, 31 Dec 2025 23:59:60 GMT", now, true, d(2026, 1, 1, 0, 0, 0)},
		{"day name not tied to the date", "Mon, 06 Nov 1994 08:49:37 GMT", now, true, d(1994, 11, 6, 8, 49, 37)},
		{"rfc850-date", "Sunday, 06-Nov-94 08:49:37 GMT", now, true, d(1994, 11, 6, 8, 49, 37)},
		{"rfc850-date near future stays ahead", "Thursday, 18-Aug-50 02:01:18 GMT", now, true, d(2050, 8, 18, 2, 1, 18)},
		{"rfc850-date 50 years ahead is kept", "Friday, 01-Jan-76 00:00:00 GMT", now, true, d(2076, 1, 1, 0, 0, 0)},
		{"rfc850-date more than 50 years ahead is the past §5.6.7", "Thursday, 01-Jan-77 00:00:00 GMT", now, true, d(1977, 1, 1, 0, 0, 0)},
		{"rfc850-date resolved against an old clock", "Tuesday, 01-Jan-30 00:00:00 GMT", d(1990, 1, 1, 0, 0, 0), true, d(2030, 1, 1, 0, 0, 0)},
		{"rfc850-date resolved across a century", "Tuesday, 01-Jan-30 00:00:00 GMT", d(2090, 1, 1, 0, 0, 0), true, d(2130, 1, 1, 0, 0, 0)},
		{"rfc850-date without a clock", "Sunday, 06-Nov-94 08:49:37 GMT", time.Time{}, false, time.Time{}},
		{"rfc850-date Wednesday", "Wednesday, 09-Nov-94 08:49:37 GMT", now, true, d(1994, 11, 9, 8, 49, 37)},
		{"asctime-date", "Sun Nov  6 08:49:37 1994", now, true, d(1994, 11, 6, 8, 49, 37)},
		{"asctime-date two-digit day", "Sun Nov 16 08:49:37 1994", now, true, d(1994, 11, 16, 8, 49, 37)},
		{"asctime-date zero-padded day", "Sun Nov 06 08:49:37 1994", now, true, d(1994, 11, 6, 8, 49, 37)},

		{"31 Apr", "Sun, 31 Apr 1994 08:49:37 GMT", now, false, time.Time{}},
		{"29 Feb of a common year", "Sun, 29 Feb 2026 08:49:37 GMT", now, false, time.Time{}},
		{"hour 24", "Sun, 06 Nov 1994 24:49:37 GMT", now, false, time.Time{}},
		{"minute 60", "Sun, 06 Nov 1994 23:60:37 GMT", now, false, time.Time{}},
		{"second 61", "Sun, 06 Nov 1994 23:59:61 GMT", now, false, time.Time{}},
		{"day 00", "Sun, 00 Nov 1994 08:49:37 GMT", now, false, time.Time{}},
		{"unknown day name", "Xyz, 06 Nov 1994 08:49:37 GMT", now, false, time.Time{}},
		{"zero", "0", now, false, time.Time{}},
		{"empty", "", now, false, time.Time{}},
		// The cache-tests suite's invalid Expires values (expires-parse).
		{"no comma", "Thu 18 Aug 2050 02:01:18 GMT", now, false, time.Time{}},
		{"doubled spaces", "Thu, 18  Aug  2050 02:01:18 GMT", now, false, time.Time{}},
		{"one-digit hour", "Thu, 18 Aug 2050 2:01:18 GMT", now, false, time.Time{}},
		{"one-digit day", "Thu, 8 Aug 2050 02:01:18 GMT", now, false, time.Time{}},
		{"two-digit year in IMF-fixdate", "Thu, 18 Aug 50 02:01:18 GMT", now, false, time.Time{}},
		{"dashes in IMF-fixdate", "Thu, 18-Aug-2050 02:01:18 GMT", now, false, time.Time{}},
		{"periods in the time", "Thu, 18 Aug 2050 02.01.18 GMT", now, false, time.Time{}},
		{"UTC", "Thu, 18 Aug 2050 02:01:18 UTC", now, false, time.Time{}},
		{"AEST", "Thu, 18 Aug 2050 02:01:18 AEST", now, false, time.Time{}},
		{"lower-case zone", "Thu, 18 Aug 2050 02:01:18 gMT", now, false, time.Time{}},
		{"upper-case day", "THU, 18 Aug 2050 02:01:18 GMT", now, false, time.Time{}},
		{"upper-case month", "Thu, 18 AUG 2050 02:01:18 GMT", now, false, time.Time{}},
		{"numeric zone", "Thu, 18 Aug 2050 02:01:18 +0000", now, false, time.Time{}},
		{"trailing garbage", "Thu, 18 Aug 2050 02:01:18 GMTX", now, false, time.Time{}},
		{"signed year", "Thu, 18 Aug +050 02:01:18 GMT", now, false, time.Time{}},
		{"rfc850 short day name", "Sun, 06-Nov-94 08:49:37 GMT", now, false, time.Time{}},
		{"rfc850 four-digit year", "Sunday, 06-Nov-1994 08:49:37 GMT", now, false, time.Time{}},
		{"rfc850 without GMT", "Sunday, 06-Nov-94 08:49:37", now, false, time.Time{}},
		{"rfc850 lower-case day", "sunday, 06-Nov-94 08:49:37 GMT", now, false, time.Time{}},
		{"asctime one space before one digit", "Sun Nov 6 08:49:37 1994", now, false, time.Time{}},
		{"asctime with GMT", "Sun Nov  6 08:49:37 1994 GMT", now, false, time.Time{}},
		{"asctime space-padded two-digit slot", "Sun Nov 1  08:49:37 1994", now, false, time.Time{}},
		{"asctime one-digit hour", "Sun Nov 16 8:49:37  1994", now, false, time.Time{}},
		{"the ANSI C check of the suite", "Thu Aug  8 02:01:18 2050", now, true, d(2050, 8, 8, 2, 1, 18)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseHTTPDate(tt.in, tt.now)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("parseHTTPDate(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestParseHTTPDateAllocs keeps the hit path allocation-free for every
// form, not only IMF-fixdate.
func TestParseHTTPDateAllocs(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "garbage"} {
		if n := testing.AllocsPerRun(100, func() { parseHTTPDate(s, now) }); n != 0 {
			t.Errorf("parseHTTPDate(%q) allocates %v times", s, n)
		}
	}
}
