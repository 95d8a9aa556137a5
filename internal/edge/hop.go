package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Who is an edge. A request is from another kubecdn edge only when its
// Kubecdn-Hop field carries a valid MAC made with a hop key this edge holds:
//
//	Kubecdn-Hop: peer; t=1767225600; mac=<base64url HMAC-SHA256>
//
// The MAC covers the hop kind, the time, the method, the Host, the request
// target as sent, and the X-Forwarded-For/-Proto/-Host values the sending
// edge vouches for, so a captured request cannot be replayed with other
// forwarding fields or for another object, and only within hopWindow of its
// time. Anyone else — a client, or an edge whose key this edge does not
// hold — is a client: its hop field and every forwarding field are removed
// (sanitizeClientHeader), and the edge sets its own. Without a hop key no
// request is trusted as an edge's.

// hopWindow is how far a hop's time may be from this edge's clock; edges'
// clocks are kept by NTP, so a minute is ample.
const hopWindow = 60 * time.Second

// hopKinds are the kinds of hop an edge sends.
var hopKinds = [...]string{"peer", "child"}

// hopSigned are the forwarding fields a hop's MAC covers: what a trusted
// edge's request says about the client.
var hopSigned = [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}

// signHop returns the Kubecdn-Hop value of a request to another edge: kind
// alone without a key (the other edge then treats it as a client's), else
// kind with its time and MAC under key. h is the request's header as it
// will be sent.
func signHop(key []byte, kind string, now time.Time, method, host, target string, h http.Header) string {
	if len(key) == 0 {
		return kind
	}
	t := strconv.FormatInt(now.Unix(), 10)
	mac := hopMAC(key, kind, t, method, host, target, h)
	return kind + "; t=" + t + "; mac=" + base64.RawURLEncoding.EncodeToString(mac)
}

// signHop is the Kubecdn-Hop value of req, a request to another edge
// whose header will be h, signed with the first hop key.
func (s *Server) signHop(rt *liveConfig, kind string, req *http.Request, h http.Header) string {
	var key []byte
	if len(rt.hopKeys) > 0 {
		key = rt.hopKeys[0]
	}
	return signHop(key, kind, s.now(), req.Method, req.Host, req.URL.RequestURI(), h)
}

// verifyHop returns the hop kind of a Kubecdn-Hop value when its MAC is
// valid under one of keys for this request and its time is within
// hopWindow of now; "" otherwise. target is the request target as received
// (http.Request.RequestURI).
func verifyHop(keys [][]byte, value string, now time.Time, method, host, target string, h http.Header) string {
	if len(keys) == 0 || value == "" {
		return ""
	}
	parts := strings.Split(value, ";")
	if len(parts) != 3 {
		return ""
	}
	kind := strings.TrimSpace(parts[0])
	if kind != hopKinds[0] && kind != hopKinds[1] {
		return ""
	}
	t, ok1 := strings.CutPrefix(strings.TrimSpace(parts[1]), "t=")
	m, ok2 := strings.CutPrefix(strings.TrimSpace(parts[2]), "mac=")
	if !ok1 || !ok2 {
		return ""
	}
	sec, err := strconv.ParseInt(t, 10, 64)
	if err != nil || t != strconv.FormatInt(sec, 10) {
		return ""
	}
	if d := now.Sub(time.Unix(sec, 0)); d > hopWindow || d < -hopWindow {
		return ""
	}
	got, err := base64.RawURLEncoding.DecodeString(m)
	if err != nil || len(got) != sha256.Size {
		return ""
	}
	for _, k := range keys {
		if hmac.Equal(got, hopMAC(k, kind, t, method, host, target, h)) {
			return kind
		}
	}
	return ""
}

// hopMAC is HMAC-SHA256 under key of the hop's fields, each on a line of its
// own (none may contain a newline: net/http refuses such requests).
func hopMAC(key []byte, kind, t, method, host, target string, h http.Header) []byte {
	m := hmac.New(sha256.New, key)
	for _, s := range [...]string{"kubecdn-hop/1", kind, t, method, host, target} {
		m.Write([]byte(s))
		m.Write([]byte{'\n'})
	}
	for _, k := range hopSigned {
		m.Write([]byte(strings.Join(h.Values(k), ",")))
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}

// edgeHop returns the kind of hop of r ("peer", "child") when it comes from
// an authenticated edge, "" for anyone else.
func (s *Server) edgeHop(r *http.Request, rt *liveConfig) string {
	v := r.Header.Get(hopHeader)
	if v == "" || len(rt.hopKeys) == 0 {
		return ""
	}
	return verifyHop(rt.hopKeys, v, s.now(), r.Method, r.Host, r.RequestURI, r.Header)
}

// sanitizeClientHeader removes, in place, what a client may not tell the
// origin through the edge: the hop field, every field that claims to say
// who the client is or what it asked for before a proxy rewrote it (the
// edge sets X-Forwarded-For/-Proto/-Host itself), method overrides, and
// every field name with an underscore (origins behind CGI-style gateways
// read X_Forwarded_Host as X-Forwarded-Host; net/http keeps them apart, so
// they would pass unkeyed and unchecked). pass holds canonical field names
// the operator lets through anyway (Config.PassHeaders); the hop field is
// never among them.
func sanitizeClientHeader(h http.Header, pass map[string]bool) {
	for k := range h {
		if pass[k] && k != hopHeader {
			continue
		}
		if clientMayNotSend(k) {
			delete(h, k)
		}
	}
}

// clientMayNotSend reports whether a client's field named name (as a key of
// http.Header) is dropped before the request goes upstream.
func clientMayNotSend(name string) bool {
	if strings.IndexByte(name, '_') >= 0 {
		return true
	}
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "x-forwarded-") {
		return true
	}
	switch n {
	case "kubecdn-hop", "forwarded", "surrogate-capability",
		"x-original-url", "x-original-uri", "x-rewrite-url", "x-original-host", "x-host",
		"x-http-method-override", "x-http-method", "x-method-override",
		"x-real-ip", "x-client-ip", "true-client-ip", "x-cluster-client-ip":
		return true
	}
	return false
}

// canonicalPass is the set of canonical field names of Config.PassHeaders.
func canonicalPass(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[canonicalName(n)] = true
	}
	return m
}

// canonicalName is the key net/http files a field under: canonical form,
// except for names it leaves as they are (with an underscore, say).
func canonicalName(n string) string { return textproto.CanonicalMIMEHeaderKey(n) }
