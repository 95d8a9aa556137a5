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
	var info *unix.TCPInfo
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil || info == nil || info.Rtt == 0 {
		return 0, false
	}
	return time.Duration(info.Rtt) * time.Microsecond, true
}
