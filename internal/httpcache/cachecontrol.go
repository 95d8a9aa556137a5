package httpcache

import (
	"net/textproto"
	"sort"
	"strings"
	"time"
)

// maxDeltaSeconds is the value a too large delta-seconds is clamped to
// (RFC 9111 §1.2.2).
const maxDeltaSeconds = 2147483648

// conflictPrefix marks, inside a CacheControl map, the second (differing)
// value of a directive that appeared twice. A parsed directive name is a
// token and never contains NUL, so the marker cannot collide with one.
const conflictPrefix = "\x00"

// CacheControl is a parsed Cache-Control-style field (RFC 9111 §5.2; the same
// syntax serves CDN-Cache-Control, RFC 9213, and Surrogate-Control).
//
// Keys are lowercased directive names; values are the argument with a
// quoted-string unquoted ("" when there is none, or for an empty argument).
// For a duplicated directive the first occurrence wins. When a directive
// appears again with a different value, the map also holds the key
// "\x00"+name with that later value, so that Conflicting reports it and
// String reproduces it (RFC 9111 §4.2.1 lets a cache treat such a response
// as stale; Lifetime does so for conflicting max-age and s-maxage).
type CacheControl map[string]string

// ParseCacheControl parses the field lines of a Cache-Control-style field.
// It never panics. Elements that are not a valid cache-directive (RFC 9111
// §5.2: token [ "=" ( token / quoted-string ) ], no whitespace around "=")
// are skipped up to the next comma outside a quoted string.
func ParseCacheControl(values []string) CacheControl {
	cc := CacheControl{}
	for _, line := range values {
		sc := scanner{s: line}
		for {
			d, ok := sc.next()
			if !ok {
				break
			}
			name := lowerASCII(d.name)
			val := d.arg()
			first, seen := cc[name]
			if !seen {
				cc[name] = val
				continue
			}
			if first != val {
				if _, dup := cc[conflictPrefix+name]; !dup {
					cc[conflictPrefix+name] = val
				}
			}
		}
	}
	return cc
}

// Has reports whether the directive name (case-insensitive) is present.
func (cc CacheControl) Has(name string) bool {
	_, ok := cc[lowerASCII(name)]
	return ok
}

// Seconds parses the argument of directive name as delta-seconds
// (RFC 9111 §1.2.2): one or more digits, quoted or not; a value above
// 2147483648 is clamped to it. ok is false when the directive is absent or
// its argument is not delta-seconds (empty, signed, decimal, trailing text).
func (cc CacheControl) Seconds(name string) (d time.Duration, ok bool) {
	v, present := cc[lowerASCII(name)]
	if !present {
		return 0, false
	}
	return parseDeltaSeconds(v)
}

// Conflicting reports whether some directive appeared more than once with
// different values (RFC 9111 §4.2.1).
func (cc CacheControl) Conflicting() bool {
	for k := range cc {
		if strings.HasPrefix(k, conflictPrefix) {
			return true
		}
	}
	return false
}

// String renders the directives canonically: sorted by name, arguments as a
// token when they are one and as a quoted-string otherwise, a conflicting
// later value right after the first. ParseCacheControl of the result yields
// an equal map.
func (cc CacheControl) String() string {
	names := make([]string, 0, len(cc))
	for k := range cc {
		if !strings.HasPrefix(k, conflictPrefix) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		writeDirective(&b, k, cc[k])
		if v, ok := cc[conflictPrefix+k]; ok {
			writeDirective(&b, k, v)
		}
	}
	return b.String()
}

func writeDirective(b *strings.Builder, name, val string) {
	if b.Len() > 0 {
		b.WriteString(", ")
	}
	b.WriteString(name)
	if val == "" {
		return
	}
	b.WriteByte('=')
	if isToken(val) {
		b.WriteString(val)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(val); i++ {
		if c := val[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(val[i])
	}
	b.WriteByte('"')
}

// FieldNames returns the field names listed in the argument of directive
// name, e.g. no-cache="Set-Cookie, X-Foo" or private="x", in canonical
// header-key form (usable with http.Header), without duplicates, in order
// of appearance. Elements that are not tokens are skipped.
func (cc CacheControl) FieldNames(name string) []string {
	v, ok := cc[lowerASCII(name)]
	if !ok {
		return nil
	}
	return fieldNameList(v)
}

func fieldNameList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		e = trimOWS(e)
		if !isToken(e) {
			continue
		}
		e = textproto.CanonicalMIMEHeaderKey(e)
		dup := false
		for _, o := range out {
			if o == e {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}

// rawDirective is one cache-directive as scanned, without allocation.
type rawDirective struct {
	name    string // as written
	val     string // token, or quoted-string content still escaped
	hasVal  bool
	quoted  bool
	escaped bool // quoted content contains a quoted-pair
}

// arg returns the directive's argument with quoting removed.
func (d rawDirective) arg() string {
	if !d.escaped {
		return d.val
	}
	b := make([]byte, 0, len(d.val))
	for i := 0; i < len(d.val); i++ {
		if d.val[i] == '\\' && i+1 < len(d.val) {
			i++
		}
		b = append(b, d.val[i])
	}
	return string(b)
}

// scanner walks the cache-directives of one field line. bad is set when an
// element had to be skipped as garbage.
type scanner struct {
	s   string
	i   int
	bad bool
}

// next returns the next well-formed directive, skipping empty list elements
// and garbage.
func (sc *scanner) next() (rawDirective, bool) {
	s := sc.s
	for {
		for sc.i < len(s) && (s[sc.i] == ',' || s[sc.i] == ' ' || s[sc.i] == '\t') {
			sc.i++
		}
		if sc.i >= len(s) {
			return rawDirective{}, false
		}
		start := sc.i
		j := start
		for j < len(s) && isTchar(s[j]) {
			j++
		}
		if j == start {
			sc.skip(j)
			continue
		}
		d := rawDirective{name: s[start:j]}
		if j < len(s) && s[j] == '=' {
			j++
			d.hasVal = true
			if j < len(s) && s[j] == '"' {
				end, escaped, ok := scanQuoted(s, j)
				if !ok {
					sc.skip(j)
					continue
				}
				d.quoted, d.escaped = true, escaped
				d.val = s[j+1 : end-1]
				j = end
			} else {
				vs := j
				for j < len(s) && isTchar(s[j]) {
					j++
				}
				if j == vs {
					sc.skip(j)
					continue
				}
				d.val = s[vs:j]
			}
		}
		// Only OWS may separate the directive from the next comma.
		k := j
		for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
			k++
		}
		if k < len(s) && s[k] != ',' {
			sc.skip(j)
			continue
		}
		sc.i = k
		return d, true
	}
}

// skip marks garbage and moves past the next comma that is outside a
// quoted string, starting at i.
func (sc *scanner) skip(i int) {
	sc.bad = true
	s := sc.s
	inQuote := false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			sc.i = i + 1
			return
		}
	}
	sc.i = len(s)
}

// scanQuoted scans the quoted-string starting at s[i] == '"' (RFC 9110
// §5.6.4) and returns the index just past its closing quote.
func scanQuoted(s string, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			return j + 1, escaped, true
		case c == '\\':
			if j+1 >= len(s) || !isQuotedPairChar(s[j+1]) {
				return 0, false, false
			}
			escaped = true
			j++
		case !isQdtext(c):
			return 0, false, false
		}
	}
	return 0, false, false
}

func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) || c >= 0x80
}

func isQuotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7E) || c >= 0x80
}

// tcharLo and tcharHi are bit sets of the token characters below 64 and
// from 64 to 127 (RFC 9110 §5.6.2: "!#$%&'*+-.^_`|~", digits, letters).
const (
	tcharLo uint64 = 0x3ff6cfa00000000
	tcharHi uint64 = 0x57ffffffc7fffffe
)

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	if c < 64 {
		return tcharLo&(1<<c) != 0
	}
	return c < 128 && tcharHi&(1<<(c-64)) != 0
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// lowerASCII lowercases ASCII letters; it does not allocate when s has none.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseDeltaSeconds parses 1*DIGIT, clamping at 2^31 seconds.
func parseDeltaSeconds(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= maxDeltaSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	if n > maxDeltaSeconds {
		n = maxDeltaSeconds
	}
	return time.Duration(n) * time.Second, true
}

// seconds is a numeric directive as the decisions use it.
type seconds struct {
	set      bool          // the directive is present
	hasArg   bool          // it has an argument
	valid    bool          // the (first) argument is delta-seconds
	conflict bool          // it appeared again with a different argument
	quoted   bool          // the first argument was a quoted-string
	d        time.Duration // the first argument, if valid
	first    string        // the first argument, unquoted
}

// usable reports whether the value is present, valid and unambiguous.
func (s seconds) usable() bool { return s.set && s.valid && !s.conflict }

func (s *seconds) add(d rawDirective, surrogate bool) {
	v := d.arg()
	if s.set {
		if v != s.first {
			s.conflict = true
		}
		return
	}
	s.set, s.hasArg, s.first, s.quoted = true, v != "", v, d.quoted
	if surrogate {
		// Edge Architecture Specification: max-age=freshness[+revalidation].
		if i := strings.IndexByte(v, '+'); i >= 0 {
			v = v[:i]
		}
	}
	s.d, s.valid = parseDeltaSeconds(v)
}

// directives is the allocation-free view of a Cache-Control-style field
// that the decisions use. Boolean directives are true when present in any
// form; no-cache and private are "qualified" only when every occurrence
// has field names, so that an unqualified one always wins (most
// restrictive, RFC 9111 §4.2.1).
type directives struct {
	count int  // directives seen (ignoring Surrogate-Control content=)
	bad   bool // garbage elements were skipped
	nonSF bool // a name is not a Structured Field key (case aside)

	noStore, noCache, noCacheQualified     bool
	private, privateQualified, public      bool
	mustRevalidate, proxyRevalidate        bool
	mustUnderstand, onlyIfCached           bool
	maxAge, sMaxAge, swr, sie              seconds
	minFresh, maxStale                     seconds
	noCacheUnqualified, privateUnqualified bool
}

func parseDirectives(values []string, surrogate bool) directives {
	var ds directives
	for _, line := range values {
		sc := scanner{s: line}
		for {
			d, ok := sc.next()
			if !ok {
				break
			}
			ds.add(d, surrogate)
		}
		if sc.bad {
			ds.bad = true
		}
	}
	ds.noCacheQualified = ds.noCache && !ds.noCacheUnqualified
	ds.privateQualified = ds.private && !ds.privateUnqualified
	return ds
}

func (ds *directives) add(d rawDirective, surrogate bool) {
	ds.count++
	if !isSFKey(d.name) {
		ds.nonSF = true
	}
	switch directiveID(d.name) {
	case dMaxAge:
		ds.maxAge.add(d, surrogate)
	case dSMaxAge:
		ds.sMaxAge.add(d, surrogate)
	case dNoStore:
		ds.noStore = true
	case dNoCache:
		ds.noCache = true
		if !listsFieldName(d.val) {
			ds.noCacheUnqualified = true
		}
	case dPrivate:
		ds.private = true
		if !listsFieldName(d.val) {
			ds.privateUnqualified = true
		}
	case dPublic:
		ds.public = true
	case dMustRevalidate:
		ds.mustRevalidate = true
	case dProxyRevalidate:
		ds.proxyRevalidate = true
	case dMustUnderstand:
		ds.mustUnderstand = true
	case dOnlyIfCached:
		ds.onlyIfCached = true
	case dSWR:
		ds.swr.add(d, surrogate)
	case dSIE:
		ds.sie.add(d, surrogate)
	case dMinFresh:
		ds.minFresh.add(d, surrogate)
	case dMaxStale:
		ds.maxStale.add(d, surrogate)
	case dContent:
		if surrogate {
			ds.count-- // ESI capability, says nothing about caching
		}
	}
}

// Known directive names.
const (
	dOther = iota
	dMaxAge
	dSMaxAge
	dNoStore
	dNoCache
	dPrivate
	dPublic
	dMustRevalidate
	dProxyRevalidate
	dMustUnderstand
	dOnlyIfCached
	dSWR
	dSIE
	dMinFresh
	dMaxStale
	dContent
)

// directiveID identifies a directive name case-insensitively, comparing
// only with the candidates of the same length.
func directiveID(n string) int {
	eq := strings.EqualFold
	switch len(n) {
	case 6:
		if eq(n, "public") {
			return dPublic
		}
	case 7:
		switch {
		case eq(n, "max-age"):
			return dMaxAge
		case eq(n, "private"):
			return dPrivate
		case eq(n, "content"):
			return dContent
		}
	case 8:
		switch {
		case eq(n, "s-maxage"):
			return dSMaxAge
		case eq(n, "no-store"):
			return dNoStore
		case eq(n, "no-cache"):
			return dNoCache
		}
	case 9:
		switch {
		case eq(n, "max-stale"):
			return dMaxStale
		case eq(n, "min-fresh"):
			return dMinFresh
		}
	case 14:
		switch {
		case eq(n, "only-if-cached"):
			return dOnlyIfCached
		case eq(n, "stale-if-error"):
			return dSIE
		}
	case 15:
		switch {
		case eq(n, "must-revalidate"):
			return dMustRevalidate
		case eq(n, "must-understand"):
			return dMustUnderstand
		}
	case 16:
		if eq(n, "proxy-revalidate") {
			return dProxyRevalidate
		}
	case 22:
		if eq(n, "stale-while-revalidate") {
			return dSWR
		}
	}
	return dOther
}

// listsFieldName reports, without allocating, whether a directive's
// argument lists at least one field name (a token between commas).
func listsFieldName(v string) bool {
	for len(v) > 0 {
		e := v
		if i := strings.IndexByte(v, ','); i >= 0 {
			e, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		if isToken(trimOWS(e)) {
			return true
		}
	}
	return false
}

// isSFKey reports whether s, ignoring case, is a Structured Field key
// (RFC 8941 §3.2): ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
// Upper case is accepted, as caches commonly do for directive names.
func isSFKey(s string) bool {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] >= 'A' && s[i] <= 'Z', s[i] >= 'a' && s[i] <= 'z', s[i] == '*':
		case i > 0 && (s[i] >= '0' && s[i] <= '9' || s[i] == '_' || s[i] == '-' || s[i] == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// sfValid reports whether a targeted field parsed into ds is acceptable as
// a Structured Field dictionary (RFC 9213 §2.1): no garbage, keys of the
// key syntax, numeric directives with integer values.
func (ds *directives) sfValid() bool {
	return ds.count > 0 && !ds.bad && !ds.nonSF && ds.numericTypeOK()
}

// numericTypeOK reports whether every numeric directive present has an
// unquoted integer argument, as a Structured Field dictionary (the syntax of
// targeted fields, RFC 9213 §2.1) requires.
func (ds *directives) numericTypeOK() bool {
	return numberOK(ds.maxAge) && numberOK(ds.sMaxAge) && numberOK(ds.swr) && numberOK(ds.sie)
}

func numberOK(s seconds) bool {
	return !s.set || (s.hasArg && !s.quoted && s.valid)
}
