package httpcache

import (
	"net/http"
	"reflect"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		scheme, host, uri, want string
	}{
		{"http", "WWW.Example.com:80", "/a?b", "http://www.example.com/a?b"},
		{"https", "example.com:443", "/", "https://example.com/"},
		{"HTTPS", "example.com:80", "/", "https://example.com:80/"},
		{"http", "example.com:8080", "/x", "http://example.com:8080/x"},
		{"http", "example.com:", "/x", "http://example.com/x"},
		{"http", "[::1]:80", "/x", "http://[::1]/x"},
		{"http", "[::1]", "/x", "http://[::1]/x"},
		{"http", "example.com", "", "http://example.com/"},
		{"http", "example.com", "/A%2Fb?Q=%20#", "http://example.com/A%2Fb?Q=%20#"},
		{"http", "example.com", "http://other/p?q", "http://example.com/p?q"},
		{"http", "example.com", "http://other?q", "http://example.com/?q"},
		{"http", "example.com", "http://other", "http://example.com/"},
	}
	for _, tt := range tests {
		if got := Key(tt.scheme, tt.host, tt.uri); got != tt.want {
			t.Errorf("Key(%q, %q, %q) = %q, want %q", tt.scheme, tt.host, tt.uri, got, tt.want)
		}
	}
}

func TestRemoveHopByHop(t *testing.T) {
	h := hdr("Connection", "close, X-Private", "Connection", "x-other", "X-Private", "1", "X-Other", "2",
		"Keep-Alive", "timeout=5", "Proxy-Connection", "keep-alive", "TE", "trailers", "Trailer", "X-T",
		"Transfer-Encoding", "chunked", "Upgrade", "h2c", "Proxy-Authenticate", "Basic", "Proxy-Authorization", "x",
		"Content-Type", "text/plain", "Cache-Control", "max-age=1")
	RemoveHopByHop(h)
	want := hdr("Content-Type", "text/plain", "Cache-Control", "max-age=1")
	if !reflect.DeepEqual(h, want) {
		t.Errorf("RemoveHopByHop left %v, want %v", h, want)
	}
}

func TestStorableHeader(t *testing.T) {
	in := hdr("Cache-Control", `max-age=60, no-cache="X-Secret", private="x-user"`,
		"X-Secret", "s", "X-User", "u", "Set-Cookie", "a=b", "Set-Cookie2", "a=b",
		"Connection", "X-Hop", "X-Hop", "1", "Proxy-Authentication-Info", "x", "ETag", `"v1"`, "Age", "5")
	got := StorableHeader(in)
	want := hdr("Cache-Control", `max-age=60, no-cache="X-Secret", private="x-user"`, "ETag", `"v1"`, "Age", "5",
		"Set-Cookie", "a=b", "Set-Cookie2", "a=b")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StorableHeader = %v, want %v", got, want)
	}
	if in.Get("Set-Cookie") == "" || in.Get("X-Hop") == "" {
		t.Error("StorableHeader modified its input")
	}
	if g := StorableHeader(nil); g == nil || len(g) != 0 {
		t.Errorf("StorableHeader(nil) = %v", g)
	}
	cdn := StorableHeader(hdr("CDN-Cache-Control", `no-cache="X-A"`, "X-A", "1", "X-B", "2"))
	if cdn.Get("X-A") != "" || cdn.Get("X-B") != "2" {
		t.Errorf("qualified no-cache in CDN-Cache-Control not applied: %v", cdn)
	}
}

func TestUpdateStoredHeader(t *testing.T) {
	st := hdr("Content-Type", "text/plain", "Content-Length", "10", "Content-Encoding", "gzip", "ETag", `"1"`,
		"Cache-Control", "max-age=1", "X-Keep", "k", "Age", "100", "Date", "old", "X-Multi", "a", "X-Multi", "b")
	fresh := hdr("Content-Type", "text/plain;charset=utf-8", "Content-Length", "0", "Content-Encoding", "br", "ETag", `"2"`, "Content-MD5", "x",
		"Content-Range", "bytes 0-1/2", "Cache-Control", "max-age=3600", "Date", "new", "X-Multi", "c",
		"Set-Cookie", "a=c", "Connection", "close", "Transfer-Encoding", "chunked", "Expires", "e")
	got := UpdateStoredHeader(st, fresh)
	want := hdr("Content-Type", "text/plain;charset=utf-8", "Content-Length", "10", "Content-Encoding", "gzip",
		"ETag", `"1"`, "Cache-Control", "max-age=3600", "X-Keep", "k", "Date", "new", "X-Multi", "c", "Expires", "e",
		"Set-Cookie", "a=c")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UpdateStoredHeader =\n%v\nwant\n%v", got, want)
	}
	if st.Get("Age") != "100" || st.Get("Date") != "old" {
		t.Error("UpdateStoredHeader modified stored")
	}
	// A 304 that carries Age replaces it; a new qualified no-cache strips the stored field.
	got = UpdateStoredHeader(hdr("X-Secret", "s", "Age", "100"), hdr("Age", "3", "Cache-Control", `no-cache="X-Secret"`))
	if got.Get("Age") != "3" || got.Get("X-Secret") != "" {
		t.Errorf("UpdateStoredHeader = %v", got)
	}
}

func TestVaryNames(t *testing.T) {
	tests := []struct {
		h        http.Header
		want     []string
		wantStar bool
	}{
		{hdr(), nil, false},
		{hdr("Vary", "accept-encoding, Accept-Language", "Vary", "ACCEPT-ENCODING,,origin"), []string{"Accept-Encoding", "Accept-Language", "Origin"}, false},
		{hdr("Vary", "*"), nil, true},
		{hdr("Vary", "Accept, *"), []string{"Accept"}, true},
		{hdr("Vary", "bad name, ok"), []string{"Ok"}, false},
	}
	for _, tt := range tests {
		got, star := VaryNames(tt.h)
		if !reflect.DeepEqual(got, tt.want) || star != tt.wantStar {
			t.Errorf("VaryNames(%v) = %q, %v; want %q, %v", tt.h, got, star, tt.want, tt.wantStar)
		}
	}
}

func TestVaryKey(t *testing.T) {
	names := []string{"Accept-Encoding", "Accept-Language"}
	same := []struct{ a, b http.Header }{
		{hdr("Accept-Encoding", "gzip, br"), hdr("Accept-Encoding", "gzip,br")},
		{hdr("Accept-Encoding", "gzip,  br "), hdr("Accept-Encoding", "gzip", "Accept-Encoding", "br")},
		{hdr("Accept-Encoding", "a  \t b"), hdr("Accept-Encoding", "a b")},
		{hdr("Accept-Encoding", "gzip", "X-Other", "1"), hdr("Accept-Encoding", "gzip")},
	}
	for _, tt := range same {
		if VaryKey(names, tt.a) != VaryKey(names, tt.b) {
			t.Errorf("VaryKey differs for %v and %v", tt.a, tt.b)
		}
	}
	differ := []struct{ a, b http.Header }{
		{hdr("Accept-Encoding", ""), hdr()},                              // absent is distinct from empty §4.1
		{hdr("Accept-Encoding", "gzip"), hdr("Accept-Encoding", "GZIP")}, // values are case-sensitive
		{hdr("Accept-Encoding", "gzip"), hdr("Accept-Language", "gzip")},
		{hdr("Accept-Encoding", `a"`+"\n"+`Accept-Language:-`), hdr("Accept-Encoding", "a")},
	}
	for _, tt := range differ {
		if VaryKey(names, tt.a) == VaryKey(names, tt.b) {
			t.Errorf("VaryKey equal for %v and %v: %q", tt.a, tt.b, VaryKey(names, tt.a))
		}
	}
	if got := VaryKey(nil, hdr("A", "b")); got != "" {
		t.Errorf("VaryKey(nil) = %q", got)
	}
}

func TestInvalidationKeys(t *testing.T) {
	tests := []struct {
		name   string
		status int
		resp   http.Header
		want   []string
	}{
		{"error status invalidates nothing §4.4", 500, hdr("Location", "/b"), nil},
		{"1xx invalidates nothing", 100, hdr(), nil},
		{"target only", 200, hdr(), []string{"http://example.com/a?x"}},
		{"relative Location", 201, hdr("Location", "/b"), []string{"http://example.com/a?x", "http://example.com/b"}},
		{"Content-Location relative path", 200, hdr("Content-Location", "c?d"), []string{"http://example.com/a?x", "http://example.com/c?d"}},
		{"same origin absolute with default port", 303, hdr("Location", "http://EXAMPLE.com:80/e"), []string{"http://example.com/a?x", "http://example.com/e"}},
		{"other host ignored §4.4", 302, hdr("Location", "http://evil.com/a"), []string{"http://example.com/a?x"}},
		{"other scheme ignored", 302, hdr("Location", "https://example.com/a"), []string{"http://example.com/a?x"}},
		{"duplicate removed", 200, hdr("Location", "/a?x", "Content-Location", "/a?x"), []string{"http://example.com/a?x"}},
		{"unparsable ignored", 200, hdr("Location", "http://[::1"), []string{"http://example.com/a?x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InvalidationKeys("http", "Example.com", "/a?x", tt.status, tt.resp)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("InvalidationKeys = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTargetSurrogateControl(t *testing.T) {
	tests := []struct{ in, want string }{
		{"max-age=60", "max-age=60"},
		{"max-age=60;kubecdn", "max-age=60"},
		{"max-age=60;other", ""},
		{`content="ESI/1.0", max-age=10;KubeCDN, no-store;other`, `content="ESI/1.0", max-age=10`},
	}
	for _, tt := range tests {
		h := hdr("Surrogate-Control", tt.in)
		TargetSurrogateControl(h, "kubecdn")
		if got := h.Get("Surrogate-Control"); got != tt.want {
			t.Errorf("TargetSurrogateControl(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
