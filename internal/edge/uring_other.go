//go:build !linux

package edge

import (
	"errors"
	"net"
)

// uringServer is Linux's io_uring event loop (uringserve_linux.go); other
// systems serve every connection with a goroutine.
type uringServer struct {
	done chan struct{}
	err  error
}

func newUringServer(*Server, net.Listener, *fastListener) (*uringServer, error) {
	return nil, errors.New("io_uring is Linux's")
}

func (u *uringServer) stop()            {}
func (u *uringServer) connections() int { return 0 }
func (u *uringServer) wakeUp()          {}
