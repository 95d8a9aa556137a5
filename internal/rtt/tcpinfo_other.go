//go:build !linux

package rtt

import (
	"net"
	"time"
)

// TCPRTT is only implemented on Linux; elsewhere it reports no estimate.
func TCPRTT(conn net.Conn) (time.Duration, bool) { return 0, false }

// FDRTT is only implemented on Linux; elsewhere it reports no estimate.
func FDRTT(fd int) (time.Duration, bool) { return 0, false }
