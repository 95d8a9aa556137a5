package httpcache

import (
	"strconv"
	"strings"
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
	var b strings.Builder
	writeTokenOrString(&b, c.Cache)
	if c.Hit {
		b.WriteString("; hit")
	}
	if c.Fwd != "" && isSFToken(c.Fwd) {
		b.WriteString("; fwd=")
		b.WriteString(c.Fwd)
	}
	if c.FwdStatus != 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(c.FwdStatus))
	}
	if c.HasTTL {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(int64(c.TTL/time.Second), 10))
	}
	if c.Stored {
		b.WriteString("; stored")
	}
	if c.Collapsed {
		b.WriteString("; collapsed")
	}
	if c.Key != "" {
		b.WriteString("; key=")
		writeSFString(&b, c.Key)
	}
	if c.Detail != "" {
		b.WriteString("; detail=")
		writeTokenOrString(&b, c.Detail)
	}
	return b.String()
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

func writeTokenOrString(b *strings.Builder, s string) {
	if isSFToken(s) {
		b.WriteString(s)
		return
	}
	writeSFString(b, s)
}

// writeSFString writes s as a Structured Field string (RFC 8941 §3.3.3).
func writeSFString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E {
			continue
		}
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
}
