package httpcache

import (
	"strconv"
	"strings"
	"time"
)

// MaxSentAge caps the Age this cache sends (AppendAge). The age it computes
// can be absurd — an upstream may send Age: 2147483648, the clamped
// delta-seconds of RFC 9111 §1.2.2 — and a client must not be told that an
// object is 68 years old. A year is longer than the lifetime origins give
// their most durable objects (max-age=31536000 is the customary "forever"),
// so a capped Age still marks stale whatever is stale under such a
// lifetime; only a response with a longer lifetime, older than a year, is
// reported younger than it is.
const MaxSentAge = 365 * 24 * time.Hour

// AppendAge appends the Age field value for a response of the given current
// age (CurrentAge, or Decide's age): whole seconds, rounded down (§4.2.3
// counts in seconds), at least 0 and at most MaxSentAge. It is the one place
// the edge formats Age, on every path that sends a stored response.
func AppendAge(dst []byte, age time.Duration) []byte {
	age = min(max(age, 0), MaxSentAge)
	return strconv.AppendInt(dst, int64(age/time.Second), 10)
}

// parseAge reads the Age field (RFC 9111 §5.1). Age is a singleton, but a
// list-based value (a comma list, or several field lines, which are one
// list) is read by its first member, the rest discarded; empty list
// elements are skipped (RFC 9110 §5.6.1). A first member that is not
// delta-seconds (non-numeric, negative, a fraction, a parameter) makes the
// field invalid, and an invalid Age is ignored: 0. A too large value is
// clamped at 2^31 s (§1.2.2). It does not allocate.
func parseAge(vals []string) time.Duration {
	for _, line := range vals {
		for line != "" {
			m := line
			if i := strings.IndexByte(line, ','); i >= 0 {
				m, line = line[:i], line[i+1:]
			} else {
				line = ""
			}
			if m = trimOWS(m); m == "" {
				continue
			}
			d, ok := parseDeltaSeconds(m)
			if !ok {
				return 0
			}
			return d
		}
	}
	return 0
}
