//go:build linux

package wire

import (
	"net"
	"testing"
	"time"
)

// idlePair is a loopback TCP connection: the server's end and the client's.
func idlePair(t *testing.T, ln net.Listener) (server, client net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server, client
}

func within(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("handed back %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%q not handed back within 5s", want)
	}
}

// TestWaiter parks connections: one the client sends on comes back as
// ready, one past its deadline as expired, and a closed waiter parks none.
func TestWaiter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ready, expired := make(chan string, 4), make(chan string, 4)
	w, err := NewWaiter(10*time.Millisecond, func(v string) { ready <- v }, func(v string) { expired <- v })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	sa, ca := idlePair(t, ln)
	sb, _ := idlePair(t, ln)
	if !w.Park(sa, "a", time.Now().Add(time.Hour)) || !w.Park(sb, "b", time.Now().Add(50*time.Millisecond)) {
		t.Fatal("a TCP connection was not parked")
	}
	if n := w.Len(); n != 2 {
		t.Fatalf("%d parked, want 2", n)
	}
	within(t, expired, "b")
	if _, err := ca.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	within(t, ready, "a")
	if n := w.Len(); n != 0 {
		t.Fatalf("%d parked after both came back, want 0", n)
	}
	// The connection is the caller's again, with its bytes unread.
	buf := make([]byte, 3)
	sa.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sa.Read(buf); err != nil || string(buf) != "GET" {
		t.Fatalf("read %q, %v after the hand-back", buf, err)
	}

	w.Close()
	sc, _ := idlePair(t, ln)
	if w.Park(sc, "c", time.Now().Add(time.Hour)) {
		t.Fatal("a closed waiter parked a connection")
	}
	var none *Waiter[string]
	if none.Park(sc, "c", time.Now().Add(time.Hour)) || none.Len() != 0 {
		t.Fatal("a nil waiter parked a connection")
	}
}
