package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseFast(t *testing.T) {
	tests := []struct {
		name            string
		in              string
		ok, complete    bool
		target, host    string
		head, wantClose bool
	}{
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok, complete := parseFast([]byte(tt.in))
			if ok != tt.ok || complete != tt.complete {
				t.Fatalf("ok=%v complete=%v, want %v %v", ok, complete, tt.ok, tt.complete)
			}
			if !ok || !complete {
				return
			}
			if string(r.target) != tt.target || string(r.host) != tt.host || r.head != tt.head || r.close != tt.wantClose {
				t.Fatalf("got %+v", r)
			}
			if r.size != strings.Index(tt.in, "\r\n\r\n")+4 {
				t.Fatalf("size %d", r.size)
			}
		})
	}
}

// FuzzParseFast checks that whatever the fast path accepts, net/http's own
// parser accepts as the same request: the fast path is never more lenient.
func FuzzParseFast(f *testing.F) {
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok, complete := parseFast(b)
		if !ok || !complete {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(b[:r.size]))))
		if err != nil {
			t.Fatalf("fast path accepted %q; net/http refuses: %v", b[:r.size], err)
		}
		if req.Host != string(r.host) || req.URL.RequestURI() != string(r.target) && req.RequestURI != string(r.target) {
			t.Fatalf("fast path read host %q target %q; net/http %q %q", r.host, r.target, req.Host, req.RequestURI)
		}
		if req.ContentLength > 0 || len(req.TransferEncoding) > 0 {
			t.Fatalf("fast path accepted a request with a body: %q", b)
		}
	})
}

// TestFastPathPipelinedAndHandover sends, on one connection, hits (fast
// path), then a request the fast path hands over, then more: every answer
// arrives, in order.
func TestFastPathPipelinedAndHandover(t *testing.T) {
	origin, co := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"e"`)
		io.WriteString(w, "body"+r.URL.Path)
	})
	e := startEdge(t, Config{Origin: origin.URL})
	get(t, e.url+"/p") // fill the cache
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	reqs := "GET /p HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /p HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /p HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"e\"\r\n\r\n" +
		"GET /p HTTP/1.1\r\nHost: h\r\n\r\n"
	// The fill above used another Host, so prime this one first, until the
	// object is stored (the fill stores it just after the body went out).
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := get(t, e.url+"/p", "Host", "h")
		if strings.Contains(resp.Header.Get("Cache-Status"), "hit") || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	want := []int{200, 200, 304, 200}
	for i, code := range want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != code {
			t.Fatalf("response %d: status %d, want %d", i, resp.StatusCode, code)
		}
		if code == 200 && string(body) != "body/p" {
			t.Fatalf("response %d: body %q", i, body)
		}
		if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Fatalf("response %d: Cache-Status %q", i, resp.Header.Get("Cache-Status"))
		}
	}
	if n := co.n("/p"); n != 2 {
		t.Fatalf("origin saw %d requests, want 2", n)
	}
}
