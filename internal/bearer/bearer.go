// Package bearer is the admin listeners' shared-token scheme, written once
// for every side of it: a client sets "Authorization: Bearer TOKEN", a
// server compares it with its own token in constant time. The dns's write
// endpoints (POST /v1/rtt) and the edges' RTT reporter use it; the edge's
// purge API follows the same scheme.
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Set adds token to req as a bearer credential; an empty token adds
// nothing.
func Set(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

// Authorized reports whether r carries token as its bearer credential. An
// empty token authorizes nothing: a server without a token refuses every
// write rather than accepting them all. Both sides are hashed before the
// constant-time compare, so not even the token's length leaks.
func Authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if token == "" || !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
