package local

import (
	"errors"
	"fmt"
	"net"
)

// bound holds the listeners bindAll opened, by address.
type bound struct {
	tcp map[string]net.Listener
	udp map[string]net.PacketConn
}

func (b *bound) closeAll() {
	for _, l := range b.tcp {
		l.Close()
	}
	for _, c := range b.udp {
		c.Close()
	}
}

// bindAll binds every listener; those marked Later are bound and released
// at once (checked, for a region that opens later). If any fails, all are
// released and the error is a *PortError naming every failure.
func bindAll(ls []Listener) (*bound, error) {
	b := &bound{tcp: map[string]net.Listener{}, udp: map[string]net.PacketConn{}}
	var failed []ListenFailure
	var later []func()
	for _, l := range ls {
		var err error
		switch l.Net {
		case "udp":
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", l.Addr); err == nil {
				if l.Later {
					later = append(later, func() { c.Close() })
				} else {
					b.udp[l.Addr] = c
				}
			}
		default:
			var ln net.Listener
			if ln, err = net.Listen("tcp", l.Addr); err == nil {
				if l.Later {
					later = append(later, func() { ln.Close() })
				} else {
					b.tcp[l.Addr] = ln
				}
			}
		}
		if err != nil {
			failed = append(failed, ListenFailure{Listener: l, Err: err})
		}
	}
	for _, f := range later {
		f()
	}
	if len(failed) > 0 {
		b.closeAll()
		return nil, &PortError{Failed: failed}
	}
	return b, nil
}

// describe turns a listen error into its cause ("address already in use").
func describe(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return fmt.Sprint(err)
}
