package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/maypok86/otter/v2"
)

// DiskOptions configures OpenDisk.
type DiskOptions struct {
	// Dir is the cache directory; it is created if missing. Only one process
	// may use it at a time.
	Dir string
	// MaxBytes bounds the total size of the files. Required.
	MaxBytes int64
	// Writers is the number of writer goroutines. If zero, 2.
	Writers int
	// QueueBytes bounds the bytes of blobs waiting to be written; a Put
	// beyond it is dropped. If zero, 64 MiB.
	QueueBytes int64
	// Fsync makes each write fsync the file and its directory before the
	// blob is served from disk. Without it a crash of the process loses
	// nothing, a crash of the machine may lose recent writes (they are then
	// detected and deleted, never served).
	Fsync bool
	// Logger receives warnings (corrupt files, I/O errors). If nil, they are
	// discarded.
	Logger *slog.Logger
	// OnEvict, if set, is called with the key of each blob that leaves the
	// tier other than by being replaced: evicted by MaxBytes, deleted, found
	// corrupt, or a queued write dropped or failed. Like
	// MemoryOptions.OnEvict, it may run after a newer Put of the key: ask
	// Contains.
	OnEvict func(key string)
}

const (
	defaultWriters    = 2
	defaultQueueBytes = 64 << 20
	maxQueueJobs      = 1 << 14
	numStripes        = 64
	// headReadSize is read at once to get header, key and meta in one pread.
	headReadSize = 2048
)

// errCorrupt marks a file whose content is wrong (as opposed to an I/O error).
var errCorrupt = errors.New("corrupt file")

// diskValue is the index entry of one file.
type diskValue struct {
	path string
	gen  uint64
	size int64
	// verified is set once this process has checked the body CRC; later
	// reads skip the body.
	verified atomic.Bool
	// head is the file's header and meta once verified: the file never
	// changes (a new blob is a new file), so later reads skip them too.
	head atomic.Pointer[diskHead]
}

type diskHead struct {
	hd   header
	meta []byte
}

// job is a blob waiting to be written.
type job struct {
	key  string
	body []byte
	gen  uint64
	cost int64
	// meta and metaVer are guarded by the stripe lock: UpdateMeta of a
	// queued blob changes them.
	meta    []byte
	metaVer uint64
}

// stripe serialises the changes of the keys hashed to it, so that a queued
// write, a Delete and an UpdateMeta of one key apply in order.
type stripe struct {
	mu      sync.RWMutex
	pending map[string]*job
}

// tracker counts work in flight (queued writes, otter's deletion tasks) so
// Flush can wait for it.
type tracker struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int
}

func (t *tracker) add(d int) {
	t.mu.Lock()
	t.n += d
	if t.n == 0 {
		t.cond.Broadcast()
	}
	t.mu.Unlock()
}

func (t *tracker) wait() {
	t.mu.Lock()
	for t.n > 0 {
		t.cond.Wait()
	}
	t.mu.Unlock()
}

// Disk is the disk tier. Each blob is one file, written to a temporary file
// and renamed into place by a small pool of writers, verified with CRC-32C
// before it is first served, and indexed in memory by an otter cache whose
// weight is the file size: an eviction deletes the file.
type Disk struct {
	dir   string
	opt   DiskOptions
	log   *slog.Logger
	tab   *crc32.Table
	index *otter.Cache[string, *diskValue]
	seed  maphash.Seed
	gen   atomic.Uint64
	lock  *os.File

	stripes [numStripes]stripe

	jobs    chan *job
	queued  atomic.Int64
	closeMu sync.RWMutex
	closed  bool
	writers sync.WaitGroup
	work    tracker
	once    sync.Once

	drops, corrupt, writeErrs, tempsRemoved atomic.Int64

	// testHookWritten, if set, runs after a blob's temporary file is written
	// and before it is renamed; the crash test uses it to kill mid-write.
	testHookWritten func(tmp string)
}

// OpenDisk opens (creating if needed) the cache directory, rebuilds the index
// from the files there, deletes leftover temporary files and files whose
// header, size, key or meta checksum is wrong, and starts the writers.
func OpenDisk(opt DiskOptions) (*Disk, error) {
	return openDisk(opt, nil)
}

// openDisk is OpenDisk with a test hook; see Disk.testHookWritten.
func openDisk(opt DiskOptions, hookWritten func(tmp string)) (*Disk, error) {
	if opt.Dir == "" {
		return nil, errors.New("store: disk: Dir is empty")
	}
	if opt.MaxBytes <= 0 {
		return nil, fmt.Errorf("store: disk %q: MaxBytes must be positive, got %d", opt.Dir, opt.MaxBytes)
	}
	if opt.Writers <= 0 {
		opt.Writers = defaultWriters
	}
	if opt.QueueBytes <= 0 {
		opt.QueueBytes = defaultQueueBytes
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("store: disk cache dir %q: %w", opt.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: creating disk cache dir %q: %w", dir, err)
	}
	probe, err := os.CreateTemp(dir, tmpPrefix+"probe-*")
	if err != nil {
		return nil, fmt.Errorf("store: disk cache dir %q is not writable: %w", dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}

	d := &Disk{
		dir:  dir,
		opt:  opt,
		log:  opt.Logger,
		tab:  crc32.MakeTable(crc32.Castagnoli),
		seed: maphash.MakeSeed(),
		lock: lock,
		jobs: make(chan *job, maxQueueJobs),

		testHookWritten: hookWritten,
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.work.cond.L = &d.work.mu
	for i := range d.stripes {
		d.stripes[i].pending = make(map[string]*job)
	}
	d.index, err = otter.New(&otter.Options[string, *diskValue]{
		MaximumWeight: uint64(opt.MaxBytes),
		Weigher: func(_ string, v *diskValue) uint32 {
			return uint32(min(v.size, math.MaxUint32))
		},
		// Every version has its own file name, so deleting the file of the
		// value that left the index (evicted, replaced, invalidated) can
		// never remove a newer version.
		OnDeletion: func(e otter.DeletionEvent[string, *diskValue]) {
			d.removeFile(e.Value.path)
			if e.Cause != otter.CauseReplacement {
				d.evicted(e.Key)
			}
		},
		Executor: d.execute,
	})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("store: disk index: %w", err)
	}
	if err := d.load(); err != nil {
		d.index.StopAllGoroutines()
		lock.Close()
		return nil, err
	}
	d.writers.Add(opt.Writers)
	for range opt.Writers {
		go d.writer()
	}
	return d, nil
}

// execute runs otter's tasks (deletion events, maintenance) on goroutines
// that Flush and Close wait for.
func (d *Disk) execute(fn func()) {
	d.work.add(1)
	go func() {
		defer d.work.add(-1)
		fn()
	}()
}

// evicted tells OnEvict that key left the tier.
func (d *Disk) evicted(key string) {
	if d.opt.OnEvict != nil {
		d.opt.OnEvict(key)
	}
}

func (d *Disk) stripe(key string) *stripe {
	return &d.stripes[maphash.String(d.seed, key)%numStripes]
}

func (d *Disk) removeFile(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("store: removing cache file", "path", path, "err", err)
	}
}

// load rebuilds the index from the directory tree. It only touches names it
// could have created: <2 hex>/<2 hex>/<hash>-<gen> and tmp-* files.
func (d *Disk) load() error {
	top, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("store: reading disk cache dir %q: %w", d.dir, err)
	}
	var leaves []string
	for _, t := range top {
		name := t.Name()
		if t.Type().IsRegular() && isTempName(name) {
			d.removeTemp(filepath.Join(d.dir, name))
			continue
		}
		if !t.IsDir() || len(name) != 2 || !isLowerHex(name) {
			continue
		}
		subs, err := os.ReadDir(filepath.Join(d.dir, name))
		if err != nil {
			return fmt.Errorf("store: reading disk cache dir %q: %w", d.dir, err)
		}
		for _, s := range subs {
			if s.IsDir() && len(s.Name()) == 2 && isLowerHex(s.Name()) {
				leaves = append(leaves, filepath.Join(name, s.Name()))
			}
		}
	}

	var (
		wg     sync.WaitGroup
		maxGen atomic.Uint64
		next   = make(chan string)
		errMu  sync.Mutex
		first  error
	)
	workers := min(4, runtime.GOMAXPROCS(0)) + 1
	for range workers {
		wg.Go(func() {
			for leaf := range next {
				g, err := d.loadLeaf(leaf)
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
				}
				for {
					cur := maxGen.Load()
					if g <= cur || maxGen.CompareAndSwap(cur, g) {
						break
					}
				}
			}
		})
	}
	for _, l := range leaves {
		next <- l
	}
	close(next)
	wg.Wait()
	d.gen.Store(maxGen.Load())
	return first
}

func (d *Disk) removeTemp(path string) {
	d.tempsRemoved.Add(1)
	d.removeFile(path)
}

// loadLeaf indexes the files of one leaf directory and returns the highest
// generation seen.
func (d *Disk) loadLeaf(leaf string) (uint64, error) {
	dir := filepath.Join(d.dir, leaf)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("store: reading disk cache dir %q: %w", dir, err)
	}
	prefix := leaf[0:2] + leaf[3:5]
	var maxGen uint64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		path := filepath.Join(dir, name)
		if isTempName(name) {
			d.removeTemp(path)
			continue
		}
		h, gen, ok := parseFileName(name)
		if !ok {
			continue // not ours: leave it alone
		}
		maxGen = max(maxGen, gen)
		key, size, err := d.checkFile(path, h, gen, prefix)
		if err != nil {
			if errors.Is(err, errCorrupt) {
				d.corrupt.Add(1)
				d.log.Warn("store: deleting corrupt cache file", "path", path, "err", err)
				d.removeFile(path)
				continue
			}
			// Unreadable (not damaged): leave it, and start without it.
			d.log.Warn("store: skipping unreadable cache file", "path", path, "err", err)
			continue
		}
		v := &diskValue{path: path, gen: gen, size: size}
		kept := true
		d.index.Compute(key, func(old *diskValue, found bool) (*diskValue, otter.ComputeOp) {
			if found && old.gen > gen {
				kept = false
				return old, otter.CancelOp
			}
			return v, otter.WriteOp // the replaced older version's file is deleted by OnDeletion
		})
		if !kept {
			d.removeFile(path) // superseded by a newer version of the same key
		}
	}
	return maxGen, nil
}

// checkFile validates a file found at start: header, size, name, key and
// meta checksum. The body is verified on first read.
func (d *Disk) checkFile(path, h string, gen uint64, prefix string) (string, int64, error) {
	if h[:4] != prefix {
		return "", 0, fmt.Errorf("%w: in the wrong directory", errCorrupt)
	}
	f, err := openRead(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	hd, key, _, err := d.readHead(f)
	if err != nil {
		return "", 0, err
	}
	if hd.gen != gen {
		return "", 0, fmt.Errorf("%w: generation %x, name says %x", errCorrupt, hd.gen, gen)
	}
	if keyHash(key) != h {
		return "", 0, fmt.Errorf("%w: key does not match the file name", errCorrupt)
	}
	return key, hd.fileSize(), nil
}

// openRead opens a cache file for reading. Unlike os.Open it does not try
// the file with the network poller (which refuses regular files, after
// five system calls, on every hit).
func openRead(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// readHead reads and checks the header, the size, the key and the meta of an
// open file. Problems with the content wrap errCorrupt.
func (d *Disk) readHead(f *os.File) (header, string, []byte, error) {
	buf := make([]byte, headReadSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return header{}, "", nil, err
	}
	if n < headerSize {
		return header{}, "", nil, fmt.Errorf("%w: %d bytes, shorter than a header", errCorrupt, n)
	}
	hd, err := decodeHeader(buf[:headerSize], d.tab)
	if err != nil {
		return header{}, "", nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return header{}, "", nil, err
	}
	if fi.Size() != hd.fileSize() {
		return header{}, "", nil, fmt.Errorf("%w: size %d, header says %d", errCorrupt, fi.Size(), hd.fileSize())
	}
	end := int(hd.dataOff())
	if end > n {
		more := make([]byte, end)
		copy(more, buf[:n])
		if _, err := f.ReadAt(more[n:], int64(n)); err != nil {
			return header{}, "", nil, err
		}
		buf = more
	}
	km := buf[headerSize:end:end]
	if crc32.Checksum(km, d.tab) != hd.crcKeyMeta {
		return header{}, "", nil, fmt.Errorf("%w: key and meta checksum", errCorrupt)
	}
	return hd, string(km[:hd.keyLen]), km[hd.keyLen:], nil
}

// verifyBody checks the body checksum of an open file.
func (d *Disk) verifyBody(f *os.File, hd header) error {
	c := crc32.New(d.tab)
	n, err := io.CopyBuffer(c, io.NewSectionReader(f, hd.dataOff(), int64(hd.bodyLen)), make([]byte, 64<<10))
	if err != nil {
		return err
	}
	if n != int64(hd.bodyLen) {
		return fmt.Errorf("%w: body of %d bytes, header says %d", errCorrupt, n, hd.bodyLen)
	}
	if c.Sum32() != hd.crcBody {
		return fmt.Errorf("%w: body checksum", errCorrupt)
	}
	return nil
}

// unindex removes key from the index if it still maps to v.
func (d *Disk) unindex(key string, v *diskValue) bool {
	removed := false
	d.index.ComputeIfPresent(key, func(old *diskValue) (*diskValue, otter.ComputeOp) {
		if old != v {
			return old, otter.CancelOp
		}
		removed = true
		return nil, otter.InvalidateOp
	})
	return removed
}

// dropCorrupt deletes a damaged file and forgets it.
func (d *Disk) dropCorrupt(key string, v *diskValue, cause error) {
	if d.unindex(key, v) {
		d.corrupt.Add(1)
		d.log.Warn("store: deleting corrupt cache file", "path", v.path, "err", cause)
	}
	d.removeFile(v.path)
}

// open opens the file of v and checks it; the body is verified the first
// time. A damaged file is deleted and reported as absent.
func (d *Disk) open(key string, v *diskValue, verify bool) (*os.File, header, []byte, bool) {
	f, err := openRead(v.path)
	if err == nil && verify {
		// A verified file is trusted while its size holds: one fstat
		// still catches a file cut short behind the store's back.
		if h := v.head.Load(); h != nil {
			if fi, serr := f.Stat(); serr == nil && fi.Size() == h.hd.fileSize() {
				return f, h.hd, h.meta, true
			}
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			d.unindex(key, v) // evicted meanwhile, or removed behind our back
		} else {
			d.log.Warn("store: opening cache file", "path", v.path, "err", err)
		}
		return nil, header{}, nil, false
	}
	hd, fkey, meta, err := d.readHead(f)
	if err == nil && fkey != key {
		err = fmt.Errorf("%w: holds another key", errCorrupt)
	}
	if err == nil && verify && !v.verified.Load() {
		err = d.verifyBody(f, hd)
		if err == nil {
			v.verified.Store(true)
		}
	}
	if err == nil && verify {
		v.head.Store(&diskHead{hd: hd, meta: meta})
	}
	if err != nil {
		f.Close()
		if errors.Is(err, errCorrupt) {
			d.dropCorrupt(key, v, err)
		} else {
			d.log.Warn("store: reading cache file", "path", v.path, "err", err)
		}
		return nil, header{}, nil, false
	}
	return f, hd, meta, true
}

// Get implements Store. A blob still waiting to be written is returned from
// memory; otherwise the entry holds a private open file of the blob.
func (d *Disk) Get(key string) (*Entry, bool) {
	st := d.stripe(key)
	st.mu.RLock()
	if j, ok := st.pending[key]; ok {
		e := newMemEntry(TierDisk, j.meta, j.body)
		st.mu.RUnlock()
		return e, true
	}
	st.mu.RUnlock()
	v, ok := d.index.GetIfPresent(key)
	if !ok {
		return nil, false
	}
	f, hd, meta, ok := d.open(key, v, true)
	if !ok {
		return nil, false
	}
	return &Entry{meta: meta, f: f, file: true, off: hd.dataOff(), n: int64(hd.bodyLen), tier: TierDisk}, true
}

// Put implements Store. It queues the blob and returns at once; when the
// queue is full the blob is dropped (counted in Stats.DiskWriteDrops) and
// Put still returns nil, as it does for a blob larger than MaxBytes. In both
// cases any older blob under key is removed.
func (d *Disk) Put(key string, meta, body []byte) error {
	if err := checkSizes(key, meta); err != nil {
		return err
	}
	cost := int64(headerSize) + int64(len(key)) + int64(len(meta)) + int64(len(body))
	d.closeMu.RLock()
	defer d.closeMu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	if cost > d.opt.MaxBytes {
		d.Delete(key)
		return nil
	}
	if !d.reserve(cost) {
		d.drop(key, nil)
		return nil
	}
	j := &job{key: key, meta: meta, body: body, gen: d.gen.Add(1), cost: cost}
	st := d.stripe(key)
	st.mu.Lock()
	st.pending[key] = j
	st.mu.Unlock()
	d.work.add(1)
	select {
	case d.jobs <- j:
	default:
		d.queued.Add(-cost)
		d.work.add(-1)
		d.drop(key, j)
	}
	return nil
}

func (d *Disk) reserve(cost int64) bool {
	for {
		cur := d.queued.Load()
		if cur+cost > d.opt.QueueBytes {
			return false
		}
		if d.queued.CompareAndSwap(cur, cur+cost) {
			return true
		}
	}
}

// drop forgets a Put that will not be written, and the older blob under key
// so it does not outlive the newer one.
func (d *Disk) drop(key string, j *job) {
	d.drops.Add(1)
	st := d.stripe(key)
	st.mu.Lock()
	dropped := false
	if cur, ok := st.pending[key]; ok && (j == nil || cur == j) {
		delete(st.pending, key)
		dropped = true
	}
	d.index.Invalidate(key)
	st.mu.Unlock()
	if dropped {
		d.evicted(key) // a queued blob never indexed: otter does not know it left
	}
}

func (d *Disk) writer() {
	defer d.writers.Done()
	for j := range d.jobs {
		d.write(j)
		d.queued.Add(-j.cost)
		d.work.add(-1)
	}
}

// write writes one queued blob to a temporary file and, if it is still the
// current version of its key, renames it into place and indexes it.
func (d *Disk) write(j *job) {
	st := d.stripe(j.key)
	h := keyHash(j.key)
	dir := leafDir(d.dir, h)
	final := filepath.Join(dir, fileName(h, j.gen))
	for {
		st.mu.RLock()
		current := st.pending[j.key] == j
		meta, ver := j.meta, j.metaVer
		st.mu.RUnlock()
		if !current {
			return // superseded or deleted while queued
		}
		hd := header{
			keyLen:     uint32(len(j.key)),
			metaLen:    uint32(len(meta)),
			bodyLen:    uint64(len(j.body)),
			gen:        j.gen,
			crcKeyMeta: keyMetaCRC(j.key, meta, d.tab),
			crcBody:    crc32.Checksum(j.body, d.tab),
		}
		tmp, err := d.writeTemp(dir, hd, j.key, meta, func(f *os.File) error {
			_, err := f.Write(j.body)
			return err
		})
		if err != nil {
			d.writeFailed(j, err)
			return
		}
		if d.testHookWritten != nil {
			d.testHookWritten(tmp)
		}
		st.mu.Lock()
		if st.pending[j.key] != j {
			st.mu.Unlock()
			d.removeFile(tmp)
			return
		}
		if j.metaVer != ver {
			st.mu.Unlock() // UpdateMeta while we wrote: write again
			d.removeFile(tmp)
			continue
		}
		if err := os.Rename(tmp, final); err != nil {
			st.mu.Unlock()
			d.removeFile(tmp)
			d.writeFailed(j, err)
			return
		}
		delete(st.pending, j.key)
		// Not marked verified: like any file, its body is checked the
		// first time it is read.
		d.index.Set(j.key, &diskValue{path: final, gen: j.gen, size: hd.fileSize()})
		st.mu.Unlock()
		if d.opt.Fsync {
			d.syncDir(dir)
		}
		return
	}
}

func (d *Disk) writeFailed(j *job, err error) {
	d.writeErrs.Add(1)
	d.log.Warn("store: writing cache file", "err", err)
	st := d.stripe(j.key)
	st.mu.Lock()
	dropped := st.pending[j.key] == j
	if dropped {
		delete(st.pending, j.key)
		d.index.Invalidate(j.key) // do not let the older version outlive this one
	}
	st.mu.Unlock()
	if dropped {
		d.evicted(j.key)
	}
}

// writeTemp writes header, key, meta and, through body, the body to a new
// temporary file in dir and returns its path.
func (d *Disk) writeTemp(dir string, hd header, key string, meta []byte, body func(*os.File) error) (string, error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	if err != nil {
		return "", err
	}
	head := make([]byte, hd.dataOff())
	hd.encode(head, d.tab)
	copy(head[headerSize:], key)
	copy(head[headerSize+len(key):], meta)
	_, err = f.Write(head)
	if err == nil {
		err = body(f)
	}
	if err == nil && d.opt.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.removeFile(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func (d *Disk) syncDir(dir string) {
	f, err := os.Open(dir)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		d.log.Warn("store: syncing cache dir", "dir", dir, "err", err)
	}
}

// UpdateMeta implements Store. A queued blob gets the new meta before it is
// written; a blob on disk is rewritten to a new file (its body copied with
// copy_file_range where the kernel allows) that replaces the old one
// atomically.
func (d *Disk) UpdateMeta(key string, meta []byte) error {
	if err := checkSizes(key, meta); err != nil {
		return err
	}
	st := d.stripe(key)
	st.mu.Lock()
	if j, ok := st.pending[key]; ok {
		j.meta = meta
		j.metaVer++
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()
	e, ok := d.index.GetEntryQuietly(key)
	if !ok {
		return ErrNotFound
	}
	return d.rewrite(key, e.Value, meta)
}

// rewrite writes v's body with a new meta to a new file and swaps it in if
// key still maps to v. If another Put or UpdateMeta replaced v meanwhile, the
// update counts as made just before that one and rewrite returns nil: the
// newer blob stands, as it would have had the calls come in that order.
func (d *Disk) rewrite(key string, v *diskValue, meta []byte) error {
	f, old, _, ok := d.open(key, v, true)
	if !ok {
		cur, still := d.index.GetEntryQuietly(key)
		switch {
		case !still:
			return ErrNotFound
		case cur.Value == v:
			return fmt.Errorf("store: update meta: cannot read cache file %q", v.path)
		}
		return nil
	}
	defer f.Close()
	gen := d.gen.Add(1)
	h := keyHash(key)
	dir := leafDir(d.dir, h)
	hd := old
	hd.metaLen = uint32(len(meta))
	hd.gen = gen
	hd.crcKeyMeta = keyMetaCRC(key, meta, d.tab)
	tmp, err := d.writeTemp(dir, hd, key, meta, func(w *os.File) error {
		if _, err := f.Seek(old.dataOff(), io.SeekStart); err != nil {
			return err
		}
		n, err := io.Copy(w, &io.LimitedReader{R: f, N: int64(old.bodyLen)})
		if err == nil && n != int64(old.bodyLen) {
			err = io.ErrUnexpectedEOF
		}
		return err
	})
	if err != nil {
		d.writeErrs.Add(1)
		return fmt.Errorf("store: update meta: %w", err)
	}
	st := d.stripe(key)
	st.mu.Lock()
	if _, queued := st.pending[key]; queued {
		st.mu.Unlock() // a newer Put replaces the blob anyway
		d.removeFile(tmp)
		return nil
	}
	cur, ok := d.index.GetEntryQuietly(key)
	if !ok || cur.Value != v {
		st.mu.Unlock()
		d.removeFile(tmp)
		if !ok {
			return ErrNotFound
		}
		return nil // replaced by a newer write
	}
	final := filepath.Join(dir, fileName(h, gen))
	if err := os.Rename(tmp, final); err != nil {
		st.mu.Unlock()
		d.removeFile(tmp)
		d.writeErrs.Add(1)
		return fmt.Errorf("store: update meta: %w", err)
	}
	nv := &diskValue{path: final, gen: gen, size: hd.fileSize()}
	nv.verified.Store(true) // the body was verified in this process before the copy
	d.index.Set(key, nv)
	st.mu.Unlock()
	if d.opt.Fsync {
		d.syncDir(dir)
	}
	return nil
}

// Delete implements Store. The file is removed before Delete returns.
func (d *Disk) Delete(key string) bool {
	st := d.stripe(key)
	st.mu.Lock()
	_, queued := st.pending[key]
	delete(st.pending, key)
	v, indexed := d.index.Invalidate(key)
	st.mu.Unlock()
	if indexed {
		d.removeFile(v.path)
	} else if queued {
		d.evicted(key) // otter never knew it, so its OnDeletion will not say
	}
	return queued || indexed
}

// Contains implements Store: a queued blob or an indexed file (not opened).
func (d *Disk) Contains(key string) bool {
	st := d.stripe(key)
	st.mu.RLock()
	_, queued := st.pending[key]
	st.mu.RUnlock()
	if queued {
		return true
	}
	_, ok := d.index.GetEntryQuietly(key)
	return ok
}

// Scan implements Store: first the blobs still queued, then the files (it
// reads each file's header, key and meta, not the body).
func (d *Disk) Scan(fn func(key string, meta []byte) bool) error {
	type kv struct {
		key  string
		meta []byte
	}
	var queued []kv
	for i := range d.stripes {
		st := &d.stripes[i]
		st.mu.RLock()
		for k, j := range st.pending {
			queued = append(queued, kv{k, j.meta})
		}
		st.mu.RUnlock()
	}
	seen := make(map[string]struct{}, len(queued))
	for _, q := range queued {
		seen[q.key] = struct{}{}
		if !fn(q.key, q.meta) {
			return nil
		}
	}
	for k, v := range d.index.All() {
		if _, dup := seen[k]; dup {
			continue
		}
		f, _, meta, ok := d.open(k, v, false)
		if !ok {
			continue
		}
		f.Close()
		if !fn(k, meta) {
			return nil
		}
	}
	return nil
}

// Stats implements Store. It first runs otter's pending maintenance, so the
// sizes reported respect the bound.
func (d *Disk) Stats() Stats {
	d.index.CleanUp()
	return Stats{
		DiskBytes:       int64(d.index.WeightedSize()),
		DiskItems:       int64(d.index.EstimatedSize()),
		DiskWriteDrops:  d.drops.Load(),
		CorruptFiles:    d.corrupt.Load(),
		DiskWriteErrors: d.writeErrs.Load(),
	}
}

// Flush waits until the queued writes are on disk and the files of evicted
// blobs are deleted.
func (d *Disk) Flush() {
	d.work.wait()
	d.index.CleanUp()
	d.work.wait()
}

// Close implements Store: it writes what is queued, then stops the writers
// and releases the directory. Put after Close returns ErrClosed.
func (d *Disk) Close() error {
	var err error
	d.once.Do(func() {
		d.closeMu.Lock()
		d.closed = true
		close(d.jobs)
		d.closeMu.Unlock()
		d.writers.Wait()
		d.Flush()
		d.index.StopAllGoroutines()
		err = d.lock.Close()
	})
	return err
}

// Dir returns the absolute path of the cache directory.
func (d *Disk) Dir() string { return d.dir }
