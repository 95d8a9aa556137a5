//go:build linux

package edge

import (
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/kubecdn/kubecdn/internal/edge/wire"
)

// serveLogged is serve, logged and counted (demand.go); raw is the
// request's header. The loop queues the response and sends it in the same
// round, so the duration logged is the time to answer, without the send.
func (u *uringServer) serveLogged(c *uringConn, req *wire.Request, raw []byte) bool {
	s := u.s
	logged := s.alog != nil && s.alog.Sample(http.StatusOK)
	var start time.Time
	if logged {
		start = s.now()
	}
	if !u.serve(c, req) {
		return false
	}
	c.kept = true
	if !c.st.peer.IsValid() {
		// Once per connection: the loop has no net.Conn to ask.
		if sa, err := syscall.Getpeername(c.fd); err == nil {
			c.st.peer = sockaddrAddrPort(sa)
		}
	}
	s.countFast(&c.st, req.Head)
	if !logged {
		return true
	}
	s.logFast(start, &c.st, req, raw[:req.Size], "")
	return true
}

// sockaddrAddrPort is sockaddrAddr with the port.
func sockaddrAddrPort(sa syscall.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(sockaddrAddr(sa), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(sockaddrAddr(sa), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
