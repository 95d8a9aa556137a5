package edge

import (
	"net"
	"net/netip"
)

// fdObserver is a ConnObserver that hears the io_uring loop's connections
// only.
type fdObserver func(client netip.Addr, fd int)

func (fdObserver) ObserveConn(net.Conn)                  {}
func (f fdObserver) ObserveFD(client netip.Addr, fd int) { f(client, fd) }
