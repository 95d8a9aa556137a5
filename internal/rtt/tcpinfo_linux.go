//go:build linux

package rtt

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// TCPRTT returns the kernel's smoothed round-trip time of a TCP connection
// (TCP_INFO tcpi_rtt), unwrapping *tls.Conn and similar wrappers that have a
// NetConn method. ok is false for other connections or when the kernel has
// no estimate yet.
func TCPRTT(conn net.Conn) (time.Duration, bool) {
	for i := 0; i < 4; i++ {
		w, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = w.NetConn()
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var d time.Duration
	ok = false
	if err := raw.Control(func(fd uintptr) { d, ok = FDRTT(int(fd)) }); err != nil {
		return 0, false
	}
	return d, ok
}

// FDRTT is TCPRTT for a connected TCP socket's descriptor.
func FDRTT(fd int) (time.Duration, bool) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil || info == nil || info.Rtt == 0 {
		return 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, true
}
