package httpcache

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// maxRanges is the most range-specs a Range field may hold; with more, the
// field is ignored and the whole representation is sent (RFC 9110 §14.2
// lets a server ignore a Range it considers abusive).
const maxRanges = 32

// ByteRange is an inclusive range of byte positions.
type ByteRange struct{ Start, End int64 }

// ErrUnsatisfiable reports a Range none of whose ranges overlaps the
// representation (answer 416 with Content-Range: bytes */size).
var ErrUnsatisfiable = errors.New("range not satisfiable")

// ParseRange parses a Range field (RFC 9110 §14.2) for a representation of
// size bytes. It returns (nil, nil) when the field is to be ignored: absent,
// another range unit than "bytes" (case-insensitive), syntactically invalid
// (including last-pos < first-pos), more than 32 range-specs, or size < 0
// (unknown). It returns ErrUnsatisfiable when no range-spec is satisfiable
// (a first-pos at or past size, a zero suffix-length, or size 0). Otherwise
// the satisfiable ranges, clamped to size, sorted, with overlapping and
// adjacent ranges coalesced (§14.2 allows coalescing; a single part then
// saves a multipart response).
func ParseRange(header string, size int64) ([]ByteRange, error) {
	if header == "" || size < 0 {
		return nil, nil
	}
	eq := strings.IndexByte(header, '=')
	if eq < 0 || !strings.EqualFold(header[:eq], "bytes") {
		return nil, nil
	}
	var out []ByteRange
	specs := 0
	rest := header[eq+1:]
	for rest != "" {
		spec := rest
		if i := strings.IndexByte(rest, ','); i >= 0 {
			spec, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		spec = trimOWS(spec)
		if spec == "" {
			continue
		}
		if specs++; specs > maxRanges {
			return nil, nil
		}
		dash := strings.IndexByte(spec, '-')
		if dash < 0 {
			return nil, nil
		}
		firstPos, lastPos := spec[:dash], spec[dash+1:]
		if firstPos == "" {
			n, ok := parseSaturating(lastPos)
			if !ok {
				return nil, nil
			}
			if n == 0 || size == 0 {
				continue
			}
			if n > size {
				n = size
			}
			out = append(out, ByteRange{size - n, size - 1})
			continue
		}
		f, ok := parseSaturating(firstPos)
		if !ok {
			return nil, nil
		}
		l := int64(math.MaxInt64)
		if lastPos != "" {
			if l, ok = parseSaturating(lastPos); !ok || l < f {
				return nil, nil
			}
		}
		if f >= size {
			continue
		}
		if l >= size {
			l = size - 1
		}
		out = append(out, ByteRange{f, l})
	}
	if specs == 0 {
		return nil, nil
	}
	if len(out) == 0 {
		return nil, ErrUnsatisfiable
	}
	if len(out) == 1 {
		return out, nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	merged := out[:1]
	for _, r := range out[1:] {
		last := &merged[len(merged)-1]
		if r.Start <= last.End+1 {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged, nil
}

// parseSaturating parses 1*DIGIT, saturating at math.MaxInt64.
func parseSaturating(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + d
	}
	return n, true
}

// ContentRange returns the Content-Range value of r in a representation of
// size bytes, e.g. "bytes 0-99/1000"; a negative size (unknown) gives
// "bytes 0-99/*".
func (r ByteRange) ContentRange(size int64) string {
	total := "*"
	if size >= 0 {
		total = strconv.FormatInt(size, 10)
	}
	return "bytes " + strconv.FormatInt(r.Start, 10) + "-" + strconv.FormatInt(r.End, 10) + "/" + total
}

// Length returns the number of bytes in r.
func (r ByteRange) Length() int64 { return r.End - r.Start + 1 }

// ParseContentRange parses the Content-Range of a 206 response (RFC 9110
// §14.4): "bytes first-last/complete-length", the length being "*" when
// unknown (total is then -1). The unit is case-insensitive. It fails for the
// unsatisfied form "bytes */length", last < first, last >= a known length,
// and numbers that do not fit in int64.
func ParseContentRange(v string) (r ByteRange, total int64, err error) {
	bad := func() (ByteRange, int64, error) {
		return ByteRange{}, 0, fmt.Errorf("invalid content-range %q", v)
	}
	s := trimOWS(v)
	if len(s) < 6 || !strings.EqualFold(s[:6], "bytes ") {
		return bad()
	}
	s = s[6:]
	slash := strings.IndexByte(s, '/')
	if slash < 0 {
		return bad()
	}
	rng, length := s[:slash], s[slash+1:]
	dash := strings.IndexByte(rng, '-')
	if dash < 0 {
		return bad()
	}
	a, ok1 := parseStrict(rng[:dash])
	b, ok2 := parseStrict(rng[dash+1:])
	if !ok1 || !ok2 || b < a {
		return bad()
	}
	total = -1
	if length != "*" {
		t, ok := parseStrict(length)
		if !ok || b >= t {
			return bad()
		}
		total = t
	}
	return ByteRange{a, b}, total, nil
}

// parseStrict parses 1*DIGIT that fits in int64.
func parseStrict(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
