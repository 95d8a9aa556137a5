package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Canonical header keys, looked up directly in http.Header maps so that the
// hit path does not canonicalise (or allocate).
const (
	hCacheControl    = "Cache-Control"
	hCDNCacheControl = "Cdn-Cache-Control"
	hSurrogate       = "Surrogate-Control"
	hPragma          = "Pragma"
	hExpires         = "Expires"
	hDate            = "Date"
	hAge             = "Age"
	hLastModified    = "Last-Modified"
	hAuthorization   = "Authorization"
	hVary            = "Vary"
	hETag            = "Etag"
)

// defaultHeuristicMax caps heuristic freshness when the caller gives no cap.
const defaultHeuristicMax = 24 * time.Hour

// first returns the first line of a field, or "".
func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// responseDirectives returns the directives that govern this cache for a
// response. The first targeted field (CDN-Cache-Control, then
// Surrogate-Control) with a valid, non-empty value is used, and then
// Cache-Control and Expires are ignored (RFC 9213 §2.2; targeted is true).
// CDN-Cache-Control is a Structured Field dictionary: garbage or a numeric
// directive with a non-integer value makes it invalid, so it is ignored as a
// whole. Surrogate-Control predates Structured Fields and is parsed like
// Cache-Control.
func responseDirectives(h http.Header) (ds directives, targeted bool) {
	if v := h[hCDNCacheControl]; len(v) > 0 {
		ds = parseDirectives(v, false)
		if ds.sfValid() {
			return ds, true
		}
	}
	if v := h[hSurrogate]; len(v) > 0 {
		ds = parseDirectives(v, true)
		if ds.count > 0 {
			return ds, true
		}
	}
	return parseDirectives(h[hCacheControl], false), false
}

// requestDirectives returns the request's cache directives; without a
// Cache-Control field, Pragma: no-cache counts as no-cache (RFC 9111 §5.4).
func requestDirectives(h http.Header) directives {
	if v := h[hCacheControl]; len(v) > 0 {
		return parseDirectives(v, false)
	}
	var ds directives
	for _, line := range h[hPragma] {
		sc := scanner{s: line}
		for {
			d, ok := sc.next()
			if !ok {
				break
			}
			if !d.hasVal && strings.EqualFold(d.name, "no-cache") {
				ds.noCache, ds.noCacheUnqualified = true, true
			}
		}
	}
	return ds
}

// EffectiveCacheControl returns the response directives this cache obeys
// (see the package comment on targeted fields) and the name of the field
// they came from: "CDN-Cache-Control", "Surrogate-Control" or
// "Cache-Control".
func EffectiveCacheControl(h http.Header) (cc CacheControl, field string) {
	if v := h[hCDNCacheControl]; len(v) > 0 {
		if ds := parseDirectives(v, false); ds.sfValid() {
			return ParseCacheControl(v), "CDN-Cache-Control"
		}
	}
	if v := h[hSurrogate]; len(v) > 0 {
		if ds := parseDirectives(v, true); ds.count > 0 {
			return ParseCacheControl(v), "Surrogate-Control"
		}
	}
	return ParseCacheControl(h[hCacheControl]), "Cache-Control"
}

// HeuristicallyCacheable reports whether a status code is cacheable by
// default (RFC 9110 §15.1, plus 451 from RFC 7725 §3). 206 is left out: this
// package does not store partial responses (the edge handles them itself).
func HeuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 451, 501:
		return true
	}
	return false
}

// understoodStatus reports whether this cache knows the caching semantics of
// a status code, which the must-understand directive requires (RFC 9111
// §5.2.2.3).
func understoodStatus(status int) bool {
	switch status {
	case 206, 304:
		return false
	}
	return status >= 200 && status <= 599 && http.StatusText(status) != ""
}

// Storable reports whether this shared cache may store the response to a
// request (RFC 9111 §3). All of these must hold:
//   - the method is GET (HEAD responses are not stored; they only update,
//     see UpdateStoredHeader);
//   - the status is final and not 206 (stored by the edge's slice logic) or
//     304 (§3);
//   - the request has no no-store (§5.2.1.5);
//   - the response has no no-store (§5.2.2.5), unless must-understand is
//     present and the status is understood (§5.2.2.3); with must-understand
//     an unknown status is never stored;
//   - the response is not private, unless private lists field names, which
//     StorableHeader then removes (§5.2.2.7);
//   - Vary is not "*" (§4.1);
//   - a request with Authorization needs must-revalidate, public or
//     s-maxage in the response (§3.5);
//   - the response has explicit freshness or is cacheable by default:
//     public, max-age, s-maxage, Expires, or a heuristically cacheable status
//     (HeuristicallyCacheable; other statuses such as 302, 307 or 500 need
//     one of the others).
//
// Response directives come from the governing targeted field when there is
// one (CDN-Cache-Control, then Surrogate-Control, RFC 9213), which replaces
// Cache-Control and Expires: CDN-Cache-Control: max-age=60 with
// Cache-Control: no-store is stored, CDN-Cache-Control: no-store with
// Cache-Control: max-age=60 is not.
func Storable(method string, reqHeader http.Header, status int, respHeader http.Header) bool {
	if method != http.MethodGet {
		return false
	}
	if status < 200 || status > 999 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false
	}
	if requestDirectives(reqHeader).noStore {
		return false
	}
	rd, targeted := responseDirectives(respHeader)
	if rd.mustUnderstand {
		if !understoodStatus(status) {
			return false
		}
	} else if rd.noStore {
		return false
	}
	if rd.private && !rd.privateQualified {
		return false
	}
	if _, star := VaryNames(respHeader); star {
		return false
	}
	if len(reqHeader[hAuthorization]) > 0 && !authorizedShareable(&rd) {
		return false
	}
	if rd.public || rd.maxAge.set || rd.sMaxAge.set || HeuristicallyCacheable(status) {
		return true
	}
	return !targeted && len(respHeader[hExpires]) > 0
}

// authorizedShareable reports whether a response to a request with
// Authorization may be shared (RFC 9111 §3.5).
func authorizedShareable(rd *directives) bool {
	return rd.mustRevalidate || rd.public || rd.sMaxAge.set
}

// Lifetime returns the freshness lifetime of a response for this shared
// cache (RFC 9111 §4.2.1), by precedence:
//  1. a targeted field (CDN-Cache-Control, then Surrogate-Control; RFC 9213),
//     which replaces Cache-Control and Expires: its s-maxage, then max-age;
//  2. Cache-Control s-maxage, then max-age;
//  3. Expires minus Date (an invalid Expires such as "0", a date in no
//     HTTP-date form, or two Expires lines means already expired, §5.3);
//  4. the heuristic (§4.2.2), only for a heuristically cacheable status or
//     a public response: 10% of Date minus Last-Modified, capped by
//     heuristicMax (zero means 24h, negative disables heuristics); zero
//     when there is no valid Last-Modified.
//
// A max-age or s-maxage that is not delta-seconds, or that appears twice
// with different values, gives zero: the response is stale (§4.2.1).
// Without a valid Date, responseTime stands for it. heuristic reports that
// the heuristic produced d.
func Lifetime(status int, h http.Header, responseTime time.Time, heuristicMax time.Duration) (d time.Duration, heuristic bool) {
	rd, targeted := responseDirectives(h)
	return lifetime(status, h, &rd, targeted, responseTime, heuristicMax)
}

func lifetime(status int, h http.Header, rd *directives, targeted bool, responseTime time.Time, heuristicMax time.Duration) (time.Duration, bool) {
	if rd.sMaxAge.set {
		return explicit(rd.sMaxAge), false
	}
	if rd.maxAge.set {
		return explicit(rd.maxAge), false
	}
	date := responseDate(h, responseTime)
	if !targeted {
		if v := h[hExpires]; len(v) > 0 {
			// Expires is a singleton: two lines are no valid date, and
			// an invalid date means already expired (§5.3).
			exp, ok := parseHTTPDate(v[0], responseTime)
			if len(v) > 1 || !ok || !exp.After(date) {
				return 0, false
			}
			return exp.Sub(date), false
		}
	}
	if heuristicMax == 0 {
		heuristicMax = defaultHeuristicMax
	}
	if heuristicMax < 0 || !(HeuristicallyCacheable(status) || rd.public) {
		return 0, false
	}
	lm, ok := parseHTTPDate(first(h, hLastModified), responseTime)
	if !ok {
		return 0, false
	}
	d := date.Sub(lm) / 10
	if d < 0 {
		d = 0
	}
	if d > heuristicMax {
		d = heuristicMax
	}
	return d, true
}

func explicit(s seconds) time.Duration {
	if !s.usable() {
		return 0
	}
	return s.d
}

// responseDate is the response's Date, or responseTime when it has none
// that parses.
func responseDate(h http.Header, responseTime time.Time) time.Time {
	if t, ok := parseHTTPDate(first(h, hDate), responseTime); ok {
		return t
	}
	return responseTime
}

// CurrentAge computes the age of a stored response (RFC 9111 §4.2.3):
//
//	apparent_age = max(0, response_time - date_value)
//	response_delay = response_time - request_time
//	corrected_age_value = age_value + response_delay
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//	resident_time = now - response_time
//	current_age = corrected_initial_age + resident_time
//
// age_value is the Age field (its first member, delta-seconds clamped at
// 2^31 s; 0 when absent or invalid, §5.1), date_value the Date field
// (response_time when absent or invalid). A negative response_delay or resident_time (clock steps) is
// taken as zero.
func CurrentAge(h http.Header, requestTime, responseTime, now time.Time) time.Duration {
	date := responseDate(h, responseTime)
	apparent := responseTime.Sub(date)
	if apparent < 0 {
		apparent = 0
	}
	delay := responseTime.Sub(requestTime)
	if delay < 0 {
		delay = 0
	}
	ageValue := parseAge(h[hAge])
	corrected := ageValue + delay
	if apparent > corrected {
		corrected = apparent
	}
	resident := now.Sub(responseTime)
	if resident < 0 {
		resident = 0
	}
	return corrected + resident
}

// Stored is what the freshness decision needs of a stored response.
type Stored struct {
	Status       int
	Header       http.Header
	RequestTime  time.Time // when the request that produced it was sent upstream
	ResponseTime time.Time // when the response was received
	Invalidated  bool      // soft purged or invalidated by an unsafe method: stale from now on
}

// Options tunes the decisions.
type Options struct {
	// HeuristicMax caps heuristic freshness (RFC 9111 §4.2.2). If zero,
	// defaults to 24h; negative disables heuristic freshness.
	HeuristicMax time.Duration
	// StaleIfErrorCap is how long past expiry stale content may be served
	// when upstream fails even without stale-if-error; 0 means only what
	// directives allow. It never overrides a prohibition, and it applies
	// only to responses with explicit freshness and no Set-Cookie (see
	// StaleIfError).
	StaleIfErrorCap time.Duration
}

// Decision is what to do with a stored response for a request.
type Decision int

const (
	// Fresh means serve from cache.
	Fresh Decision = iota
	// Revalidate means the stored response is stale (or no-cache applies,
	// or the request asks for a fresher one): validate with upstream first.
	Revalidate
	// ServeStale means stale, but stale-while-revalidate allows serving it
	// now; the caller refreshes in the background.
	ServeStale
)

// String returns the decision's name.
func (d Decision) String() string {
	switch d {
	case Fresh:
		return "fresh"
	case Revalidate:
		return "revalidate"
	case ServeStale:
		return "serve-stale"
	}
	return "unknown"
}

// freshness computes the age and remaining freshness of a stored response;
// an invalidated response has ttl <= 0.
func freshness(s *Stored, rd *directives, targeted bool, now time.Time, opt Options) (age, ttl time.Duration) {
	life, _ := lifetime(s.Status, s.Header, rd, targeted, s.ResponseTime, opt.HeuristicMax)
	age = CurrentAge(s.Header, s.RequestTime, s.ResponseTime, now)
	ttl = life - age
	if s.Invalidated && ttl > 0 {
		ttl = 0
	}
	return age, ttl
}

// Decide decides whether a stored response may satisfy a request
// (RFC 9111 §4, §4.2.4, §5.2; RFC 5861 §3). It returns the decision, the
// current age, and the remaining freshness ttl (lifetime minus age;
// negative when stale, at most zero when invalidated). In order:
//  1. response no-cache without field names (§5.2.2.4): Revalidate (a
//     qualified no-cache only strips fields, see StorableHeader);
//  2. request no-cache, or Pragma: no-cache without Cache-Control
//     (§5.2.1.4, §5.4): Revalidate;
//  3. request Authorization without must-revalidate, public or s-maxage in
//     the response (§3.5): Revalidate (forward it);
//  4. request max-age=N (§5.2.1.1): Revalidate when age > N, or N is 0;
//  5. request min-fresh=N (§5.2.1.3): Revalidate when ttl < N;
//  6. ttl > 0: Fresh;
//  7. stale: must-revalidate or proxy-revalidate (§5.2.2.2, §5.2.2.8):
//     Revalidate;
//  8. request max-stale[=N] (§5.2.1.2) with staleness within N: Fresh,
//     except with s-maxage, which implies proxy-revalidate for a shared
//     cache (§5.2.2.10);
//  9. response stale-while-revalidate=N (RFC 5861 §3) with staleness
//     within N: ServeStale. An explicit stale-while-revalidate is honoured
//     next to s-maxage (the common "s-maxage=60, stale-while-revalidate=30"
//     means exactly that), but not next to must-revalidate or
//     proxy-revalidate;
//  10. otherwise Revalidate.
//
// Directives with invalid arguments are ignored. Decide does not allocate
// when the stored dates are IMF-fixdate.
func Decide(reqHeader http.Header, s Stored, now time.Time, opt Options) (d Decision, age time.Duration, ttl time.Duration) {
	rd, targeted := responseDirectives(s.Header)
	age, ttl = freshness(&s, &rd, targeted, now, opt)
	q := requestDirectives(reqHeader)
	switch {
	case rd.noCache && !rd.noCacheQualified:
		return Revalidate, age, ttl
	case q.noCache:
		return Revalidate, age, ttl
	case len(reqHeader[hAuthorization]) > 0 && !authorizedShareable(&rd):
		return Revalidate, age, ttl
	case q.maxAge.usable() && (age > q.maxAge.d || q.maxAge.d == 0):
		return Revalidate, age, ttl
	case q.minFresh.usable() && ttl < q.minFresh.d:
		return Revalidate, age, ttl
	case ttl > 0:
		return Fresh, age, ttl
	case rd.mustRevalidate || rd.proxyRevalidate:
		return Revalidate, age, ttl
	}
	staleness := -ttl
	if q.maxStale.set && !rd.sMaxAge.set {
		if !q.maxStale.hasArg || (q.maxStale.usable() && staleness <= q.maxStale.d) {
			return Fresh, age, ttl
		}
	}
	if rd.swr.usable() && staleness <= rd.swr.d {
		return ServeStale, age, ttl
	}
	return Revalidate, age, ttl
}

// StaleIfError reports whether a stored response that is stale (or must be
// revalidated) may be served because the upstream failed (a connection
// error or a 5xx). Never when the response has must-revalidate,
// proxy-revalidate or no-cache without field names (RFC 9111 §4.2.4,
// §5.2.2.2), nor when the request has Authorization and the response may
// not be shared (§3.5). Otherwise, with staleness = max(0, -ttl):
//   - a response stale-if-error=N (RFC 5861 §4) decides alone: allowed
//     within N, refused past it; it is honoured next to s-maxage, being an
//     explicit permission of the origin for exactly this case;
//   - with s-maxage (implied proxy-revalidate, §5.2.2.10) and no response
//     stale-if-error: refused;
//   - a request stale-if-error=N or max-stale[=N] allows staleness within N;
//   - opt.StaleIfErrorCap allows staleness within it, but only for a
//     response with explicit freshness (s-maxage, max-age or a valid
//     Expires) and without Set-Cookie: a response the origin gave no
//     lifetime, or one that sets a cookie, is likely someone's own page,
//     and the cache must not hand it to the next client when the origin
//     fails unless the origin said so with stale-if-error.
//
// A fresh response has staleness 0, so any of these windows allows it. A
// stale-if-error whose argument is not delta-seconds (or conflicts) is
// ignored.
func StaleIfError(reqHeader http.Header, s Stored, now time.Time, opt Options) bool {
	rd, targeted := responseDirectives(s.Header)
	if rd.mustRevalidate || rd.proxyRevalidate || (rd.noCache && !rd.noCacheQualified) {
		return false
	}
	if len(reqHeader[hAuthorization]) > 0 && !authorizedShareable(&rd) {
		return false
	}
	_, ttl := freshness(&s, &rd, targeted, now, opt)
	staleness := -ttl
	if staleness < 0 {
		staleness = 0
	}
	if rd.sie.usable() {
		return staleness <= rd.sie.d
	}
	if rd.sMaxAge.set {
		return false
	}
	q := requestDirectives(reqHeader)
	if q.sie.usable() && staleness <= q.sie.d {
		return true
	}
	if q.maxStale.set && (!q.maxStale.hasArg || (q.maxStale.usable() && staleness <= q.maxStale.d)) {
		return true
	}
	return opt.StaleIfErrorCap > 0 && staleness <= opt.StaleIfErrorCap && defaultStaleAllowed(&rd, targeted, s.Header)
}

// defaultStaleAllowed reports whether the cache's own stale-if-error window
// may apply to a stored response: it has explicit freshness and sets no
// cookie.
func defaultStaleAllowed(rd *directives, targeted bool, h http.Header) bool {
	if len(h["Set-Cookie"]) > 0 {
		return false
	}
	if rd.sMaxAge.set || rd.maxAge.set {
		return true
	}
	if targeted {
		return false // a targeted field replaces Expires
	}
	v := h[hExpires]
	if len(v) != 1 { // none, or two lines: no valid date (§5.3)
		return false
	}
	_, ok := parseHTTPDate(v[0], time.Time{})
	return ok
}

// OnlyIfCached reports whether the request carries only-if-cached
// (RFC 9111 §5.2.1.7): the caller answers 504 rather than go upstream.
func OnlyIfCached(reqHeader http.Header) bool {
	return requestDirectives(reqHeader).onlyIfCached
}
