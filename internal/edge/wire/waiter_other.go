//go:build !linux

package wire

import (
	"net"
	"time"
)

// Waiter parks idle connections on Linux only (waiter_linux.go); elsewhere
// an idle connection keeps its goroutine and buffers.
type Waiter[T any] struct{}

// NewWaiter returns no waiter: there is none to park in.
func NewWaiter[T any](time.Duration, func(T), func(T)) (*Waiter[T], error) { return nil, nil }

// Park parks nothing.
func (w *Waiter[T]) Park(net.Conn, T, time.Time) bool { return false }

// Len is 0.
func (w *Waiter[T]) Len() int { return 0 }

// Close does nothing.
func (w *Waiter[T]) Close() {}
