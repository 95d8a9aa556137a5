package wire

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
)

// FramingConn guards the connections that net/http serves against request
// smuggling. net/http accepts some framings that RFC 9112 lets a server
// reject and that a chain of proxies may read differently: Content-Length
// together with Transfer-Encoding (it drops the Content-Length and keeps the
// connection open), obs-fold, and bare LF line ends. FramingConn follows the
// message framing of every request on the connection; a request header is
// released to net/http only once it is complete and checked. A header that
// fails the check is replaced by a malformed request line, so net/http
// answers 400 and closes; a chunked body that fails it is replaced by a
// malformed chunk, so reading the body fails and the edge answers 400. After
// either, the connection yields nothing more.
type FramingConn struct {
	net.Conn
	r         *bufio.Reader
	out       []byte
	state     framingState
	remaining int64
	maxHeader int
	// A read that fails with a timeout leaves what it read here, so the
	// next one resumes: net/http sets a past read deadline to stop its
	// background read after each handler, which may cut a line of the
	// next request in two. part is the line read so far; hdr the header
	// block read so far (complete lines, with what they told).
	part []byte
	hdr  headerScan
}

// headerScan is a request header block being read.
type headerScan struct {
	block   []byte
	cls     [][]byte
	te      bool
	started bool // the request line is read
}

type framingState int

const (
	stHeader framingState = iota
	stBody
	stChunkSize
	stChunkData
	stChunkEnd
	stTrailer
	stPassthrough // an oversized header: net/http answers 431 and closes
	stDead
)

var (
	badRequestLine = []byte("\x00BAD\r\n\r\n")
	badChunk       = []byte("zz\r\n")
)

// NewFramingConn guards c; a request header longer than maxHeader is passed
// through unchecked, for net/http to refuse (431) and close.
func NewFramingConn(c net.Conn, maxHeader int) *FramingConn {
	return &FramingConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), maxHeader: maxHeader}
}

func (c *FramingConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if err := c.advance(len(p)); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// NetConn returns the accepted connection (for TCP_INFO readers).
func (c *FramingConn) NetConn() net.Conn { return netConn(c.Conn) }

func (c *FramingConn) reject(mid bool) {
	if mid {
		c.out = append(c.out[:0], badChunk...)
	} else {
		c.out = append(c.out[:0], badRequestLine...)
	}
	c.state = stDead
}

// line reads one line; ok is false for a line without CRLF. A read that
// times out keeps the part of the line it read for the next call.
func (c *FramingConn) line() (line []byte, ok bool, err error) {
	line, err = c.r.ReadSlice('\n')
	if len(c.part) > 0 {
		line = append(c.part, line...)
		c.part = nil
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.part = append([]byte(nil), line...)
			return nil, false, err
		}
		return line, false, err
	}
	return line, len(line) >= 2 && line[len(line)-2] == '\r', nil
}

func (c *FramingConn) advance(want int) error {
	switch c.state {
	case stDead:
		return io.EOF
	case stPassthrough:
		buf := make([]byte, max(want, 512))
		n, err := c.r.Read(buf)
		c.out = buf[:n]
		return err
	case stBody, stChunkData:
		n := int(min(c.remaining, int64(max(want, 512)), 64<<10))
		buf := make([]byte, n)
		n, err := c.r.Read(buf)
		c.out = buf[:n]
		c.remaining -= int64(n)
		if c.remaining == 0 {
			if c.state == stBody {
				c.state = stHeader
			} else {
				c.state = stChunkEnd
			}
		}
		if err != nil && n > 0 {
			err = nil
		}
		return err
	case stChunkEnd:
		line, ok, err := c.line()
		if err != nil {
			return err
		}
		if !ok || len(line) != 2 {
			c.reject(true)
			return nil
		}
		c.out = append(c.out[:0], line...)
		c.state = stChunkSize
		return nil
	case stChunkSize:
		line, ok, err := c.line()
		if err != nil {
			return err
		}
		size, valid := parseChunkSize(line)
		if !ok || !valid {
			c.reject(true)
			return nil
		}
		c.out = append(c.out[:0], line...)
		if size == 0 {
			c.state = stTrailer
		} else {
			c.state, c.remaining = stChunkData, size
		}
		return nil
	case stTrailer:
		line, ok, err := c.line()
		if err != nil {
			return err
		}
		if !ok || line[0] == ' ' || line[0] == '\t' {
			c.reject(true)
			return nil
		}
		c.out = append(c.out[:0], line...)
		if len(line) == 2 {
			c.state = stHeader
		}
		return nil
	}
	return c.readHeader()
}

// readHeader reads and checks one request header block, resuming the one
// a timeout interrupted.
func (c *FramingConn) readHeader() error {
	h := &c.hdr
	defer func() {
		if c.state != stHeader || len(c.out) > 0 {
			*h = headerScan{} // done with this block
		}
	}()
	for {
		line, ok, err := c.line()
		block := append(h.block, line...)
		h.block = block
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return err // resumed on the next read
			}
			if errors.Is(err, bufio.ErrBufferFull) || len(block) > c.maxHeader {
				c.out, c.state = block, stPassthrough
				return nil
			}
			if len(block) > 0 {
				// A partial request at EOF: net/http reports it.
				c.out, c.state = block, stDead
				return nil
			}
			return err
		}
		if len(block) > c.maxHeader+4096 {
			c.out, c.state = block, stPassthrough
			return nil
		}
		if !ok {
			c.reject(false)
			return nil
		}
		if len(line) == 2 {
			if !h.started {
				// RFC 9112 §2.2: an empty line before the request line is ignored.
				c.out = block
				return nil
			}
			break
		}
		if !h.started {
			h.started = true
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			c.reject(false) // obs-fold (RFC 9112 §5.2)
			return nil
		}
		name, value, found := bytes.Cut(line[:len(line)-2], []byte(":"))
		if !found {
			continue // net/http answers 400 for a line without a colon
		}
		switch {
		case foldEq(name, "content-length"):
			h.cls = append(h.cls, append([]byte(nil), trimOWS(value)...))
		case foldEq(name, "transfer-encoding"):
			h.te = true
		}
	}
	block, cls, te := h.block, h.cls, h.te
	if te && len(cls) > 0 {
		c.reject(false) // RFC 9112 §6.3: CL with TE is an attempt at smuggling
		return nil
	}
	c.out = block
	switch {
	case te:
		c.state = stChunkSize // net/http refuses codings other than chunked
	case len(cls) > 0:
		n, err := strconv.ParseInt(string(cls[0]), 10, 64)
		for _, v := range cls[1:] {
			if !bytes.Equal(v, cls[0]) {
				err = errors.New("differing content-length")
			}
		}
		if err != nil || n < 0 {
			c.state = stDead // net/http answers 400 for it
			return nil
		}
		if n > 0 {
			c.state, c.remaining = stBody, n
		}
	}
	return nil
}

// parseChunkSize parses a chunk-size line (hex digits, optional extensions,
// CRLF); a size past 2^60 is refused.
func parseChunkSize(line []byte) (int64, bool) {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, ch := range line {
		var d byte
		switch {
		case '0' <= ch && ch <= '9':
			d = ch - '0'
		case 'a' <= ch && ch <= 'f':
			d = ch - 'a' + 10
		case 'A' <= ch && ch <= 'F':
			d = ch - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// ReadFrom lets net/http's response writer reach the TCP connection's
// ReadFrom, so disk hits served through net/http go out with sendfile too.
// Only reads are checked; writes pass straight through.
func (c *FramingConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

// PrefixConn replays Prefix, bytes a serving tier read from Conn before it
// handed the connection on, then reads Conn.
type PrefixConn struct {
	net.Conn
	Prefix []byte
	// TLS is the state of a TLS connection handed on wrapped, so that the
	// next tier, which cannot see it is TLS, can tell its requests.
	TLS *tls.ConnectionState
}

func (c *PrefixConn) Read(p []byte) (int, error) {
	if len(c.Prefix) > 0 {
		n := copy(p, c.Prefix)
		c.Prefix = c.Prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the accepted connection (for TCP_INFO readers).
func (c *PrefixConn) NetConn() net.Conn { return netConn(c.Conn) }

// ReadFrom, as FramingConn's.
func (c *PrefixConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

func readFrom(c net.Conn, r io.Reader) (int64, error) {
	if rf, ok := c.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

// netConn unwraps c once, down to the connection it wraps, if any.
func netConn(c net.Conn) net.Conn {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		return nc.NetConn()
	}
	return c
}

var (
	_ io.ReaderFrom = (*FramingConn)(nil)
	_ io.ReaderFrom = (*PrefixConn)(nil)
)
