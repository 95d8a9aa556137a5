//go:build linux

package edge

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kubecdn/kubecdn/internal/edge/wire"
)

// uringServer serves the plain-HTTP listener from one io_uring event loop,
// the way nginx's worker does from epoll, but with the system calls batched:
// it accepts connections, receives into buffers the kernel picks from a
// shared pool (so an idle connection holds none), and answers the requests
// the fast path answers from memory — fresh hits whose body (or every
// slice of it) is in the memory tier — with one io_uring_enter per round
// for every connection that had something. Small bodies are copied after
// their header; larger ones are sent from the memory tier's own copy. On
// this 2-core machine the loop served 1 KiB hits at about 1.5x the
// goroutine-per-connection fast path, which spends most of its time in
// read/write system calls and in waking goroutines.
//
// A connection leaves the loop for good the first time it sends anything
// else (a miss, a conditional or range request, a body on disk only, a
// request outside the fast subset): its descriptor goes into Go's poller
// and the goroutine fast path serves it, starting with the bytes the loop
// had read, exactly as if it had read them itself.
type uringServer struct {
	s    *Server
	fl   *fastListener
	r    *wire.Ring
	bufs *wire.RingBufs
	lnfd int // the listener's descriptor, dup'ed
	efd  int // eventfd: stop wakes the loop through it
	// efdMu guards efd's closing (at the loop's end) against stop's write.
	efdMu     sync.Mutex
	efdClosed bool
	wake      [8]byte
	tick      [2]int64 // the tick's timespec
	conns     map[uint64]*uringConn
	next      uint64
	free      [][]byte // send buffers of finished responses, for reuse

	accepting bool // a multishot accept is armed
	stopping  atomic.Bool
	stopped   bool // stop has been acted on
	live      atomic.Int64
	done      chan struct{}
	err       error // why the loop stopped on its own (read after done)
}

const (
	uringEntries  = 16384 // SQEs queued in one round before the loop must submit
	uringBufCount = 1024
	uringBufSize  = 4 << 10
	uringMaxOut   = 64 << 10 // responses queued before the loop sends
	uringCopyMax  = 16 << 10 // larger bodies are sent from the memory tier's copy
	uringTick     = time.Second
	uringFreeBufs = 64      // send buffers kept for reuse
	uringSendMax  = 1 << 30 // the most one send may carry (its length is 32 bits)
	// Bodies from uringLowatMin on are sent with TCP_NOTSENT_LOWAT at
	// uringLowat: the kernel holds at most that much not yet sent beyond
	// what is in flight (the window is not capped), so a large download
	// keeps less kernel memory queued and its bytes are still in the
	// cache when they go out. Measured on loopback (wrk -c4, 64 MiB hits,
	// 4 interleaved rounds): the client's CPU per GiB received fell from
	// 886-1086 ms to 680-865 (bench/edge/README.md). Smaller bodies go
	// without: at 1 MiB (wrk -c64) the extra wake-ups cost more than it
	// saved.
	uringLowatMin = 4 << 20
	uringLowat    = 64 << 10
)

// Operations, in the low byte of user_data; a connection's id is above it.
const (
	uopAccept = iota + 1
	uopRecv
	uopSend
	uopWake
	uopTick
)

// uringConn is a connection the loop serves. At any time it has one
// operation in flight (a receive or a send) or none (closing).
type uringConn struct {
	id      uint64
	fd      int
	pending []byte // bytes read and not answered yet
	out     []byte // responses to send
	sent    int
	// body is a large body to send after out, from the memory tier's own
	// copies (never copied into out): one blob, or the slices of a sliced
	// object; bodySent bytes of body[0] are sent.
	body      [][]byte
	bodySent  int
	sending   bool
	sendSince int64 // Unix ns: when the send in flight was submitted, or last seen progressing
	// acked is the socket's tcpi_bytes_acked when a body send was
	// submitted or last checked: a body send waits for all its bytes
	// (MSG_WAITALL), so progress inside it shows only there.
	acked uint64
	lowat bool // TCP_NOTSENT_LOWAT is set for the large body in flight
	shut  bool // shut down: close when the receive in flight ends
	// closeAfter and handAfter: once out is sent, close the connection or
	// hand it to the goroutine fast path with pending.
	closeAfter, handAfter bool
	partial               bool  // pending holds part of a request header
	kept                  bool  // has answered a request: idle now means kept alive
	since                 int64 // Unix ns: idle since, or the partial header since
	st                    fastConnState
}

// newUringServer starts the loop on ln; wire.ErrNoIOUring (wrapped) when the
// kernel has no io_uring for it.
func newUringServer(s *Server, ln net.Listener, fl *fastListener) (*uringServer, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, errors.New("not a TCP listener")
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, err
	}
	lnfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		lnfd, derr = dupCloexec(int(fd))
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl", derr)
	}
	efd, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC, 0)
	if e != 0 {
		syscall.Close(lnfd)
		return nil, os.NewSyscallError("eventfd2", e)
	}
	u := &uringServer{s: s, fl: fl, lnfd: lnfd, efd: int(efd), conns: map[uint64]*uringConn{}, done: make(chan struct{})}
	u.tick = [2]int64{int64(uringTick / time.Second), int64(uringTick % time.Second)}
	// The ring is created on the loop's own locked thread: it is its only
	// submitter, which lets the kernel run completions there, in batches.
	errc := make(chan error, 1)
	go u.run(errc)
	if err := <-errc; err != nil {
		syscall.Close(lnfd)
		syscall.Close(int(efd))
		return nil, err
	}
	return u, nil
}

func dupCloexec(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// stop makes the loop stop accepting, close its idle connections, finish
// the responses it is sending, and return; done is closed then.
func (u *uringServer) stop() {
	if u == nil {
		return
	}
	if !u.stopping.Swap(true) {
		u.wakeUp()
	}
}

// wakeUp makes the loop look at its flags (stopping, the server's drain)
// now rather than at its next tick.
func (u *uringServer) wakeUp() {
	if u == nil {
		return
	}
	u.efdMu.Lock()
	defer u.efdMu.Unlock()
	if !u.efdClosed {
		one := uint64(1)
		syscall.Write(u.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
	}
}

// shedIdle closes the kept-alive connections waiting for their next
// request, while the server drains (drain.go).
func (u *uringServer) shedIdle() {
	for _, c := range u.conns {
		if c.kept && !c.sending && !c.partial && len(c.pending) == 0 {
			u.shut(c)
		}
	}
}

// connections is how many connections the loop serves now.
func (u *uringServer) connections() int {
	if u == nil {
		return 0
	}
	return int(u.live.Load())
}

func (u *uringServer) run(errc chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := wire.NewRing(uringEntries)
	if err == nil {
		u.bufs, err = r.RegisterBufs(0, uringBufCount, uringBufSize)
		if err != nil {
			r.Close()
		}
	}
	if err != nil {
		errc <- err
		return
	}
	u.r = r
	defer func() {
		syscall.Close(u.lnfd)
		u.efdMu.Lock()
		syscall.Close(u.efd)
		u.efdClosed = true
		u.efdMu.Unlock()
		u.r.Close()
		u.bufs.Close()
		close(u.done)
	}()
	u.arm(uopAccept)
	u.arm(uopWake)
	u.arm(uopTick)
	// Submitted now rather than at the loop's first wait, so that the
	// accept is armed before the edge reports itself ready. An error
	// shows again at the loop's first enter.
	_ = u.r.Enter(0)
	errc <- nil
	for {
		if err := u.r.Enter(1); err != nil {
			u.err = err
			for _, c := range u.conns {
				syscall.Close(c.fd)
			}
			return
		}
		u.r.Reap(u.complete)
		if u.stopping.Load() && !u.stopped {
			u.beginStop()
		}
		if u.stopped && len(u.conns) == 0 && !u.accepting {
			return
		}
	}
}

// arm queues an operation of the loop's own.
func (u *uringServer) arm(op uint64) {
	e := u.sqe()
	if e == nil {
		return
	}
	e.UserData = op
	switch op {
	case uopAccept:
		e.Opcode, e.Fd, e.IOPrio = wire.OpAccept, int32(u.lnfd), wire.AcceptMultishot
		e.OpFlags = syscall.SOCK_CLOEXEC | syscall.SOCK_NONBLOCK
		u.accepting = true
	case uopWake:
		e.Opcode, e.Fd = wire.OpRead, int32(u.efd)
		e.Addr, e.Len = uint64(uintptr(unsafe.Pointer(&u.wake[0]))), 8
	case uopTick:
		e.Opcode, e.Len = wire.OpTimeout, 1
		e.Addr = uint64(uintptr(unsafe.Pointer(&u.tick[0])))
	}
}

func (u *uringServer) sqe() *wire.SQE {
	e, err := u.r.SQE()
	if err != nil {
		u.s.log.Error("io_uring submit", "err", err)
		return nil
	}
	return e
}

func (u *uringServer) recv(c *uringConn) {
	e := u.sqe()
	if e == nil {
		u.closeNow(c)
		return
	}
	e.Opcode, e.Fd, e.Flags = wire.OpRecv, int32(c.fd), wire.SQEBufferSelect
	e.BufGroup, e.Len = u.bufs.Group(), uint32(u.bufs.Size())
	e.UserData = c.id<<8 | uopRecv
}

func (u *uringServer) send(c *uringConn) {
	e := u.sqe()
	if e == nil {
		u.closeNow(c)
		return
	}
	rest, flags := c.out[c.sent:], uint32(syscall.MSG_NOSIGNAL)
	if len(rest) == 0 {
		// A body (or a slice of one) is sent whole: the kernel retries
		// the rest each time the socket has room, with no completion
		// and no round of the loop in between (a 64 MiB hit took 62
		// rounds of the loop without, 18 with: one per 4 MiB slice).
		// A kernel that ignores MSG_WAITALL here completes short sends,
		// which go on from where they stopped as before.
		rest = c.body[0][c.bodySent:]
		if len(rest) > uringSendMax {
			rest = rest[:uringSendMax]
		}
		flags |= syscall.MSG_WAITALL
		if len(c.body) > 1 || len(rest) < len(c.body[0])-c.bodySent {
			flags |= syscall.MSG_MORE // more of the body follows at once
		}
		c.acked = bytesAcked(c.fd)
	} else if len(c.body) > 0 {
		flags |= syscall.MSG_MORE // the body follows at once
	}
	e.Opcode, e.Fd = wire.OpSend, int32(c.fd)
	e.Addr, e.Len = uint64(uintptr(unsafe.Pointer(&rest[0]))), uint32(len(rest))
	e.OpFlags = flags
	e.UserData = c.id<<8 | uopSend
	// Each send follows progress (or starts a response): a client that
	// takes none for s.fastWrite is cut off (see timeouts).
	c.sending, c.sendSince = true, time.Now().UnixNano()
}

func (u *uringServer) complete(cq wire.CQE) {
	op, id := cq.UserData&0xff, cq.UserData>>8
	switch op {
	case uopAccept:
		if cq.Res >= 0 {
			u.add(int(cq.Res))
		}
		if cq.Flags&wire.CQEMore == 0 {
			u.accepting = false
			// Re-armed at once unless stopping, or at the next tick after
			// an error (out of descriptors): no spinning.
			if !u.stopped && cq.Res >= 0 {
				u.arm(uopAccept)
			}
		}
	case uopWake:
		if !u.stopping.Load() {
			u.arm(uopWake)
		}
		if u.s.connDrain.Load() {
			u.shedIdle()
		}
	case uopTick:
		u.timeouts()
		if !u.stopped || len(u.conns) > 0 {
			u.arm(uopTick)
		}
	case uopRecv:
		c := u.conns[id]
		if c == nil {
			return
		}
		var data []byte
		if cq.Flags&wire.CQEBuffer != 0 {
			bid := uint16(cq.Flags >> 16)
			defer u.bufs.Put(bid)
			data = u.bufs.Buf(bid)[:max(cq.Res, 0)]
		}
		switch {
		case cq.Res == -int32(syscall.ENOBUFS) && !c.shut:
			u.recv(c) // every buffer was taken: they come back this round
		case cq.Res <= 0 || c.shut:
			u.closeNow(c)
		default:
			if len(c.pending) > 0 {
				c.pending = append(c.pending, data...)
				data = c.pending
			}
			u.process(c, data)
		}
	case uopSend:
		c := u.conns[id]
		if c == nil {
			return
		}
		if cq.Res <= 0 {
			c.sending = false
			u.closeNow(c)
			return
		}
		if c.sent < len(c.out) {
			c.sent += int(cq.Res)
		} else if c.bodySent += int(cq.Res); c.bodySent == len(c.body[0]) {
			c.body, c.bodySent = c.body[1:], 0
		}
		if c.sent < len(c.out) || len(c.body) > 0 {
			u.send(c)
			return
		}
		c.sending, c.sent, c.body = false, 0, nil
		if c.lowat { // back to the system's default (net.ipv4.tcp_notsent_lowat)
			syscall.SetsockoptInt(c.fd, syscall.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, 0)
			c.lowat = false
		}
		u.recycle(c)
		switch {
		case c.handAfter:
			u.handoff(c)
		case c.closeAfter || u.stopped:
			u.closeNow(c)
		case len(c.pending) > 0:
			u.process(c, c.pending)
		default:
			c.since = time.Now().UnixNano()
			u.recv(c)
		}
	}
}

func (u *uringServer) add(fd int) {
	if u.stopped || u.s.draining.Load() {
		syscall.Close(fd)
		return
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if obs := u.s.opts.Observer; obs != nil {
		if sa, err := syscall.Getpeername(fd); err == nil {
			obs.ObserveFD(sockaddrAddr(sa), fd)
		}
	}
	u.next++
	c := &uringConn{id: u.next, fd: fd, since: time.Now().UnixNano()}
	u.conns[c.id] = c
	u.live.Add(1)
	u.recv(c)
}

// bytesAcked is how many bytes the peer of the TCP socket fd has
// acknowledged (TCP_INFO tcpi_bytes_acked); 0 when the kernel does not say.
func bytesAcked(fd int) uint64 {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return info.Bytes_acked
}

func sockaddrAddr(sa syscall.Sockaddr) netip.Addr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrFrom4(sa.Addr)
	case *syscall.SockaddrInet6:
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}

// process answers the requests in data (which may be c.pending, or a
// provided buffer the caller takes back after: what stays is copied), then
// queues the send, the next receive, or the hand-over.
func (u *uringServer) process(c *uringConn, data []byte) {
	if c.out == nil {
		if n := len(u.free); n > 0 {
			c.out, u.free = u.free[n-1], u.free[:n-1]
		}
	}
	for len(data) > 0 && !c.closeAfter {
		req, ok, complete := wire.ParseRequest(data)
		if ok && !complete {
			if len(data) >= fastBufSize {
				ok = false
			} else {
				if !c.partial {
					c.partial, c.since = true, time.Now().UnixNano()
				}
				break
			}
		}
		// Draining (drain.go): this response is the connection's last.
		req.Close = req.Close || u.s.connDrain.Load()
		if !ok || !u.serveLogged(c, &req, data) {
			c.handAfter = true
			break
		}
		data = data[req.Size:]
		c.partial = false
		c.closeAfter = req.Close
		if len(c.out) >= uringMaxOut || c.body != nil {
			break
		}
	}
	if c.closeAfter {
		data = nil
	}
	c.pending = append(c.pending[:0], data...)
	if len(c.pending) == 0 {
		c.pending = nil // an idle connection holds no buffer
	}
	switch {
	case len(c.out) > 0:
		u.send(c)
	case c.handAfter:
		u.handoff(c)
	case c.closeAfter:
		u.closeNow(c)
	default:
		u.recycle(c)
		if !c.partial { // a partial header keeps the time it started
			c.since = time.Now().UnixNano()
		}
		u.recv(c)
	}
}

// serve appends the response to req to c.out (a large body, or the slices
// of a sliced object, to c.body) when it is a fresh hit whose body is all
// in the memory tier; false leaves the request to the goroutine fast path.
func (u *uringServer) serve(c *uringConn, req *wire.Request) bool {
	x := fastExchange{s: u.s, st: &c.st, req: *req}
	l, ok := x.lookup(c.out, true)
	if !ok || l.e == nil {
		return false
	}
	defer l.e.Close()
	out := l.head
	if !req.Head {
		var body [][]byte
		if l.m.Sliced {
			if body = u.s.memorySlices(l.key, l.m); body == nil {
				return false // a slice is missing or on disk only
			}
		} else if b := l.e.Body(); b != nil {
			body = [][]byte{b}
		} else {
			return false // on disk only: the goroutine path sends it with sendfile
		}
		if len(body) == 1 && len(out)+len(body[0]) <= uringCopyMax {
			out = append(out, body[0]...)
		} else {
			c.body = body
			if l.size >= uringLowatMin && !c.lowat {
				syscall.SetsockoptInt(c.fd, syscall.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, uringLowat)
				c.lowat = true
			}
		}
		u.s.metrics.bytesOut.Add(float64(l.size))
	}
	c.out = out
	u.s.metrics.hits.Inc()
	return true
}

// memorySlices returns the bodies of every slice of the sliced object
// whose metadata m is stored under key, when all are in the memory tier
// and agree with m (same validator, whole); nil otherwise.
func (s *Server) memorySlices(key string, m *objMeta) [][]byte {
	vk, _ := variantOf(key)
	want, S := validator(m.Header), m.SliceBytes
	if S <= 0 || m.Size <= 0 {
		return nil
	}
	var bodies [][]byte
	for i := int64(0); i*S < m.Size; i++ {
		e, ok := s.store.Get(sliceKey(vk, i))
		if !ok {
			return nil
		}
		b, meta := e.Body(), e.Meta()
		e.Close()
		if b == nil || string(meta) != want || int64(len(b)) != min(S, m.Size-i*S) {
			return nil
		}
		bodies = append(bodies, b)
	}
	return bodies
}

// handoff moves c, with c.pending (bytes read and not answered, which go
// with it), to the goroutine fast path. The descriptor is the new goroutine's from here:
// net.FileConn puts a duplicate in Go's poller (half a dozen system calls,
// kept off the loop) and the original is closed.
func (u *uringServer) handoff(c *uringConn) {
	u.forget(c)
	fd, prefix, s := c.fd, c.pending, u.s
	// Counted now, while the loop's own count keeps the group above zero
	// (a shutdown may be waiting on it).
	s.fast.wg.Add(1)
	go func() {
		f := os.NewFile(uintptr(fd), "")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			s.fast.wg.Done()
			s.log.Warn("io_uring hand-over", "err", err)
			return
		}
		fc := &fastConn{c: nc, fl: u.fl, prefix: prefix}
		s.fast.mu.Lock()
		if s.draining.Load() {
			s.fast.mu.Unlock()
			nc.Close()
			s.fast.wg.Done()
			return
		}
		s.fast.conns[nc] = fc
		s.fast.mu.Unlock()
		s.runFast(fc) // ends with s.fast.wg.Done
	}()
}

func (u *uringServer) forget(c *uringConn) {
	if _, ok := u.conns[c.id]; ok {
		delete(u.conns, c.id)
		u.live.Add(-1)
	}
	u.recycle(c)
}

// recycle takes c's send buffer back for the next connection that answers;
// a few are kept, the rest left to the garbage collector.
func (u *uringServer) recycle(c *uringConn) {
	if c.out != nil && len(u.free) < uringFreeBufs {
		u.free = append(u.free, c.out[:0])
	}
	c.out = nil
}

// closeNow closes c, which has no operation in flight.
func (u *uringServer) closeNow(c *uringConn) {
	u.forget(c)
	syscall.Close(c.fd)
}

// shut ends c's receive in flight (it completes empty) so that c is closed
// then; a connection sending is closed when the send is done.
func (u *uringServer) shut(c *uringConn) {
	if c.sending {
		c.closeAfter = true
		return
	}
	if !c.shut {
		c.shut = true
		syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	}
}

// timeouts closes the connections idle longer than the idle timeout and
// those whose request header has taken longer than fastReadTimeout; and
// re-arms an accept that failed.
func (u *uringServer) timeouts() {
	now := time.Now().UnixNano()
	idle, hdr := int64(u.s.fastIdle), int64(fastReadTimeout)
	for _, c := range u.conns {
		if c.sending && now-c.sendSince > int64(u.s.fastWrite) {
			if len(c.out[c.sent:]) == 0 { // a body send: has it progressed?
				if a := bytesAcked(c.fd); a != c.acked {
					c.acked, c.sendSince = a, now
					continue
				}
			}
			// A client that stopped reading: the send fails, and the
			// connection is closed then.
			syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
			continue
		}
		if c.sending || c.shut {
			continue
		}
		if (c.partial && now-c.since > hdr) || (!c.partial && now-c.since > idle) {
			u.shut(c)
		}
	}
	if !u.accepting && !u.stopped {
		u.arm(uopAccept)
	}
}

// beginStop stops accepting and winds the connections down.
func (u *uringServer) beginStop() {
	u.stopped = true
	// Shutting the listening socket down ends the multishot accept (closing
	// a descriptor would not: the ring holds the socket).
	syscall.Shutdown(u.lnfd, syscall.SHUT_RD)
	for _, c := range u.conns {
		u.shut(c)
	}
}
