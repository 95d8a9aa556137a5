//go:build !linux

package edge

import "time"

// waiter parks idle connections on Linux only (waiter_linux.go); elsewhere
// an idle connection keeps its goroutine and buffers.
type waiter struct{}

func newWaiter(*Server) (*waiter, error)         { return nil, nil }
func (w *waiter) park(*fastConn, time.Time) bool { return false }
func (w *waiter) len() int                       { return 0 }
func (w *waiter) close()                         {}
