//go:build linux

// Command bare is the benchmark's bare limit: the least a server can do to
// answer a GET on this machine. It answers every request for /obj/SIZE/NAME
// with a fixed header and SIZE bytes (the origin's pattern, so clients can
// compare) and does nothing else: no cache, no parsing beyond the request
// line, no logging. With -mode write (the default) header and body are
// written from memory with one writev (the kernel copies the body into the
// socket); with -mode sendfile the body comes from a memfd with sendfile(2),
// so the sender copies no byte. On loopback, write is the faster of the two:
// sendfile halves the sender's CPU per byte but the receiver then copies
// from pages that are no longer in the cache, and with the load generator
// on the same cores the receiver is the bound (bench/edge/README.md).
// bench/edge/run.sh reports the caches as a fraction of it.
//
// It serves loopback only: it refuses to listen anywhere else.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9100", "loopback address to listen on")
	mode := fs.String("mode", "write", "how bodies are sent: write (writev from memory) or sendfile (from a memfd)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode != "sendfile" && *mode != "write" {
		return fmt.Errorf("-mode %q: want write or sendfile", *mode)
	}
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("-listen %q: want a loopback address:port", *listen)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	b := &bare{sendfile: *mode == "sendfile", bodies: map[int64]*body{}}
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accepting: %w", err)
		}
		go b.serve(c.(*net.TCPConn))
	}
}

type bare struct {
	sendfile bool
	mu       sync.Mutex
	bodies   map[int64]*body
}

// body is one size's response: in memory and in a memfd.
type body struct {
	mem []byte
	fd  int
}

const pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"

// maxObject bounds the bodies so a typo cannot eat the machine.
const maxObject = 1 << 30

func (b *bare) body(size int64) (*body, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if x, ok := b.bodies[size]; ok {
		return x, nil
	}
	mem := make([]byte, size)
	for i := int64(0); i < size; i += int64(len(pattern)) {
		copy(mem[i:], pattern)
	}
	fd, err := unix.MemfdCreate("bare", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	for off := 0; off < len(mem); {
		n, err := unix.Pwrite(fd, mem[off:], int64(off))
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("writing the memfd: %w", err)
		}
		off += n
	}
	x := &body{mem: mem, fd: fd}
	b.bodies[size] = x
	return x, nil
}

func (b *bare) serve(c *net.TCPConn) {
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	br := bufio.NewReaderSize(c, 4096)
	var hdr []byte
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		size, perr := objectSize(line)
		for { // the rest of the header
			l, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(bytes.TrimRight(l, "\r\n")) == 0 {
				break
			}
		}
		if perr != nil {
			msg := perr.Error() + "\n"
			fmt.Fprintf(c, "HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
			continue
		}
		x, err := b.body(size)
		if err != nil {
			return
		}
		hdr = append(hdr[:0], "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "...)
		hdr = strconv.AppendInt(hdr, size, 10)
		hdr = append(hdr, "\r\n\r\n"...)
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		if !b.sendfile {
			if _, err := (&net.Buffers{hdr, x.mem}).WriteTo(c); err != nil {
				return
			}
			continue
		}
		if err := sendAll(rc, hdr, x.fd, size); err != nil {
			return
		}
	}
}

// sendAll writes hdr (corked with the body) and then size bytes of fd with
// sendfile, waiting in Go's poller when the socket is full.
func sendAll(rc syscall.RawConn, hdr []byte, fd int, size int64) error {
	var off int64
	var serr error
	err := rc.Write(func(s uintptr) bool {
		for len(hdr) > 0 {
			n, err := unix.SendmsgN(int(s), hdr, nil, nil, unix.MSG_MORE)
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				serr = err
				return true
			}
			hdr = hdr[n:]
		}
		for off < size {
			n, err := unix.Sendfile(int(s), fd, &off, int(min(size-off, 1<<30)))
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				serr = err
				return true
			}
			if n == 0 {
				serr = io.ErrUnexpectedEOF
				return true
			}
		}
		return true
	})
	return errors.Join(err, serr)
}

// objectSize reads SIZE from a request line "GET /obj/SIZE/NAME HTTP/1.1".
func objectSize(line []byte) (int64, error) {
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "GET" {
		return 0, errors.New("want GET /obj/SIZE/NAME")
	}
	rest, ok := strings.CutPrefix(f[1], "/obj/")
	if !ok {
		return 0, errors.New("want GET /obj/SIZE/NAME")
	}
	s, _, _ := strings.Cut(rest, "/")
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > maxObject/mult {
		return 0, fmt.Errorf("bad size %q (at most 1 GiB)", s)
	}
	return n * mult, nil
}
