// Package httpcache holds the pure decisions of a shared HTTP cache
// (RFC 9111), as the edge needs them: whether a response may be stored, how
// long it stays fresh, whether a stored response may be served for a request
// (RFC 9111 §4, RFC 5861 stale-while-revalidate and stale-if-error), cache
// keys and Vary, conditional and range requests (RFC 9110 §13, §14), header
// handling for storage and 304 updates, invalidation after unsafe methods and
// the Cache-Status response field (RFC 9211).
//
// Nothing here does I/O or keeps state: time is passed in by the caller, so
// every decision is a function of its arguments and is tested by tables.
//
// Targeted fields (RFC 9213): this cache reads CDN-Cache-Control first, then
// Surrogate-Control. The first of them with a valid, non-empty value replaces
// Cache-Control and Expires for every decision of this cache (storage,
// freshness, revalidation, serving stale). Request directives always come
// from the request's Cache-Control (or Pragma: no-cache when it is absent).
//
// The hit path (Decide) does not allocate: directives are scanned in place
// rather than parsed into a CacheControl map, and IMF-fixdate dates are
// parsed without the time package's zone lookup.
package httpcache
