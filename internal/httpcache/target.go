package httpcache

import "strings"

// NormalTarget reports whether the path of an origin-form request target
// (path, then an optional "?query") is already what NormalizeTarget returns:
// no "." or ".." segment and no percent-encoded dot. It does not allocate, so
// a fast path can ask it of every request and hand the others over.
func NormalTarget[T string | []byte](target T) bool {
	segStart := 0
	for i := 0; i < len(target); i++ {
		c := target[i]
		switch {
		case c == '?':
			return !dotSegment(target[segStart:i])
		case c == '/':
			if dotSegment(target[segStart:i]) {
				return false
			}
			segStart = i + 1
		case c == '%' && i+2 < len(target) && target[i+1] == '2' && (target[i+2] == 'e' || target[i+2] == 'E'):
			return false
		}
	}
	return !dotSegment(target[segStart:])
}

func dotSegment[T string | []byte](seg T) bool {
	return (len(seg) == 1 && seg[0] == '.') || (len(seg) == 2 && seg[0] == '.' && seg[1] == '.')
}

// NormalizeTarget normalises the path of an origin-form request target (an
// escaped path starting with "/", then an optional "?query", which is left
// as it is), so that what the cache keys and what the origin is asked for
// name the same resource and never lie above the root:
//   - a percent-encoded dot (%2e, %2E) is decoded: the dot is unreserved, so
//     the two spellings are equivalent (RFC 3986 §6.2.2.2), and an origin
//     that decodes before resolving would otherwise see ".." where the
//     cache saw none;
//   - dot segments are removed (RFC 3986 §5.2.4 remove_dot_segments): "."
//     goes, ".." takes the segment before it with it, and a ".." at the
//     root stays at the root, so "/../secret" is "/secret".
//
// A target that is already normal (NormalTarget) is returned as it is. The
// result is normal, so NormalizeTarget is idempotent. A target that does
// not start with "/" (e.g. "*") is returned as it is.
func NormalizeTarget(target string) string {
	if !strings.HasPrefix(target, "/") || NormalTarget(target) {
		return target
	}
	path, query, hasQuery := strings.Cut(target, "?")
	path = decodeDots(path)
	segs := strings.Split(path[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
			continue
		}
		if last {
			// "/a/." and "/a/b/.." name the directory: keep its slash.
			out = append(out, "")
		}
	}
	var b strings.Builder
	b.Grow(len(target))
	for _, seg := range out {
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if len(out) == 0 {
		b.WriteByte('/')
	}
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// decodeDots replaces every %2e and %2E in p with ".".
func decodeDots(p string) string {
	if !strings.Contains(p, "%2") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && p[i+1] == '2' && (p[i+2] == 'e' || p[i+2] == 'E') {
			b.WriteByte('.')
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
