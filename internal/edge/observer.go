package edge

import (
	"net"
	"net/netip"
)

// ConnObserver is told of the edge's public client connections by every
// serving tier (the io_uring loop, the goroutine fast path, net/http); the
// rtt feed's Collector is one, reading each connection's round-trip time.
// It is given once, in Options.Observer, so no tier can be left out of
// the wiring. Its methods run on the serving path: they must be quick and
// safe for concurrent use.
type ConnObserver interface {
	// ObserveConn is called with each connection the goroutine tier
	// accepts, and again each time one served by net/http goes idle after
	// a response.
	ObserveConn(c net.Conn)
	// ObserveFD is called with each connection the io_uring loop accepts
	// (it has no net.Conn): the client's address and the socket.
	ObserveFD(client netip.Addr, fd int)
}
