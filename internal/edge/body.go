package edge

import (
	"context"
	"errors"
	"io"

	"github.com/kubecdn/kubecdn/internal/store"
)

// preflightSlices is how many slices ahead of a response's first byte the
// edge looks for one missing before it sends the header.
const preflightSlices = 64

// bodyReader writes the body of one stored object to one client (made by
// writeStored, where it stays on the stack). A sliced
// object's slices come from the request's own fill, the store, or a body
// fill (see fill.go) the reader attaches to for as long as it reads from it.
type bodyReader struct {
	s     *Server
	rt    *liveConfig
	ri    reqInfo
	vk    string
	m     *objMeta
	e     *store.Entry // the stored object (unsliced), if the request has it open
	own   *fill        // the fill the request started or joined, if any
	att   *fill        // the body fill the reader is attached to
	valid string
}

// close detaches the reader from the body fill it reads.
func (b *bodyReader) close() {
	if b.att != nil {
		b.att.readers.Add(-1)
		b.att = nil
	}
}

// storedSlice returns slice i from the store if it is there and belongs to
// this version of the object.
func (b *bodyReader) storedSlice(i, hi int64) *store.Entry {
	sk := sliceKey(b.vk, i)
	e, ok := b.s.store.Get(sk)
	if !ok {
		return nil
	}
	if string(e.Meta()) == b.valid && e.Len() >= hi {
		return e
	}
	e.Close()
	b.s.store.Delete(sk)
	return nil
}

// sliceLen is the length of slice i.
func (b *bodyReader) sliceLen(i int64) int64 {
	S := b.m.SliceBytes
	return min(S, b.m.Size-i*S)
}

// preflight makes sure, before the header of bytes [first, last] is sent,
// that the first slice of them missing from the store can be had: its fetch
// has started streaming within wait. Otherwise the client gets a clean error
// instead of a header and an aborted body.
func (b *bodyReader) preflight(ctx context.Context, first, last int64, wait context.Context) error {
	if !b.m.Sliced || b.own != nil {
		return nil // a miss's own fill is already streaming
	}
	S := b.m.SliceBytes
	for i := first / S; i <= last/S && i <= first/S+preflightSlices; i++ {
		if e := b.storedSlice(i, b.sliceLen(i)); e != nil {
			e.Close()
			continue
		}
		f := b.attach(i, last/S, nil)
		err := f.started(wait)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// attach returns the body fill that provides slice i and attaches the
// reader to it, detaching it from the one it read before.
func (b *bodyReader) attach(i, last int64, skip *fill) *fill {
	// Ask for the run of missing slices from i, not for those stored.
	for j := i + 1; j <= last; j++ {
		if j-i > preflightSlices || b.s.store.Contains(sliceKey(b.vk, j)) {
			last = j - 1
			break
		}
	}
	f := b.s.bodyFor(b.rt, b.ri, b.vk, b.m, sliceSpan{i, last}, b.att, skip)
	if f != b.att {
		b.close()
		b.att = f
	}
	return f
}

// write writes bytes [a, z] of the object to w.
func (b *bodyReader) write(ctx context.Context, w io.Writer, a, z int64) (int64, error) {
	if !b.m.Sliced {
		return b.writeWhole(ctx, w, a, z)
	}
	var total int64
	S := b.m.SliceBytes
	for i := a / S; i <= z/S; i++ {
		base := i * S
		lo, hi := max(a, base)-base, min(z, base+S-1)-base+1
		n, err := b.writeSlice(ctx, w, i, z/S, lo, hi)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (b *bodyReader) writeWhole(ctx context.Context, w io.Writer, a, z int64) (int64, error) {
	if b.e != nil {
		return b.e.WriteBodyTo(w, a, z-a+1)
	}
	if b.own != nil {
		if st := b.own.streamAt(ctx, 0); st != nil {
			return st.copyTo(ctx, w, a, z+1)
		}
	}
	m2, e2 := b.s.getMeta(objKey(b.vk))
	if m2 == nil {
		return 0, errGone
	}
	defer e2.Close()
	if m2.Sliced || m2.Size != b.m.Size || validator(m2.Header) != b.valid {
		return 0, errGone
	}
	return e2.WriteBodyTo(w, a, z-a+1)
}

// writeSlice writes bytes [lo, hi) of slice i; last is the last slice the
// reader will want.
func (b *bodyReader) writeSlice(ctx context.Context, w io.Writer, i, last, lo, hi int64) (int64, error) {
	if b.own != nil {
		b.own.reading(i)
		if st := b.own.streamAt(ctx, i); st != nil {
			return st.copyTo(ctx, w, lo, hi)
		}
	}
	var skip *fill
	for range 3 {
		if e := b.storedSlice(i, hi); e != nil {
			defer e.Close()
			return e.WriteBodyTo(w, lo, hi-lo)
		}
		f := b.attach(i, last, skip)
		f.reading(i)
		if st := f.streamAt(ctx, i); st != nil {
			return st.copyTo(ctx, w, lo, hi)
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if _, ended, err := f.progress(); ended && err != nil {
			return 0, err
		}
		// The fill stopped, or let go of the slice (then it is stored,
		// unless the store refused it: the next try asks another fill).
		skip = f
	}
	return 0, errGone
}

// writeUnsized copies a fill whose size was not known at its start, slice by
// slice, from the fill or, for slices it already handed over, the store.
func (s *Server) writeUnsized(ctx context.Context, w io.Writer, f *fill) (int64, error) {
	if f == nil {
		return 0, errGone
	}
	var total int64
	for i := int64(0); ; i++ {
		if st := f.streamAt(ctx, i); st != nil {
			n, err := st.copyTo(ctx, w, 0, 1<<62)
			total += n
			if !errors.Is(err, errShortStream) {
				return total, err
			}
			st.mu.Lock()
			serr := st.err
			st.mu.Unlock()
			if serr != nil {
				return total, serr
			}
			continue
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		next, ended, err := f.progress()
		if ended && i >= next {
			return total, err
		}
		e, ok := s.store.Get(sliceKey(f.vk, i))
		if !ok {
			return total, errGone
		}
		n, err := e.WriteBodyTo(w, 0, e.Len())
		e.Close()
		total += n
		if err != nil {
			return total, err
		}
	}
}
