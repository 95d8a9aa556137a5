//go:build linux

package wire

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// testRing is a ring on the calling goroutine's locked thread (the ring's
// only submitter), or a skip when the kernel has none.
func testRing(t *testing.T) *Ring {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := NewRing(8)
	if errors.Is(err, ErrNoIOUring) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// waitOne submits what is queued, waits for one completion and returns it.
func waitOne(t *testing.T, r *Ring) CQE {
	t.Helper()
	if err := r.Enter(1); err != nil {
		t.Fatal(err)
	}
	var got []CQE
	r.Reap(func(c CQE) { got = append(got, c) })
	if len(got) != 1 {
		t.Fatalf("%d completions, want 1: %+v", len(got), got)
	}
	return got[0]
}

func TestRingTimeout(t *testing.T) {
	r := testRing(t)
	ts := [2]int64{0, 1e6} // 1 ms
	e, err := r.SQE()
	if err != nil {
		t.Fatal(err)
	}
	e.Opcode, e.Len, e.UserData = OpTimeout, 1, 7
	e.Addr = uint64(uintptr(unsafe.Pointer(&ts[0])))
	c := waitOne(t, r)
	runtime.KeepAlive(&ts)
	if c.UserData != 7 || c.Res != -int32(syscall.ETIME) {
		t.Fatalf("completion %+v, want user data 7 and -ETIME", c)
	}
}

// TestRingProvidedBuffers receives more messages than the ring has
// buffers: each lands in a buffer of the group, and a buffer put back is
// picked again.
func TestRingProvidedBuffers(t *testing.T) {
	r := testRing(t)
	bufs, err := r.RegisterBufs(3, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bufs.Close)
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	for i := range 10 {
		msg := fmt.Sprintf("message %d", i)
		if _, err := syscall.Write(fds[1], []byte(msg)); err != nil {
			t.Fatal(err)
		}
		e, err := r.SQE()
		if err != nil {
			t.Fatal(err)
		}
		e.Opcode, e.Fd, e.Flags = OpRecv, int32(fds[0]), SQEBufferSelect
		e.BufGroup, e.Len, e.UserData = bufs.Group(), uint32(bufs.Size()), uint64(i)
		c := waitOne(t, r)
		if c.Res != int32(len(msg)) || c.Flags&CQEBuffer == 0 || c.UserData != uint64(i) {
			t.Fatalf("receive %d: completion %+v", i, c)
		}
		id := uint16(c.Flags >> 16)
		if got := string(bufs.Buf(id)[:c.Res]); got != msg {
			t.Fatalf("receive %d: buffer %d holds %q", i, id, got)
		}
		bufs.Put(id)
	}
}
