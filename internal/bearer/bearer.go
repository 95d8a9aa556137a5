// Package bearer is the admin listeners' shared-token scheme, written once
// for every side of it: a client sets "Authorization: Bearer TOKEN", a
// server compares it with its own token in constant time. The dns's write
// endpoints (POST /v1/rtt) and the edges' RTT reporter use it; the edge's
// purge API follows the same scheme.
//
// Through a Kubernetes API server (the pods' proxy subresource) the
// Authorization header is the API server's own credential, and the API
// server removes it before proxying; there the token travels as
// ProxyHeader, in the same "Bearer TOKEN" form, and servers accept either.
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// ProxyHeader carries the token where Authorization belongs to a proxy in
// between (a Kubernetes API server's pod proxy).
const ProxyHeader = "Kubecdn-Authorization"

// Set adds token to req as a bearer credential; an empty token adds
// nothing.
func Set(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

// SetProxied adds token to req as a bearer credential in ProxyHeader; an
// empty token adds nothing.
func SetProxied(req *http.Request, token string) {
	if token != "" {
		req.Header.Set(ProxyHeader, "Bearer "+token)
	}
}

// Authorized reports whether r carries token as its bearer credential, in
// Authorization or else in ProxyHeader. An empty token authorizes nothing:
// a server without a token refuses every write rather than accepting them
// all. Both sides are hashed before the constant-time compare, so not even
// the token's length leaks.
func Authorized(r *http.Request, token string) bool {
	h := r.Header.Get("Authorization")
	if h == "" {
		h = r.Header.Get(ProxyHeader)
	}
	got, ok := strings.CutPrefix(h, "Bearer ")
	if token == "" || !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
