package httpcache

import (
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Key returns the primary cache key of a request: the lowercased scheme,
// "://", the lowercased host without its default port (80 for http, 443
// for https; an empty port is dropped too), and the request-target path and
// query exactly as received, without decoding. An empty request-target
// stands for "/"; an absolute-form target ("http://h/p?q") contributes only
// its path and query.
//
//	Key("http", "WWW.Example.com:80", "/a?b") == "http://www.example.com/a?b"
func Key(scheme, host, requestURI string) string {
	scheme = lowerASCII(scheme)
	host = normalHost(scheme, host)
	switch {
	case requestURI == "":
		requestURI = "/"
	case requestURI[0] != '/' && requestURI != "*":
		if i := strings.Index(requestURI, "://"); i >= 0 {
			rest := requestURI[i+3:]
			if j := strings.IndexAny(rest, "/?"); j >= 0 {
				requestURI = rest[j:]
			} else {
				requestURI = "/"
			}
			if requestURI[0] == '?' {
				requestURI = "/" + requestURI
			}
		}
	}
	return scheme + "://" + host + requestURI
}

// normalHost lowercases host and removes the scheme's default port.
func normalHost(scheme, host string) string {
	host = lowerASCII(host)
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return host
	}
	name, port := host[:i], host[i+1:]
	if strings.IndexByte(name, ':') >= 0 && !strings.HasSuffix(name, "]") {
		return host // a bare IPv6 address, no port
	}
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return name
	}
	return host
}

// RemoveHopByHop removes, in place, the hop-by-hop fields: Connection,
// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
// Proxy-Authenticate, Proxy-Authorization, and every field named in
// Connection (RFC 9110 §7.6.1).
func RemoveHopByHop(h http.Header) {
	for _, line := range h["Connection"] {
		for _, name := range strings.Split(line, ",") {
			if name = trimOWS(name); isToken(name) {
				h.Del(name)
			}
		}
	}
	// The fields that describe one connection (RFC 9110 §7.6.1), plus the
	// proxy authentication fields, which a shared cache must not store
	// (RFC 9111 §3.1).
	for _, k := range [...]string{
		"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
	} {
		delete(h, k)
	}
}

// StorableHeader returns a copy of a response header as this cache stores
// it (RFC 9111 §3.1):
//   - hop-by-hop fields removed (RemoveHopByHop), and
//     Proxy-Authentication-Info;
//   - fields named by a qualified no-cache="..." or private="..." removed
//     (§5.2.2.4, §5.2.2.7), from Cache-Control and from the targeted fields;
//
// Set-Cookie is kept: RFC 9111 §7.3 says it does not inhibit caching, and a
// cacheable response with Set-Cookie is replayed as the origin marked it.
// Origins mark personalised responses private or no-store.
func StorableHeader(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	RemoveHopByHop(out)
	delete(out, "Proxy-Authentication-Info")
	stripQualified(out)
	return out
}

// stripQualified removes the fields named by qualified no-cache and private
// directives of h's Cache-Control and targeted fields.
func stripQualified(h http.Header) {
	var names []string
	for _, f := range [...]string{hCacheControl, hCDNCacheControl, hSurrogate} {
		v := h[f]
		if len(v) == 0 {
			continue
		}
		for _, line := range v {
			sc := scanner{s: line}
			for {
				d, ok := sc.next()
				if !ok {
					break
				}
				if d.hasVal && (strings.EqualFold(d.name, "no-cache") || strings.EqualFold(d.name, "private")) {
					names = append(names, fieldNameList(d.arg())...)
				}
			}
		}
	}
	for _, n := range names {
		delete(h, n)
	}
}

// UpdateStoredHeader returns the header of a stored response updated from a
// 304 (Not Modified) or HEAD response (RFC 9111 §3.2, §4.3.4, §4.3.5): every
// field present in fresh replaces the stored field of that name, except
//   - the fields StorableHeader removes (hop-by-hop and proxy fields,
//     fields named by qualified no-cache or private);
//   - Content-Length (§3.2), and the fields the stored bytes depend on:
//     Content-Encoding, Content-Range, Content-MD5 and ETag (§3.2 lets a
//     cache keep such fields to assure the integrity of the stored
//     response; a 304 that carried another ETag did not validate it).
//
// Fields of the stored response that fresh omits are kept, except Age: the
// caller is expected to reset the stored RequestTime and ResponseTime to the
// validating exchange, so the stored Age would count twice; fresh's Age, if
// any, is taken. Fields named by qualified no-cache or private in the
// merged Cache-Control are removed. stored and fresh are not modified.
func UpdateStoredHeader(stored, fresh http.Header) http.Header {
	out := stored.Clone()
	if out == nil {
		out = http.Header{}
	}
	delete(out, hAge)
	f := StorableHeader(fresh)
	for k, v := range f {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		switch ck {
		case "Content-Length", "Content-Encoding", "Content-Range", "Content-Md5", "Etag":
			continue
		}
		out[ck] = v
	}
	stripQualified(out)
	return out
}

// VaryNames returns the field names listed in the response's Vary field
// (RFC 9111 §4.1), canonicalised, deduplicated and sorted; star is true when
// one member is "*" (the response then never matches a later request).
// Members that are not tokens are ignored.
func VaryNames(h http.Header) (names []string, star bool) {
	for _, line := range h[hVary] {
		for _, m := range strings.Split(line, ",") {
			m = trimOWS(m)
			switch {
			case m == "*":
				star = true
			case isToken(m):
				names = append(names, textproto.CanonicalMIMEHeaderKey(m))
			}
		}
	}
	if len(names) < 2 {
		return names, star
	}
	sort.Strings(names)
	out := names[:1]
	for _, n := range names[1:] {
		if n != out[len(out)-1] {
			out = append(out, n)
		}
	}
	return out, star
}

// VaryKey computes the secondary cache key of a request for the given Vary
// names (RFC 9111 §4.1): for each name, the request's field lines combined
// and normalised (list members split at commas outside quoted strings,
// surrounding whitespace trimmed, inner runs of spaces and tabs folded into
// one space, empty members dropped, rejoined with ", "). An absent field is
// distinct from an empty one. Names are used in the order given (pass
// VaryNames' sorted result); the encoding is unambiguous for any values.
func VaryKey(names []string, reqHeader http.Header) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('\n')
		}
		cn := textproto.CanonicalMIMEHeaderKey(n)
		b.WriteString(cn)
		b.WriteByte(':')
		vals, ok := reqHeader[cn]
		if !ok {
			b.WriteByte('-')
			continue
		}
		b.WriteString(strconv.Quote(normaliseValues(vals)))
	}
	return b.String()
}

func normaliseValues(vals []string) string {
	var b strings.Builder
	for _, line := range vals {
		for _, m := range splitList(line) {
			m = foldSpace(trimOWS(m))
			if m == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(m)
		}
	}
	return b.String()
}

// splitList splits a field value at commas outside quoted strings.
func splitList(s string) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func foldSpace(s string) string {
	if !strings.Contains(s, "  ") && !strings.ContainsRune(s, '\t') {
		return s
	}
	var b strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// InvalidationKeys returns the primary keys to invalidate after an unsafe
// request (RFC 9111 §4.4), when the response status is 2xx or 3xx (nil
// otherwise): the target URI's key, then the keys of the URIs in Location
// and Content-Location, resolved against the target URI, when they have the
// same origin (scheme and host, default port ignored). Duplicates are
// removed. Whether the method is unsafe is the caller's call.
func InvalidationKeys(scheme, host, requestURI string, status int, respHeader http.Header) []string {
	if status < 200 || status > 399 {
		return nil
	}
	self := Key(scheme, host, requestURI)
	keys := []string{self}
	base, err := url.Parse(self)
	if err != nil {
		base = &url.URL{Scheme: lowerASCII(scheme), Host: normalHost(lowerASCII(scheme), host), Path: "/"}
	}
	origin := base.Scheme + "://" + normalHost(base.Scheme, base.Host)
	for _, f := range [...]string{"Location", "Content-Location"} {
		v := trimOWS(first(respHeader, f))
		if v == "" {
			continue
		}
		ref, err := url.Parse(v)
		if err != nil {
			continue
		}
		u := base.ResolveReference(ref)
		us := lowerASCII(u.Scheme)
		if us+"://"+normalHost(us, u.Host) != origin {
			continue
		}
		target := u.EscapedPath()
		if target == "" {
			target = "/"
		}
		if u.RawQuery != "" || u.ForceQuery {
			target += "?" + u.RawQuery
		}
		k := Key(us, u.Host, target)
		dup := false
		for _, o := range keys {
			if o == k {
				dup = true
				break
			}
		}
		if !dup {
			keys = append(keys, k)
		}
	}
	return keys
}

// TargetSurrogateControl rewrites h's Surrogate-Control field (Edge
// Architecture Specification 1.0) for the surrogate named token: a directive
// targeted at token ("max-age=60;kubecdn") applies as if untargeted, a
// directive targeted at another surrogate is dropped, and untargeted
// directives stay. A field left empty is removed.
func TargetSurrogateControl(h http.Header, token string) {
	vals := h[hSurrogate]
	if len(vals) == 0 {
		return
	}
	var kept []string
	for _, line := range vals {
		for _, d := range strings.Split(line, ",") {
			d = strings.TrimSpace(d)
			if d == "" {
				continue
			}
			if dir, target, ok := strings.Cut(d, ";"); ok {
				if !strings.EqualFold(strings.TrimSpace(target), token) {
					continue
				}
				d = strings.TrimSpace(dir)
			}
			kept = append(kept, d)
		}
	}
	if len(kept) == 0 {
		delete(h, hSurrogate)
		return
	}
	h[hSurrogate] = []string{strings.Join(kept, ", ")}
}
