package wire

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

type parseCase struct {
	name            string
	in              string
	ok, complete    bool
	target, host    string
	head, wantClose bool
}

// parseCases are the table of TestParseRequest and the seeds of
// FuzzParseRequest.
func parseCases() []parseCase {
	return []parseCase{
		{"plain GET", "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: wrk\r\n\r\n", true, true, "/a?b=1", "x", false, false},
		{"HEAD and close", "HEAD / HTTP/1.1\r\nhost: x\r\nConnection: close\r\n\r\n", true, true, "/", "x", true, true},
		{"incomplete", "GET / HTTP/1.1\r\nHost: x\r\n", true, false, "", "", false, false},
		{"POST", "POST / HTTP/1.1\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"absolute form", "GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"no host", "GET / HTTP/1.1\r\nA: b\r\n\r\n", false, true, "", "", false, false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", false, true, "", "", false, false},
		{"content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", false, true, "", "", false, false},
		{"transfer-encoding", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", false, true, "", "", false, false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n", false, true, "", "", false, false},
		{"bare LF in header", "GET / HTTP/1.1\r\nHost: x\nA: b\r\n\r\n", false, true, "", "", false, false},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", false, true, "", "", false, false},
		{"range", "GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n", false, true, "", "", false, false},
		{"conditional", "GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\"\r\n\r\n", false, true, "", "", false, false},
		{"control char", "GET / HTTP/1.1\r\nHost: x\r\nA: b\x00c\r\n\r\n", false, true, "", "", false, false},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"odd connection", "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n", false, true, "", "", false, false},
		// Dot segments are normalised on net/http's path before keying.
		{"dot-dot segment", "GET /a/../b HTTP/1.1\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"dot segment", "GET /a/./b HTTP/1.1\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"encoded dot-dot", "GET /a/%2e%2E/b HTTP/1.1\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"trailing dot-dot", "GET /a/.. HTTP/1.1\r\nHost: x\r\n\r\n", false, true, "", "", false, false},
		{"dots in a name", "GET /a/..b/c.js?x=/../ HTTP/1.1\r\nHost: x\r\n\r\n", true, true, "/a/..b/c.js?x=/../", "x", false, false},
	}
}

func TestParseRequest(t *testing.T) {
	for _, tt := range parseCases() {
		t.Run(tt.name, func(t *testing.T) {
			r, ok, complete := ParseRequest([]byte(tt.in))
			if ok != tt.ok || complete != tt.complete {
				t.Fatalf("ok=%v complete=%v, want %v %v", ok, complete, tt.ok, tt.complete)
			}
			if !ok || !complete {
				return
			}
			if string(r.Target) != tt.target || string(r.Host) != tt.host || r.Head != tt.head || r.Close != tt.wantClose {
				t.Fatalf("got %+v", r)
			}
			if r.Size != strings.Index(tt.in, "\r\n\r\n")+4 {
				t.Fatalf("size %d", r.Size)
			}
		})
	}
}

// FuzzParseRequest checks that ParseRequest never panics and that whatever
// it accepts, net/http's own parser accepts as the same request: the fast
// path is never more lenient. (What it refuses goes to net/http, which
// answers for itself.)
func FuzzParseRequest(f *testing.F) {
	for _, tt := range parseCases() {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("GET /%41?%zz HTTP/1.1\r\nHost: [::1]:80\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok, complete := ParseRequest(b)
		if !ok || !complete {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(b[:r.Size]))))
		if err != nil {
			t.Fatalf("fast path accepted %q; net/http refuses: %v", b[:r.Size], err)
		}
		if req.Host != string(r.Host) || req.URL.RequestURI() != string(r.Target) && req.RequestURI != string(r.Target) {
			t.Fatalf("fast path read host %q target %q; net/http %q %q", r.Host, r.Target, req.Host, req.RequestURI)
		}
		if req.ContentLength > 0 || len(req.TransferEncoding) > 0 {
			t.Fatalf("fast path accepted a request with a body: %q", b)
		}
		if (req.Method == http.MethodHead) != r.Head || req.Close != r.Close {
			t.Fatalf("fast path read head=%v close=%v; net/http %s close=%v: %q", r.Head, r.Close, req.Method, req.Close, b)
		}
	})
}
