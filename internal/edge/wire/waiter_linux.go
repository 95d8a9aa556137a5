//go:build linux

package wire

import (
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Waiter holds idle keep-alive connections without a goroutine or buffers
// each, as nginx's and Varnish's event loops do: a server parks a connection
// that has had no request for a while, and the waiter hands it back (ready)
// when the client sends again or hangs up, or gives it up (expired) once it
// has been parked past its deadline. An idle connection then costs the
// kernel's socket and a few hundred bytes of bookkeeping, not the 15 KB of a
// goroutine stack and two buffers. T is what the server knows a parked
// connection by.
//
// It is one epoll instance of its own, registered in turn with Go's poller,
// so waiting for it takes no thread. Connections are registered one-shot,
// under an id of the waiter's (never the file descriptor, whose number a
// closed connection passes on), and only through their RawConn, which keeps
// the descriptor open meanwhile.
//
// A nil *Waiter parks nothing.
type Waiter[T any] struct {
	ep      *os.File
	epfd    int
	rc      syscall.RawConn
	ready   func(T)
	expired func(T)
	tick    time.Duration

	mu     sync.Mutex
	next   uint64
	conns  map[uint64]parked[T]
	closed bool
	done   chan struct{}
}

type parked[T any] struct {
	v     T
	rc    syscall.RawConn
	until time.Time // closed then if still parked
}

// NewWaiter starts a waiter. ready is called for each parked connection
// that becomes readable (or hangs up), expired for each one parked past its
// deadline, which the waiter checks every tick; either takes the connection
// out of the waiter, and neither is called with the waiter's lock held.
func NewWaiter[T any](tick time.Duration, ready, expired func(T)) (*Waiter[T], error) {
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
	w := &Waiter[T]{ep: ep, epfd: fd, rc: rc, ready: ready, expired: expired, tick: tick,
		conns: map[uint64]parked[T]{}, done: make(chan struct{})}
	go w.run()
	go w.expire()
	return w, nil
}

// Park registers c, idle, known as v, to be handed back when it is readable
// or expired after until; false leaves it to the caller (not a connection
// with a descriptor, or the waiter is closing).
func (w *Waiter[T]) Park(c net.Conn, v T, until time.Time) bool {
	if w == nil {
		return false
	}
	sc, ok := c.(syscall.Conn)
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
	w.conns[id] = parked[T]{v: v, rc: rc, until: until}
	return true
}

// unregister takes id out of the waiter; false if it was not there.
// Called with w.mu held.
func (w *Waiter[T]) unregister(id uint64) (parked[T], bool) {
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

// run hands back the parked connections that become readable.
func (w *Waiter[T]) run() {
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
				w.ready(p.v)
			}
		}
	}
}

// expire gives up the connections parked past their deadline.
func (w *Waiter[T]) expire() {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case now := <-t.C:
			var old []T
			w.mu.Lock()
			for id, p := range w.conns {
				if now.After(p.until) {
					w.unregister(id)
					old = append(old, p.v)
				}
			}
			w.mu.Unlock()
			for _, v := range old {
				w.expired(v)
			}
		}
	}
}

// Len is how many connections are parked.
func (w *Waiter[T]) Len() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.conns)
}

// Close stops parking and handing back. The connections still parked are
// neither handed back nor expired: the caller, which knows them, closes
// them.
func (w *Waiter[T]) Close() {
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
