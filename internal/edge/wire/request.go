package wire

import (
	"bytes"

	"golang.org/x/net/http/httpguts"

	"github.com/kubecdn/kubecdn/internal/httpcache"
)

// Request is a request header of the strict subset ParseRequest accepts.
// Its slices point into the bytes parsed.
type Request struct {
	Head   bool   // HEAD, else GET
	Target []byte // the request target, in origin form
	Host   []byte
	Close  bool // the client sent Connection: close
	Size   int  // bytes of the request, through the blank line
}

// ParseRequest parses one request header at the start of b. ok is false when
// the request is outside the strict subset (the caller hands it to a full
// parser); complete is false when b holds no full header yet.
func ParseRequest(b []byte) (r Request, ok, complete bool) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	// A bare LF anywhere in the header is outside the subset: hand over
	// at once rather than wait for a CRLF CRLF that may never come.
	scan := b
	if end >= 0 {
		scan = b[:end]
	}
	for i, c := range scan {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return r, false, true
		}
	}
	if end < 0 {
		return r, true, false
	}
	r.Size = end + 4
	line, rest, _ := bytes.Cut(b[:end+2], []byte("\r\n"))
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		line, r.Head = line[5:], true
	default:
		return r, false, true
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp:]) != " HTTP/1.1" || line[0] != '/' {
		return r, false, true
	}
	r.Target = line[:sp]
	for i, c := range r.Target {
		if c < 0x21 || c > 0x7e || c == '#' {
			return r, false, true
		}
		if c == '%' && (i+2 >= len(r.Target) || !isHex(r.Target[i+1]) || !isHex(r.Target[i+2])) {
			return r, false, true
		}
	}
	if !httpcache.NormalTarget(r.Target) {
		// Dot segments, raw or %2e: net/http's path normalises the target
		// before the edge keys it; a key taken here would not be that.
		return r, false, true
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return r, false, true
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range name {
			if !isTokenChar(c) {
				return r, false, true
			}
		}
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return r, false, true
			}
		}
		switch {
		case foldEq(name, "host"):
			if r.Host != nil || len(value) == 0 {
				return r, false, true
			}
			r.Host = value
		case foldEq(name, "connection"):
			switch {
			case foldEq(value, "close"):
				r.Close = true
			case foldEq(value, "keep-alive"):
			default:
				return r, false, true
			}
		case denied(name):
			return r, false, true
		}
	}
	return r, r.Host != nil && httpguts.ValidHostHeader(string(r.Host)), true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// denied are the request fields that bear on framing, caching or routing:
// a request with any of them is outside the subset.
func denied(name []byte) bool {
	for _, d := range [...]string{
		"transfer-encoding", "content-length", "expect", "upgrade", "te", "trailer",
		"range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since",
		"cache-control", "pragma", "authorization", "max-forwards",
		"kubecdn-hop", "cdn-loop", "x-forwarded-proto", "proxy-authorization", "proxy-connection", "keep-alive",
	} {
		if foldEq(name, d) {
			return true
		}
	}
	return false
}

func foldEq(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// HeaderValue returns the value of the field name (lower case) in raw, a
// request header that ParseRequest accepted (CRLF lines, no obs-fold); nil
// when absent.
func HeaderValue(raw []byte, name string) []byte {
	_, rest, _ := bytes.Cut(raw, []byte("\r\n")) // the request line
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		colon := bytes.IndexByte(line, ':')
		if colon == len(name) && foldEq(line[:colon], name) {
			return trimOWS(line[colon+1:])
		}
	}
	return nil
}
