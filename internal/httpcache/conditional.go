package httpcache

import (
	"net/http"
	"time"
)

// entityTag is a parsed entity-tag (RFC 9110 §8.8.3); opaque includes the
// double quotes.
type entityTag struct {
	opaque string
	weak   bool
}

// parseETag parses one entity-tag at the start of s (after OWS) and returns
// the rest of s.
func parseETag(s string) (t entityTag, rest string, ok bool) {
	s = trimOWS(s)
	if len(s) >= 2 && s[0] == 'W' && s[1] == '/' {
		t.weak = true
		s = s[2:]
	}
	if len(s) < 2 || s[0] != '"' {
		return entityTag{}, "", false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			t.opaque = s[:i+1]
			return t, s[i+1:], true
		}
		if !(c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80) {
			return entityTag{}, "", false
		}
	}
	return entityTag{}, "", false
}

// singleETag parses a field value that must be exactly one entity-tag.
func singleETag(s string) (entityTag, bool) {
	t, rest, ok := parseETag(s)
	if !ok || trimOWS(rest) != "" {
		return entityTag{}, false
	}
	return t, true
}

// matchesList reports whether the If-Match / If-None-Match field lines
// match the representation's entity-tag: "*" matches any (the caller only
// asks for an existing representation); otherwise a member must equal
// current by strong comparison (both strong, same opaque-tag) or weak
// comparison (same opaque-tag), RFC 9110 §8.8.3.2. A member list that does
// not parse stops matching at the bad member.
func matchesList(lines []string, current entityTag, haveCurrent, strong bool) bool {
	for _, line := range lines {
		s := line
		for {
			s = trimOWS(s)
			for len(s) > 0 && (s[0] == ',' || s[0] == ' ' || s[0] == '\t') {
				s = s[1:]
			}
			if s == "" {
				break
			}
			if s[0] == '*' {
				return true
			}
			t, rest, ok := parseETag(s)
			if !ok {
				break
			}
			s = rest
			if !haveCurrent {
				continue
			}
			if strong {
				if !t.weak && !current.weak && t.opaque == current.opaque {
					return true
				}
			} else if t.opaque == current.opaque {
				return true
			}
		}
	}
	return false
}

// EvaluateConditional evaluates a client's preconditions against a stored
// response, in the order of RFC 9110 §13.2.2, and returns 0 to proceed,
// 304 (Not Modified) or 412 (Precondition Failed):
//  1. If-Match: strong comparison with ETag, "*" matches; false: 412;
//  2. else If-Unmodified-Since (valid HTTP-date, and a valid
//     Last-Modified): Last-Modified later than it: 412;
//  3. If-None-Match: weak comparison, "*" matches; a match gives 304 for
//     GET and HEAD, 412 otherwise;
//  4. else, for GET and HEAD, If-Modified-Since (one valid HTTP-date, and a
//     valid Last-Modified): Last-Modified not later than it: 304.
//
// Preconditions are ignored (0) when the stored status is not 2xx
// (§13.2.1): a stored 404 is served as is.
func EvaluateConditional(method string, reqHeader http.Header, status int, respHeader http.Header) int {
	if status < 200 || status > 299 {
		return 0
	}
	current, haveCurrent := singleETag(first(respHeader, hETag))
	ref := dateRef(respHeader)
	lm, haveLM := parseHTTPDate(first(respHeader, hLastModified), ref)
	if im := reqHeader["If-Match"]; len(im) > 0 {
		if !matchesList(im, current, haveCurrent, true) {
			return http.StatusPreconditionFailed
		}
	} else if ius, ok := parseHTTPDate(first(reqHeader, "If-Unmodified-Since"), ref); ok && haveLM {
		if lm.After(ius) {
			return http.StatusPreconditionFailed
		}
	}
	safe := method == http.MethodGet || method == http.MethodHead
	if inm := reqHeader["If-None-Match"]; len(inm) > 0 {
		if matchesList(inm, current, haveCurrent, false) {
			if safe {
				return http.StatusNotModified
			}
			return http.StatusPreconditionFailed
		}
		return 0
	}
	if ims := reqHeader["If-Modified-Since"]; safe && len(ims) == 1 && haveLM {
		if t, ok := parseHTTPDate(ims[0], ref); ok && !lm.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// IfRangeMatches evaluates an If-Range value against a stored response
// (RFC 9110 §13.1.5); when false, the caller ignores Range and sends the
// whole representation. An entity-tag matches only by strong comparison
// with a strong ETag (a weak tag on either side never matches). An
// HTTP-date matches only when it equals Last-Modified exactly and that
// Last-Modified is a strong validator for a cache, i.e. the stored Date is
// at least one second later (§8.8.2.2). An empty or invalid value does not
// match.
func IfRangeMatches(ifRange string, respHeader http.Header) bool {
	v := trimOWS(ifRange)
	if v == "" {
		return false
	}
	if v[0] == '"' || (len(v) > 1 && v[0] == 'W' && v[1] == '/') {
		t, ok := singleETag(v)
		if !ok || t.weak {
			return false
		}
		cur, ok := singleETag(first(respHeader, hETag))
		return ok && !cur.weak && cur.opaque == t.opaque
	}
	ref := dateRef(respHeader)
	t, ok := parseHTTPDate(v, ref)
	if !ok {
		return false
	}
	lm, ok := parseHTTPDate(first(respHeader, hLastModified), ref)
	if !ok || !lm.Equal(t) {
		return false
	}
	return !ref.IsZero() && ref.Sub(lm) >= time.Second
}

// dateRef is the stored response's Date when it is in a form with a
// four-digit year: the "now" against which the two-digit years of
// rfc850-dates in the conditionals are resolved (RFC 9110 §5.6.7), the
// decisions here having no clock. Without such a Date an rfc850-date is not
// understood and its precondition is ignored, which is safe: the whole
// representation is served.
func dateRef(respHeader http.Header) time.Time {
	t, _ := parseHTTPDate(first(respHeader, hDate), time.Time{})
	return t
}
