//go:build linux

package wire

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// A minimal io_uring binding: the rings, the few operations the edge's
// event loop submits (accept, recv with provided buffers, send, read,
// timeout) and a provided-buffer ring. The kernel ABI is stable and small,
// and the edge needs only this much of it, so it carries these 200 lines
// rather than a liburing port as a dependency (see the edge's
// uringserve_linux.go for why io_uring at all).

const (
	sysIOUringSetup    = 425
	sysIOUringEnter    = 426
	sysIOUringRegister = 427

	uringSetupCoopTaskrun  = 1 << 8
	uringSetupSingleIssuer = 1 << 12
	uringSetupDeferTaskrun = 1 << 13

	uringFeatSingleMmap = 1 << 0
	uringFeatNoDrop     = 1 << 1

	uringEnterGetEvents = 1 << 0

	uringRegisterPbufRing = 22

	uringOffSqRing = 0
	uringOffSqes   = 0x10000000
)

// The operations a Ring submits (SQE.Opcode), and their flags.
const (
	OpRead    = 22
	OpTimeout = 11
	OpAccept  = 13
	OpSend    = 26
	OpRecv    = 27

	SQEBufferSelect = 1 << 5 // SQE.Flags: receive into a buffer of SQE.BufGroup
	AcceptMultishot = 1 << 0 // SQE.IOPrio of OpAccept: one SQE, a CQE per connection
	CQEBuffer       = 1 << 0 // CQE.Flags: the upper 16 bits name the buffer used
	CQEMore         = 1 << 1 // CQE.Flags: a multishot SQE goes on
)

type uringSqOff struct {
	head, tail, mask, entries, flags, dropped, array, resv1 uint32
	userAddr                                                uint64
}

type uringCqOff struct {
	head, tail, mask, entries, overflow, cqes, flags, resv1 uint32
	userAddr                                                uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sq                                                                     uringSqOff
	cq                                                                     uringCqOff
}

// SQE is struct io_uring_sqe (64 bytes).
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufGroup    uint16
	Personality uint16
	FileIndex   int32
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe (16 bytes).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Ring is one io_uring instance, used by one goroutine only.
type Ring struct {
	fd      int
	ringMem []byte
	sqeMem  []byte

	sqHead, sqTail, sqMask *uint32
	sqArray                []uint32
	sqes                   []SQE
	cqHead, cqTail, cqMask *uint32
	cqes                   []CQE

	tail    uint32 // our copy of the SQ tail
	pending uint32 // SQEs not yet submitted
}

var (
	// ErrNoIOUring (wrapped) says the kernel offers no io_uring to use.
	ErrNoIOUring = errors.New("io_uring unavailable")
	// ErrRingFull says the submission queue stayed full after a submit.
	ErrRingFull = errors.New("io_uring submission queue full")
)

// NewRing sets up a ring of entries SQEs. It asks for the kernel's
// single-issuer, deferred task-work mode (Linux 6.1) and falls back to the
// plain one; the caller must then call enter from one OS thread only.
func NewRing(entries uint32) (*Ring, error) {
	var p uringParams
	fd := -1
	var errno syscall.Errno
	for _, flags := range []uint32{uringSetupSingleIssuer | uringSetupDeferTaskrun | uringSetupCoopTaskrun, 0} {
		p = uringParams{flags: flags}
		r1, _, e := syscall.RawSyscall(sysIOUringSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
		if e == 0 {
			fd = int(r1)
			break
		}
		errno = e
		if e != syscall.EINVAL {
			break
		}
	}
	if fd < 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrNoIOUring, errno)
	}
	syscall.CloseOnExec(fd)
	if p.features&uringFeatSingleMmap == 0 || p.features&uringFeatNoDrop == 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("%w: kernel too old (features %#x)", ErrNoIOUring, p.features)
	}
	size := max(p.sq.array+p.sqEntries*4, p.cq.cqes+p.cqEntries*uint32(unsafe.Sizeof(CQE{})))
	ringMem, err := syscall.Mmap(fd, uringOffSqRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("mmap", err)
	}
	sqeMem, err := syscall.Mmap(fd, uringOffSqes, int(p.sqEntries)*int(unsafe.Sizeof(SQE{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		syscall.Munmap(ringMem)
		syscall.Close(fd)
		return nil, os.NewSyscallError("mmap", err)
	}
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&ringMem[off])) }
	r := &Ring{fd: fd, ringMem: ringMem, sqeMem: sqeMem}
	r.sqHead, r.sqTail, r.sqMask = u32(p.sq.head), u32(p.sq.tail), u32(p.sq.mask)
	r.sqArray = unsafe.Slice(u32(p.sq.array), p.sqEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(p.cq.head), u32(p.cq.tail), u32(p.cq.mask)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&ringMem[p.cq.cqes])), p.cqEntries)
	r.tail = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// SQE returns a zeroed SQE to fill; it submits what is queued first when the
// submission queue is full.
func (r *Ring) SQE() (*SQE, error) {
	if r.tail-atomic.LoadUint32(r.sqHead) >= uint32(len(r.sqes)) {
		if err := r.Enter(0); err != nil {
			return nil, err
		}
		if r.tail-atomic.LoadUint32(r.sqHead) >= uint32(len(r.sqes)) {
			return nil, ErrRingFull
		}
	}
	i := r.tail & *r.sqMask
	e := &r.sqes[i]
	*e = SQE{}
	r.sqArray[i] = i
	r.tail++
	r.pending++
	return e, nil
}

// Enter submits the queued SQEs and, when wait > 0, waits until that many
// completions are ready.
func (r *Ring) Enter(wait uint32) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	flags := uintptr(0)
	if wait > 0 {
		flags = uringEnterGetEvents
	}
	for {
		n, _, e := syscall.Syscall6(sysIOUringEnter, uintptr(r.fd), uintptr(r.pending), uintptr(wait), flags, 0, 0)
		switch e {
		case 0:
			r.pending -= min(uint32(n), r.pending)
			return nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN, syscall.EBUSY:
			// Completions are backed up: the caller reaps them, then
			// submits again.
			return nil
		default:
			return os.NewSyscallError("io_uring_enter", e)
		}
	}
}

// Reap calls fn for each completion ready, in order.
func (r *Ring) Reap(fn func(c CQE)) {
	head := atomic.LoadUint32(r.cqHead)
	for head != atomic.LoadUint32(r.cqTail) {
		c := r.cqes[head&*r.cqMask]
		head++
		atomic.StoreUint32(r.cqHead, head)
		fn(c)
	}
}

// Close unmaps the rings and closes the instance.
func (r *Ring) Close() {
	syscall.Munmap(r.sqeMem)
	syscall.Munmap(r.ringMem)
	syscall.Close(r.fd)
}

// RingBufs is a provided-buffer ring: n buffers of size bytes the kernel
// picks from when a receive completes, so a connection waiting for data
// holds no buffer of its own.
type RingBufs struct {
	group uint16
	size  int
	mem   []byte // n*size bytes of buffers
	ring  []byte // n io_uring_buf entries (page-aligned, as the kernel wants)
	mask  uint16
	tail  uint16
}

// RegisterBufs registers a provided-buffer ring of n buffers (a power of
// two) of size bytes each as buffer group group.
func (r *Ring) RegisterBufs(group uint16, n, size int) (*RingBufs, error) {
	if n&(n-1) != 0 || n > 1<<15 {
		return nil, fmt.Errorf("buffer count %d: want a power of two up to 32768", n)
	}
	ring, err := syscall.Mmap(-1, 0, n*16, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	reg := struct {
		ringAddr    uint64
		ringEntries uint32
		bgid        uint16
		flags       uint16
		resv        [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&ring[0]))), ringEntries: uint32(n), bgid: group}
	if _, _, e := syscall.Syscall6(sysIOUringRegister, uintptr(r.fd), uringRegisterPbufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); e != 0 {
		syscall.Munmap(ring)
		return nil, fmt.Errorf("%w: register buffer ring: %v", ErrNoIOUring, e)
	}
	b := &RingBufs{group: group, size: size, mem: make([]byte, n*size), ring: ring, mask: uint16(n - 1)}
	for i := 0; i < n; i++ {
		b.Put(uint16(i))
	}
	return b, nil
}

// Group is the buffer group a receive names (SQE.BufGroup) to use them.
func (b *RingBufs) Group() uint16 { return b.group }

// Size is the size of each buffer.
func (b *RingBufs) Size() int { return b.size }

// Buf returns buffer id's bytes.
func (b *RingBufs) Buf(id uint16) []byte {
	return b.mem[int(id)*b.size : (int(id)+1)*b.size]
}

// Put gives buffer id back to the kernel.
func (b *RingBufs) Put(id uint16) {
	e := b.ring[int(b.tail&b.mask)*16:]
	*(*uint64)(unsafe.Pointer(&e[0])) = uint64(uintptr(unsafe.Pointer(&b.mem[int(id)*b.size])))
	*(*uint32)(unsafe.Pointer(&e[8])) = uint32(b.size)
	*(*uint16)(unsafe.Pointer(&e[12])) = id
	b.tail++
	// The ring's tail is the reserved field of its first entry, after that
	// entry's bid: store both as one word, atomically, after the entry.
	bid0 := *(*uint16)(unsafe.Pointer(&b.ring[12]))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.ring[12])), uint32(bid0)|uint32(b.tail)<<16)
}

// Close unmaps the buffer ring; call it after the Ring is closed.
func (b *RingBufs) Close() { syscall.Munmap(b.ring) }
