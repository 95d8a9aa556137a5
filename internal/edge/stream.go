package edge

import (
	"context"
	"io"
	"sync"
)

// stream is a body being filled from upstream: one writer appends, any number
// of readers follow it as the bytes arrive. Bytes once written never change,
// so readers copy them out without holding the lock.
type stream struct {
	mu   sync.Mutex
	buf  []byte
	done bool
	err  error
	wake chan struct{} // closed and replaced whenever buf grows or the stream ends
	// validator and total describe the object the bytes belong to.
	validator string
}

func newStream(capHint int64, validator string) *stream {
	return &stream{buf: make([]byte, 0, capHint), wake: make(chan struct{}), validator: validator}
}

// Write appends p. It never fails: the writer bounds the size.
func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
	return len(p), nil
}

// finish ends the stream; err nil means the bytes are complete.
func (s *stream) finish(err error) {
	s.mu.Lock()
	if !s.done {
		s.done, s.err = true, err
		close(s.wake)
	}
	s.mu.Unlock()
}

// bytes returns the complete body, or an error if the stream failed. It
// blocks until the stream ends or ctx is done.
func (s *stream) wait(ctx context.Context) ([]byte, error) {
	for {
		s.mu.Lock()
		buf, done, err, wake := s.buf, s.done, s.err, s.wake
		s.mu.Unlock()
		if done {
			return buf, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// copyTo writes bytes [off, end) of the stream to w as they arrive.
func (s *stream) copyTo(ctx context.Context, w io.Writer, off, end int64) (int64, error) {
	var written int64
	for off < end {
		if err := ctx.Err(); err != nil {
			return written, err // the client left: stop feeding the socket's buffer
		}
		s.mu.Lock()
		buf, done, err, wake := s.buf, s.done, s.err, s.wake
		s.mu.Unlock()
		stop := min(int64(len(buf)), end)
		if stop == end && !done {
			// Hold back the last byte until the writer has stored the
			// object: a client that saw the whole body and asks again must
			// find it in the cache, not a fill on its way out.
			stop--
		}
		if stop > off {
			k, werr := w.Write(buf[off:stop])
			written += int64(k)
			off += int64(k)
			if werr != nil {
				return written, werr
			}
			if f, ok := w.(interface{ Flush() }); ok && !done {
				f.Flush()
			}
			continue
		}
		if done {
			if err == nil {
				err = errShortStream
			}
			return written, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return written, ctx.Err()
		}
	}
	return written, nil
}
