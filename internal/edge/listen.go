package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// listenRetryFor bounds how long Run waits for its listen address to be
// released, and listenRetryEvery how often it tries again.
const (
	listenRetryFor   = 10 * time.Second
	listenRetryEvery = 20 * time.Millisecond
)

// listen binds addr for TCP with SO_REUSEADDR (connections of the previous
// process in TIME_WAIT do not block the address). An edge restarted at once
// after a crash can still find its address bound by the socket of the
// process it replaces: after SIGKILL the kernel releases the files held by
// an io_uring instance (the listener, under its pending accept)
// asynchronously, milliseconds to seconds after the process is gone, and
// until then bind fails with "address already in use". That is retried
// every listenRetryEvery for up to listenRetryFor, with a log line; any
// other error, or ctx ending, fails at once. what names the listener in
// the log.
func (s *Server) listen(ctx context.Context, what, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	start, retried := time.Now(), false
	for {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err == nil {
			if retried {
				s.log.Info("listen address free again", "listener", what, "addr", addr, "waited", time.Since(start).Round(time.Millisecond))
			}
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Since(start) >= listenRetryFor {
			return nil, err
		}
		if !retried {
			retried = true
			s.log.Warn("listen address still in use, retrying: the socket of the process this one replaces may still be closing",
				"listener", what, "addr", addr, "for", listenRetryFor)
		}
		t := time.NewTimer(listenRetryEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for %s to be free: %w", addr, ctx.Err())
		case <-t.C:
		}
	}
}
