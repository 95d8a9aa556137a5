// Package store is the blob storage of the kubecdn edge cache.
//
// A blob is a key (any bytes), small opaque metadata (the edge keeps its
// response headers there) and a body of at most a few MiB (large objects are
// stored by the edge as slices, one blob each). Three implementations of
// [Store] live here: [Memory], bounded in bytes and evicted by otter's
// W-TinyLFU; [Disk], bounded in bytes, written asynchronously and atomically,
// verified on read and kept across restarts; and [Tiered], memory in front of
// disk.
package store

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Store is the storage the edge uses. All methods are safe for concurrent use.
type Store interface {
	// Get returns the blob stored under key. The caller must Close the entry.
	Get(key string) (*Entry, bool)
	// Put stores a blob, replacing any blob under key. It takes ownership of
	// meta and body: the caller must not modify them afterwards.
	Put(key string, meta, body []byte) error
	// UpdateMeta replaces the metadata of the blob under key and keeps its
	// body. It returns ErrNotFound if there is no such blob.
	UpdateMeta(key string, meta []byte) error
	// Delete removes the blob under key and reports whether there was one.
	Delete(key string) bool
	// Contains reports whether a blob is stored under key, without reading
	// it and without counting as a use for eviction. A caller told by an
	// OnEvict hook that key left a tier asks it whether another tier, or a
	// newer Put, still holds the key.
	Contains(key string) bool
	// Scan calls fn for every blob until fn returns false. Blobs added or
	// removed during the scan may or may not be seen.
	Scan(fn func(key string, meta []byte) bool) error
	// Stats reports sizes and counters.
	Stats() Stats
	// Close releases the store's resources.
	Close() error
}

// Stats reports the sizes of the tiers and the counters of the disk tier.
type Stats struct {
	// MemoryBytes is the weight of the memory tier: key, meta, body and an
	// estimate of the per-item overhead.
	MemoryBytes int64
	MemoryItems int64
	// DiskBytes is the total size of the indexed files of the disk tier.
	DiskBytes int64
	DiskItems int64
	// DiskWriteDrops counts Puts the disk tier dropped because its write
	// queue was full.
	DiskWriteDrops int64
	// CorruptFiles counts files found damaged (bad header, wrong size, CRC
	// mismatch) and deleted.
	CorruptFiles int64
	// DiskWriteErrors counts writes that failed with an I/O error.
	DiskWriteErrors int64
}

// Errors returned by the stores.
var (
	ErrNotFound = errors.New("store: not found")
	ErrClosed   = errors.New("store: closed")
)

// Limits on the key and the metadata of a blob. Put and UpdateMeta refuse
// larger ones with an error.
const (
	MaxKeyLen  = 64 << 10
	MaxMetaLen = 1 << 20
)

// Tier names returned by Entry.Tier.
const (
	TierMemory = "memory"
	TierDisk   = "disk"
)

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Disk)(nil)
	_ Store = (*Tiered)(nil)
)

func checkSizes(key string, meta []byte) error {
	if len(key) > MaxKeyLen {
		return fmt.Errorf("store: key of %d bytes exceeds %d", len(key), MaxKeyLen)
	}
	if len(meta) > MaxMetaLen {
		return fmt.Errorf("store: meta of %d bytes exceeds %d", len(meta), MaxMetaLen)
	}
	return nil
}

// Entry is one blob read from a tier. It is backed either by memory or by a
// private open file; the caller must Close it. ReadAt may be called
// concurrently; WriteBodyTo may not (it moves the file offset).
type Entry struct {
	meta []byte
	body []byte   // memory-backed entries
	f    *os.File // file-backed entries; nil once closed
	file bool     // backed by a file
	off  int64    // offset of the body in f
	n    int64    // body length
	tier string
}

func newMemEntry(tier string, meta, body []byte) *Entry {
	return &Entry{meta: meta, body: body, n: int64(len(body)), tier: tier}
}

// Meta returns the metadata. The caller must not modify it.
func (e *Entry) Meta() []byte { return e.meta }

// Len returns the length of the body.
func (e *Entry) Len() int64 { return e.n }

// Tier returns the tier the entry came from: "memory" or "disk".
func (e *Entry) Tier() string { return e.tier }

// Body returns the body when the entry is backed by memory (memory tier, or a
// disk write still queued) and nil when it is backed by a file; then use
// ReadAt or WriteBodyTo. The caller must not modify it.
func (e *Entry) Body() []byte {
	if e.file {
		return nil
	}
	if e.body == nil {
		return []byte{}
	}
	return e.body
}

// ReadAt reads body bytes at off, with the semantics of io.ReaderAt.
func (e *Entry) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: negative offset %d", off)
	}
	if e.file && e.f == nil {
		return 0, os.ErrClosed
	}
	if off >= e.n {
		return 0, io.EOF
	}
	short := false
	if rem := e.n - off; int64(len(p)) > rem {
		p = p[:rem]
		short = true
	}
	var n int
	var err error
	if e.file {
		n, err = e.f.ReadAt(p, e.off+off)
		if err == io.EOF && n == len(p) {
			err = nil
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
	} else {
		n = copy(p, e.body[off:])
	}
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// WriteBodyTo writes body bytes [off, off+n) to w. A file-backed entry
// copies an io.LimitedReader over its *os.File, so a destination with
// ReadFrom (net/http's response writer, *net.TCPConn) uses sendfile.
func (e *Entry) WriteBodyTo(w io.Writer, off, n int64) (int64, error) {
	if off < 0 || n < 0 || off > e.n || n > e.n-off {
		return 0, fmt.Errorf("store: range [%d, %d+%d) outside body of %d bytes", off, off, n, e.n)
	}
	if e.file && e.f == nil {
		return 0, os.ErrClosed
	}
	if n == 0 {
		return 0, nil
	}
	if !e.file {
		m, err := w.Write(e.body[off : off+n])
		return int64(m), err
	}
	if _, err := e.f.Seek(e.off+off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("store: seek: %w", err)
	}
	written, err := io.Copy(w, &io.LimitedReader{R: e.f, N: n})
	if err == nil && written < n {
		err = io.ErrUnexpectedEOF
	}
	return written, err
}

// Close releases the entry's file, if any. It may be called more than once.
func (e *Entry) Close() error {
	if e.f == nil {
		return nil
	}
	err := e.f.Close()
	e.f = nil
	return err
}
