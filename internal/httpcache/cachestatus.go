package httpcache

import (
	"strconv"
	"time"
)

// CacheStatus is one member of the Cache-Status response field (RFC 9211):
// how this cache handled the request.
type CacheStatus struct {
	Cache     string        // cache name, e.g. "kubecdn"
	Hit       bool          // served from cache without going upstream
	Fwd       string        // why it went upstream: "uri-miss", "vary-miss", "miss", "request", "stale", "partial", "bypass" ("" when hit)
	FwdStatus int           // status from upstream, 0 = omit
	TTL       time.Duration // remaining freshness (negative when stale), sent in whole seconds
	HasTTL    bool          // send TTL
	Stored    bool          // the response was stored
	Collapsed bool          // the request was collapsed into another one's upstream fetch
	Key       string        // optional cache key ("" = omit)
	Detail    string        // e.g. "stale-while-revalidate", "stale-if-error", "revalidated"
}

// String renders the member as a Structured Field item with parameters in
// the order hit, fwd, fwd-status, ttl, stored, collapsed, key, detail, e.g.
// `kubecdn; hit; ttl=30`,
// `kubecdn; fwd=uri-miss; fwd-status=200; stored`,
// `kubecdn; fwd=stale; fwd-status=304; detail=revalidated`.
// The cache name and detail are sent as tokens when they are valid
// sf-tokens and as sf-strings otherwise; key is always an sf-string. Bytes
// an sf-string cannot carry (controls, non-ASCII) are dropped; a Fwd that is
// not an sf-token is omitted.
func (c CacheStatus) String() string {
	return string(c.Append(make([]byte, 0, 64)))
}

// Append appends the field value to b; the hit path uses it to write the
// header without a separate allocation.
func (c CacheStatus) Append(b []byte) []byte {
	b = appendTokenOrString(b, c.Cache)
	if c.Hit {
		b = append(b, "; hit"...)
	}
	if c.Fwd != "" && isSFToken(c.Fwd) {
		b = append(b, "; fwd="...)
		b = append(b, c.Fwd...)
	}
	if c.FwdStatus != 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(c.FwdStatus), 10)
	}
	if c.HasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, int64(c.TTL/time.Second), 10)
	}
	if c.Stored {
		b = append(b, "; stored"...)
	}
	if c.Collapsed {
		b = append(b, "; collapsed"...)
	}
	if c.Key != "" {
		b = append(b, "; key="...)
		b = appendSFString(b, c.Key)
	}
	if c.Detail != "" {
		b = append(b, "; detail="...)
		b = appendTokenOrString(b, c.Detail)
	}
	return b
}

// isSFToken reports whether s is a Structured Field token (RFC 8941
// §3.3.4): ( ALPHA / "*" ) *( tchar / ":" / "/" ).
func isSFToken(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isTchar(c) && c != ':' && c != '/' {
			return false
		}
	}
	return true
}

func appendTokenOrString(b []byte, s string) []byte {
	if isSFToken(s) {
		return append(b, s...)
	}
	return appendSFString(b, s)
}

// appendSFString appends s as a Structured Field string (RFC 8941 §3.3.3).
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E {
			continue
		}
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}
