//go:build linux

package edge

import (
	"os"
	"sync"
	"syscall"
	"time"
)

// waiter holds idle plain-HTTP keep-alive connections without a goroutine or
// buffers each, as nginx's and Varnish's event loops do: the fast path parks
// a connection that has had no request for s.parkAfter, and the waiter hands
// it back to a new goroutine when the client sends again (or hangs up). An
// idle connection then costs the kernel's socket and Go's few hundred bytes
// of bookkeeping, not the 15 KB of a goroutine stack and two buffers.
//
// It is one epoll instance of its own, registered in turn with Go's poller,
// so waiting for it takes no thread. Connections are registered one-shot,
// under an id of the waiter's (never the file descriptor, whose number a
// closed connection passes on), and only through their RawConn, which keeps
// the descriptor open meanwhile.
type waiter struct {
	s    *Server
	ep   *os.File
	epfd int
	rc   syscall.RawConn

	mu     sync.Mutex
	next   uint64
	conns  map[uint64]parkedConn
	closed bool
	done   chan struct{}
}

type parkedConn struct {
	fc    *fastConn
	rc    syscall.RawConn
	until time.Time // idle timeout: closed then if still parked
}

func newWaiter(s *Server) (*waiter, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile registers it with Go's poller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	ep := os.NewFile(uintptr(fd), "kubecdn-waiter")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, err
	}
	w := &waiter{s: s, ep: ep, epfd: fd, rc: rc, conns: map[uint64]parkedConn{}, done: make(chan struct{})}
	go w.run()
	go w.expire()
	return w, nil
}

// park registers fc, idle, to be resumed when it is readable; false leaves
// it to the caller (not a plain TCP connection, or the waiter is closing).
func (w *waiter) park(fc *fastConn, until time.Time) bool {
	if w == nil {
		return false
	}
	sc, ok := fc.c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.next++
	id := w.next
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
		cerr = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		return false
	}
	w.conns[id] = parkedConn{fc: fc, rc: rc, until: until}
	return true
}

// unregister takes id out of the waiter; false if it was not there.
// Called with w.mu held.
func (w *waiter) unregister(id uint64) (parkedConn, bool) {
	p, ok := w.conns[id]
	if !ok {
		return p, false
	}
	delete(w.conns, id)
	if w.closed {
		return p, true // w.epfd is closed: its number may be another's now
	}
	// Fails harmlessly when the connection was closed meanwhile (a closed
	// descriptor leaves every epoll set by itself).
	p.rc.Control(func(fd uintptr) {
		syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	return p, true
}

// run resumes the parked connections that become readable.
func (w *waiter) run() {
	evs := make([]syscall.EpollEvent, 256)
	for {
		var n int
		err := w.rc.Read(func(fd uintptr) bool {
			var err error
			n, err = syscall.EpollWait(int(fd), evs, 0)
			return err == nil && n > 0
		})
		if err != nil {
			return // closed
		}
		for _, ev := range evs[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			w.mu.Lock()
			p, ok := w.unregister(id)
			w.mu.Unlock()
			if ok {
				w.s.resumeFast(p.fc)
			}
		}
	}
}

// expire closes the connections parked past their idle timeout.
func (w *waiter) expire() {
	t := time.NewTicker(min(w.s.fastIdle/4, 5*time.Second))
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case now := <-t.C:
			var old []*fastConn
			w.mu.Lock()
			for id, p := range w.conns {
				if now.After(p.until) {
					w.unregister(id)
					old = append(old, p.fc)
				}
			}
			w.mu.Unlock()
			for _, fc := range old {
				w.s.untrackFast(fc)
				fc.c.Close()
			}
		}
	}
}

// len is how many connections are parked.
func (w *waiter) len() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.conns)
}

// close stops parking and resuming. The parked connections stay tracked by
// the fast path, whose shutdown closes them.
func (w *waiter) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	close(w.done)
	w.ep.Close()
}
