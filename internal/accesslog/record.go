// Package accesslog is the edge's access log: one JSON line per request,
// with the fields CDN users know from CloudFront's and Fastly's logs, and
// the reading side of the same format (Time, Merger) that `kubecdn logs`
// uses to merge the lines of many edges in time order.
//
// Writing costs no allocation per line: a Record is encoded by hand into a
// pooled buffer and copied into a bounded batch that a background goroutine
// writes out. When the sink cannot keep up, lines are dropped and counted,
// never waited for: a slow disk or a full pipe must not slow requests.
package accesslog

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// Cache outcomes (the "cache" field), as CDN logs name them.
const (
	Hit         = "hit"         // served from the cache
	Miss        = "miss"        // fetched upstream (stored, or joined a fetch)
	Stale       = "stale"       // a stale copy served (while revalidating, or on an upstream error)
	Revalidated = "revalidated" // the stored copy confirmed upstream (304)
	Pass        = "pass"        // not cacheable by request: sent upstream as it is
	Error       = "error"       // answered with an error of the edge's own
	Refused     = "refused"     // refused before anything else (unknown host, loop, method)
)

// Record is one request as the access log writes it. Strings may alias
// buffers the caller reuses: Logger.Log encodes the record before it
// returns and keeps nothing of it.
type Record struct {
	// Time is when the response ended (as CloudFront's date and time):
	// each edge's lines are then written in time order.
	Time       time.Time
	Client     netip.AddrPort
	Method     string
	Host       string
	URL        string // path and query, as the client sent them
	Protocol   string // "HTTP/1.1", "HTTP/2"
	TLSVersion string // "TLSv1.3"; empty for plain HTTP
	Status     int
	Bytes      int64 // body bytes sent
	Duration   time.Duration
	TTFB       time.Duration // to the response header
	Cache      string        // one of the outcomes above
	// UpstreamStatus and UpstreamTime are set when this request went
	// upstream itself (0: it did not).
	UpstreamStatus int
	UpstreamTime   time.Duration
	UserAgent      string
	Referer        string
}

// AppendJSON appends r as one JSON object, without a newline; edge and
// region are JSON-encoded string values with their quotes (Logger encodes
// them once).
func (r *Record) AppendJSON(b []byte, edge, region []byte) []byte {
	b = append(b, `{"time":"`...)
	b = AppendTime(b, r.Time)
	b = append(b, `","edge":`...)
	b = append(b, edge...)
	b = append(b, `,"region":`...)
	b = append(b, region...)
	if r.Client.IsValid() {
		b = append(b, `,"client":"`...)
		b = r.Client.Addr().AppendTo(b)
		b = append(b, `","client_port":`...)
		b = strconv.AppendUint(b, uint64(r.Client.Port()), 10)
	}
	b = appendField(b, `,"method":`, r.Method)
	b = appendField(b, `,"host":`, r.Host)
	b = appendField(b, `,"url":`, r.URL)
	b = appendField(b, `,"protocol":`, r.Protocol)
	if r.TLSVersion != "" {
		b = appendField(b, `,"tls":`, r.TLSVersion)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, max(r.Bytes, 0), 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, r.Duration)
	b = append(b, `,"ttfb_ms":`...)
	b = appendMillis(b, r.TTFB)
	b = appendField(b, `,"cache":`, r.Cache)
	if r.UpstreamStatus != 0 {
		b = append(b, `,"upstream_status":`...)
		b = strconv.AppendInt(b, int64(r.UpstreamStatus), 10)
		b = append(b, `,"upstream_ms":`...)
		b = appendMillis(b, r.UpstreamTime)
	}
	if r.UserAgent != "" {
		b = appendField(b, `,"user_agent":`, r.UserAgent)
	}
	if r.Referer != "" {
		b = appendField(b, `,"referer":`, r.Referer)
	}
	return append(b, '}')
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, name...)
	return AppendString(b, v)
}

// AppendTime appends t in UTC as RFC 3339 with milliseconds
// (2006-01-02T15:04:05.000Z), the form every line's "time" has.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, int(mo), 2)
	b = append(b, '-')
	b = appendPad(b, d, 2)
	b = append(b, 'T')
	b = appendPad(b, h, 2)
	b = append(b, ':')
	b = appendPad(b, mi, 2)
	b = append(b, ':')
	b = appendPad(b, s, 2)
	b = append(b, '.')
	b = appendPad(b, ms, 3)
	return append(b, 'Z')
}

// appendPad appends v (0 <= v < 10^width) zero-padded to width digits.
func appendPad(b []byte, v, width int) []byte {
	var d [4]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:width]...)
}

// appendMillis appends d in milliseconds with three decimals (microsecond
// resolution), as a JSON number.
func appendMillis(b []byte, d time.Duration) []byte {
	us := max(d.Microseconds(), 0)
	b = strconv.AppendInt(b, us/1000, 10)
	b = append(b, '.')
	return appendPad(b, int(us%1000), 3)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Quotes, backslashes and control
// characters are escaped; bytes that are not UTF-8 become U+FFFD, and
// U+2028 and U+2029 are escaped, as encoding/json does, so every line is
// valid JSON (and valid JavaScript) whatever a client sent.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
