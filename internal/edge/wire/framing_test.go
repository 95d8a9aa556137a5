package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// fakeConn is a net.Conn over a byte slice (a fake: the framing checker only
// reads).
type fakeConn struct {
	r *bytes.Reader
}

func (c *fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// framedRequests reads requests the way net/http's server does, from what
// the framing checker lets through.
func framedRequests(in []byte) (reqs []*http.Request, err error) {
	br := bufio.NewReader(NewFramingConn(&fakeConn{r: bytes.NewReader(in)}, 32<<10))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return reqs, err
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return reqs, err
		}
		reqs = append(reqs, req)
	}
}

func TestFramingConn(t *testing.T) {
	const next = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name string
		in   string
		want int // requests net/http reads in full before the stream ends or fails
	}{
		{"two plain", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + next, 2},
		{"content-length body", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + next, 2},
		{"chunked body", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n" + next, 2},
		{"CL and TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next, 0},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n" + next, 0},
		{"bare LF", "GET /a HTTP/1.1\nHost: x\n\n" + next, 0},
		{"bad chunk size", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n" + next, 0},
		{"chunk without CRLF after data", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" + next, 0},
		{"smuggled after good request", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, _ := framedRequests([]byte(tt.in))
			if len(reqs) != tt.want {
				t.Fatalf("net/http read %d requests through the checker, want %d", len(reqs), tt.want)
			}
		})
	}
}

// FuzzFramingConn: whatever the bytes, nothing panics, and the requests
// net/http reads through the checker are a prefix of those it reads from the
// raw bytes: the checker only ever stops a connection, it never moves a
// message boundary.
func FuzzFramingConn(f *testing.F) {
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("GET /a HTTP/1.1\nHost: x\n X: y\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		checked, _ := framedRequests(in)
		var raw []*http.Request
		br := bufio.NewReader(bytes.NewReader(in))
		for len(raw) <= len(checked) {
			req, err := http.ReadRequest(br)
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				break
			}
			raw = append(raw, req)
		}
		if len(checked) > len(raw) {
			t.Fatalf("checker let through %d requests, raw bytes hold %d: %q", len(checked), len(raw), in)
		}
		for i := range checked {
			if checked[i].Method != raw[i].Method || checked[i].RequestURI != raw[i].RequestURI {
				t.Fatalf("request %d: checked %s %s, raw %s %s", i, checked[i].Method, checked[i].RequestURI, raw[i].Method, raw[i].RequestURI)
			}
		}
	})
}

// piecesConn yields its pieces one per Read, with a timeout error between
// them, as net/http's abort of its background read does.
type piecesConn struct {
	fakeConn
	pieces []string
	tick   bool
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func (c *piecesConn) Read(p []byte) (int, error) {
	if c.tick = !c.tick; c.tick {
		return 0, timeoutErr{}
	}
	if len(c.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.pieces[0])
	if c.pieces[0] = c.pieces[0][n:]; c.pieces[0] == "" {
		c.pieces = c.pieces[1:]
	}
	return n, nil
}

// TestFramingConnResumesAfterTimeout: a read deadline that cuts a request
// line, a header line or a chunk-size line in two loses nothing; the
// request is read whole once the rest comes.
func TestFramingConnResumesAfterTimeout(t *testing.T) {
	in := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
	for cut := 1; cut < len(in); cut++ {
		fc := NewFramingConn(&piecesConn{pieces: []string{in[:cut], in[cut:]}}, 32<<10)
		var got []byte
		buf := make([]byte, 7)
		for {
			n, err := fc.Read(buf)
			got = append(got, buf[:n]...)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if err != nil {
				break
			}
		}
		if string(got) != in {
			t.Fatalf("cut at %d: got %q", cut, got)
		}
	}
}
