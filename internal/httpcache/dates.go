package httpcache

import (
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) exactly as its grammar
// spells it, in one of the three forms a recipient must accept:
//
//	IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
//	rfc850-date  Sunday, 06-Nov-94 08:49:37 GMT
//	asctime-date Sun Nov  6 08:49:37 1994
//
// Anything else is invalid: other zones, lower or upper case names (the
// format is case-sensitive), one-digit fields, doubled spaces, dashes in an
// IMF-fixdate, a missing comma. A lenient parser turns such values into far
// futures, while RFC 9111 §5.3 says an invalid Expires means already
// expired. Calendar dates that do not exist (31 Apr) are invalid; the day
// name is not checked against the date, as the grammar does not tie them.
//
// The two-digit year of an rfc850-date is resolved against now: a year more
// than 50 years in the future is taken as the most recent past year with the
// same last two digits (§5.6.7). With a zero now, there is nothing to
// resolve against and an rfc850-date is invalid. s is trimmed of the
// optional whitespace around a field value. No form allocates.
func parseHTTPDate(s string, now time.Time) (time.Time, bool) {
	s = trimOWS(s)
	switch {
	case len(s) == len("Sun, 06 Nov 1994 08:49:37 GMT") && s[3] == ',':
		return parseIMFFixdate(s)
	case len(s) == len("Sun Nov  6 08:49:37 1994"):
		return parseASCTime(s)
	case len(s) > 3 && s[3] != ',':
		return parseRFC850(s, now)
	}
	return time.Time{}, false
}

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if len(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || s[25:] != " GMT" || !validDayName(s[:3]) {
		return time.Time{}, false
	}
	day, ok1 := digits(s[5:7])
	year, ok2 := digits(s[12:16])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	return dateOf(year, monthIndex(s[8:11]), day, s[17:25])
}

// parseASCTime parses "Sun Nov  6 08:49:37 1994" (C's asctime format): the
// day is two digits, or a space and one digit.
func parseASCTime(s string) (time.Time, bool) {
	if len(s) != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' || !validDayName(s[:3]) {
		return time.Time{}, false
	}
	d := s[8:10]
	if d[0] == ' ' {
		d = d[1:]
	}
	day, ok1 := digits(d)
	year, ok2 := digits(s[20:24])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	return dateOf(year, monthIndex(s[4:7]), day, s[11:19])
}

// parseRFC850 parses "Sunday, 06-Nov-94 08:49:37 GMT", resolving the year
// against now.
func parseRFC850(s string, now time.Time) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(s) && i < len("Wednesday,"); i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 || !validLongDayName(s[:comma]) || now.IsZero() {
		return time.Time{}, false
	}
	r := s[comma:] // ", 06-Nov-94 08:49:37 GMT"
	if len(r) != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20:] != " GMT" {
		return time.Time{}, false
	}
	day, ok1 := digits(r[2:4])
	yy, ok2 := digits(r[9:11])
	if !ok1 || !ok2 {
		return time.Time{}, false
	}
	// The year with those last two digits in the window of a century that
	// ends 50 years after now's year: more than 50 years ahead moves back a
	// century (§5.6.7), and a year that far behind is the next century's.
	cur := now.UTC().Year()
	year := cur - cur%100 + yy
	if year > cur+50 {
		year -= 100
	} else if year <= cur-50 {
		year += 100
	}
	return dateOf(year, monthIndex(r[5:8]), day, r[12:20])
}

// dateOf checks a time-of-day "08:49:37" and builds the time; the day must
// exist in that month.
func dateOf(year, month, day int, tod string) (time.Time, bool) {
	if tod[2] != ':' || tod[5] != ':' {
		return time.Time{}, false
	}
	hour, ok1 := digits(tod[0:2])
	minute, ok2 := digits(tod[3:5])
	sec, ok3 := digits(tod[6:8])
	// second 60 is a leap second (RFC 9110 §5.6.7: 23:59:60).
	if !ok1 || !ok2 || !ok3 || month == 0 || day < 1 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day && !(sec == 60 && t.Add(-time.Second).Day() == day) {
		return time.Time{}, false // e.g. 31 Apr
	}
	return t, true
}

// digits parses a field of decimal digits; an empty field is invalid.
func digits(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func validDayName(s string) bool {
	switch s {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
		return true
	}
	return false
}

func validLongDayName(s string) bool {
	switch s {
	case "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday":
		return true
	}
	return false
}

func monthIndex(s string) int {
	switch s {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}
