package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestDiskRoundTrip(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: 64 << 20})
	sizes := map[string]int{"a": 8, "b": 1000, "c": 1 << 20, "": 4096}
	for k, n := range sizes {
		meta, body := testBlob(k, 1, n)
		if err := d.Put(k, meta, body); err != nil {
			t.Fatal(err)
		}
		// Before Flush a Get may see the queued copy or miss, never a partial blob.
		if gm, gb, _, ok := getBlob(t, d, k); ok {
			checkBlob(t, k, gm, gb)
		}
	}
	d.Flush()
	if got := len(cacheFiles(t, dir)); got != len(sizes) {
		t.Fatalf("%d files, want %d", got, len(sizes))
	}
	for k, n := range sizes {
		e, ok := d.Get(k)
		if !ok {
			t.Fatalf("miss %q", k)
		}
		if e.Tier() != TierDisk || e.Body() != nil || e.Len() != int64(n) {
			t.Fatalf("%q: tier %s body nil %v len %d", k, e.Tier(), e.Body() == nil, e.Len())
		}
		var buf bytes.Buffer
		if _, err := e.WriteBodyTo(&buf, 0, e.Len()); err != nil {
			t.Fatal(err)
		}
		checkBlob(t, k, e.Meta(), buf.Bytes())
		e.Close()
	}

	if err := d.UpdateMeta("c", testMeta("c", "updated")); err != nil {
		t.Fatal(err)
	}
	gm, gb, _, ok := getBlob(t, d, "c")
	if !ok || string(gm) != string(testMeta("c", "updated")) || len(gb) != 1<<20 {
		t.Fatalf("after UpdateMeta: %v %q %d", ok, gm, len(gb))
	}
	checkBlob(t, "c", gm, gb)
	d.Flush()
	if got := len(cacheFiles(t, dir)); got != len(sizes) {
		t.Fatalf("UpdateMeta left %d files, want %d", got, len(sizes))
	}
	if err := d.UpdateMeta("absent", []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateMeta of absent key: %v", err)
	}

	path := fileOf(t, dir, "a")
	if !d.Delete("a") || d.Delete("a") {
		t.Fatal("Delete should report true once")
	}
	if exists(path) {
		t.Fatal("Delete left the file")
	}
	if _, ok := d.Get("a"); ok {
		t.Fatal("hit after Delete")
	}
	s := d.Stats()
	if s.DiskItems != 3 || s.DiskBytes != sumSizes(cacheFiles(t, dir)) {
		t.Fatalf("stats %+v, files %v", s, cacheFiles(t, dir))
	}
}

func sumSizes(m map[string]int64) int64 {
	var n int64
	for _, s := range m {
		n += s
	}
	return n
}

// TestDiskOrderedOps checks that Delete and UpdateMeta right after a Put
// apply after it, however far the writers are.
func TestDiskOrderedOps(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: 64 << 20, Writers: 2})
	for i := range 200 {
		key := fmt.Sprintf("k%d", i)
		meta, body := testBlob(key, 1, 4096)
		d.Put(key, meta, body)
		switch i % 3 {
		case 0:
			d.Delete(key)
		case 1:
			if err := d.UpdateMeta(key, testMeta(key, "new")); err != nil {
				t.Fatal(err)
			}
		case 2:
			meta, body := testBlob(key, 2, 2048)
			d.Put(key, meta, body)
		}
	}
	d.Flush()
	for i := range 200 {
		key := fmt.Sprintf("k%d", i)
		gm, gb, _, ok := getBlob(t, d, key)
		switch i % 3 {
		case 0:
			if ok {
				t.Fatalf("%s: deleted blob came back", key)
			}
		case 1:
			if !ok || string(gm) != string(testMeta(key, "new")) {
				t.Fatalf("%s: UpdateMeta lost: %v %q", key, ok, gm)
			}
		case 2:
			if !ok || len(gb) != 2048 {
				t.Fatalf("%s: second Put lost: %v %d", key, ok, len(gb))
			}
		}
		if ok {
			checkBlob(t, key, gm, gb)
		}
	}
	if got, want := len(cacheFiles(t, dir)), 133; got != want {
		t.Fatalf("%d files, want %d", got, want)
	}
}

func TestDiskRestart(t *testing.T) {
	dir := t.TempDir()
	opt := DiskOptions{Dir: dir, MaxBytes: 64 << 20, Fsync: true}
	d, err := OpenDisk(opt)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{} // key -> meta
	for i := range 50 {
		key := fmt.Sprintf("https://h/obj/%d", i)
		meta, body := testBlob(key, 1, 100*i+8)
		d.Put(key, meta, body)
		want[key] = meta
	}
	d.Flush()
	d.UpdateMeta("https://h/obj/7", testMeta("https://h/obj/7", "refreshed"))
	want["https://h/obj/7"] = testMeta("https://h/obj/7", "refreshed")
	d.Delete("https://h/obj/8")
	delete(want, "https://h/obj/8")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Put("late", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}

	for round := range 2 {
		d = openTestDisk(t, opt)
		got := map[string][]byte{}
		d.Scan(func(key string, meta []byte) bool {
			got[key] = bytes.Clone(meta)
			return true
		})
		if len(got) != len(want) {
			t.Fatalf("round %d: scan found %d blobs, want %d", round, len(got), len(want))
		}
		for k, m := range want {
			if !bytes.Equal(got[k], m) {
				t.Fatalf("round %d: scan meta of %q = %q, want %q", round, k, got[k], m)
			}
			gm, gb, tier, ok := getBlob(t, d, k)
			if !ok || tier != TierDisk || !bytes.Equal(gm, m) {
				t.Fatalf("round %d: Get %q: %v %s %q", round, k, ok, tier, gm)
			}
			checkBlob(t, k, gm, gb)
		}
		if s := d.Stats(); s.DiskItems != int64(len(want)) || s.CorruptFiles != 0 {
			t.Fatalf("round %d: stats %+v", round, s)
		}
		// A newer version written after a restart must win over the older
		// file at the next restart (generations continue).
		meta, body := testBlob("https://h/obj/3", uint64(10+round), 77)
		d.Put("https://h/obj/3", meta, body)
		want["https://h/obj/3"] = meta
		d.Close()
	}
	openTestDisk(t, opt)
	if _, err := OpenDisk(opt); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second OpenDisk of a dir in use: %v", err)
	}
}

func TestDiskBounds(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 1 << 20
	d := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: maxBytes})
	for i := range 100 {
		key := fmt.Sprintf("k%d", i)
		meta, body := testBlob(key, 1, 64<<10)
		d.Put(key, meta, body)
		if i%10 == 9 {
			d.Flush()
		}
	}
	d.Flush()
	s := d.Stats()
	files := cacheFiles(t, dir)
	if s.DiskBytes > maxBytes || sumSizes(files) > maxBytes || s.DiskBytes < maxBytes/2 {
		t.Fatalf("stats %+v, %d files of %d bytes, bound %d", s, len(files), sumSizes(files), maxBytes)
	}
	if int64(len(files)) != s.DiskItems {
		t.Fatalf("%d files, %d items", len(files), s.DiskItems)
	}
	// A blob larger than the whole tier is not written and removes the older one.
	meta, body := testBlob("k99", 2, maxBytes)
	d.Put("k99", meta, body)
	d.Flush()
	if _, ok := d.Get("k99"); ok {
		t.Fatal("blob over MaxBytes kept, or older version left")
	}
	// Shrinking MaxBytes across a restart evicts down to the new bound.
	d.Close()
	d = openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: maxBytes / 4})
	d.Flush()
	if s, files := d.Stats(), cacheFiles(t, dir); s.DiskBytes > maxBytes/4 || sumSizes(files) > maxBytes/4 {
		t.Fatalf("after shrink: stats %+v, files %d bytes", s, sumSizes(files))
	}
}

func TestDiskQueueDrops(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: 64 << 20, Writers: 1, QueueBytes: 256 << 10})
	meta, body := testBlob("old", 1, 100)
	d.Put("old", meta, body)
	d.Flush()
	// Larger than the whole queue: always dropped, and the older version goes.
	meta, body = testBlob("old", 2, 300<<10)
	d.Put("old", meta, body)
	for i := range 200 {
		key := fmt.Sprintf("k%d", i)
		meta, body := testBlob(key, 1, 64<<10)
		d.Put(key, meta, body)
	}
	d.Flush()
	s := d.Stats()
	if s.DiskWriteDrops < 1 {
		t.Fatalf("no drop counted: %+v", s)
	}
	if _, ok := d.Get("old"); ok {
		t.Fatal("older version outlived a dropped Put")
	}
	hits := 0
	for i := range 200 {
		key := fmt.Sprintf("k%d", i)
		if gm, gb, _, ok := getBlob(t, d, key); ok {
			hits++
			checkBlob(t, key, gm, gb)
		}
	}
	if int64(hits)+s.DiskWriteDrops != 201 {
		t.Fatalf("%d hits + %d drops != 201 puts", hits, s.DiskWriteDrops)
	}
	t.Logf("%d of 200 written, %d dropped", hits, s.DiskWriteDrops)
}

// damage describes one way a file goes bad between two runs.
type damage struct {
	name string
	do   func(t *testing.T, path string)
	// atOpen: found by OpenDisk; otherwise by the first Get.
	atOpen bool
}

func flipByte(off func(size int64) int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[off(int64(len(b)))] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func truncateTo(size func(int64) int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, size(fi.Size())); err != nil {
			t.Fatal(err)
		}
	}
}

func damages() []damage {
	return []damage{
		{"truncated by one byte", truncateTo(func(n int64) int64 { return n - 1 }), true},
		{"truncated to half", truncateTo(func(n int64) int64 { return n / 2 }), true},
		{"truncated inside header", truncateTo(func(int64) int64 { return 20 }), true},
		{"empty", truncateTo(func(int64) int64 { return 0 }), true},
		{"grown", func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("tail"))
			f.Close()
		}, true},
		{"bad magic", flipByte(func(int64) int64 { return 0 }), true},
		{"bad header length", flipByte(func(int64) int64 { return 16 }), true},
		{"bad header checksum", flipByte(func(int64) int64 { return 45 }), true},
		{"flipped key byte", flipByte(func(int64) int64 { return headerSize }), true},
		{"flipped meta byte", flipByte(func(int64) int64 { return headerSize + int64(len("victim")) + 2 }), true},
		{"flipped last body byte", flipByte(func(n int64) int64 { return n - 1 }), false},
		{"flipped middle body byte", flipByte(func(n int64) int64 { return n - 5000 }), false},
		{"zeroed body page", func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_WRONLY, 0)
			f.WriteAt(make([]byte, 4096), 8192)
			f.Close()
		}, false},
		{"another key's name", func(t *testing.T, path string) {
			other := keyHash("other")
			// Same directory, a name that is not this key's hash.
			if err := os.Rename(path, filepath.Join(filepath.Dir(path), other+"-"+strings.Split(filepath.Base(path), "-")[1])); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
}

func TestDiskCorruptFilesAreNeverServed(t *testing.T) {
	for _, dm := range damages() {
		t.Run(dm.name, func(t *testing.T) {
			dir := t.TempDir()
			opt := DiskOptions{Dir: dir, MaxBytes: 64 << 20}
			d := openTestDisk(t, opt)
			vm, vb := testBlob("victim", 1, 20000)
			bm, bb := testBlob("bystander", 1, 20000)
			d.Put("victim", vm, vb)
			d.Put("bystander", bm, bb)
			d.Close()

			dm.do(t, fileOf(t, dir, "victim"))
			d = openTestDisk(t, opt)
			if got := d.Stats().CorruptFiles; dm.atOpen != (got == 1) {
				t.Fatalf("CorruptFiles after open = %d, found at open: %v", got, dm.atOpen)
			}
			if dm.atOpen {
				d.Scan(func(key string, _ []byte) bool {
					if key != "bystander" {
						t.Errorf("scan lists %q", key)
					}
					return true
				})
			}
			if _, ok := d.Get("victim"); ok {
				t.Fatal("damaged blob served")
			}
			if _, ok := d.Get("victim"); ok {
				t.Fatal("damaged blob served on the second Get")
			}
			d.Flush()
			if s := d.Stats(); s.CorruptFiles != 1 || s.DiskItems != 1 {
				t.Fatalf("stats %+v", s)
			}
			files := cacheFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("damaged file not deleted: %v", files)
			}
			gm, gb, _, ok := getBlob(t, d, "bystander")
			if !ok {
				t.Fatal("bystander lost")
			}
			checkBlob(t, "bystander", gm, gb)
		})
	}
}

// TestDiskTruncatedWhileOpen: a file of this process truncated behind its
// back is caught by the size check on every open.
func TestDiskTruncatedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: 64 << 20})
	meta, body := testBlob("k", 1, 10000)
	d.Put("k", meta, body)
	d.Flush()
	if _, _, _, ok := getBlob(t, d, "k"); !ok {
		t.Fatal("miss")
	}
	truncateTo(func(n int64) int64 { return n - 100 })(t, fileOf(t, dir, "k"))
	if _, ok := d.Get("k"); ok {
		t.Fatal("truncated blob served")
	}
	if s := d.Stats(); s.CorruptFiles != 1 || len(cacheFiles(t, dir)) != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDiskOpenCleansTempAndKeepsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	opt := DiskOptions{Dir: dir, MaxBytes: 64 << 20}
	d := openTestDisk(t, opt)
	meta, body := testBlob("k", 1, 1000)
	d.Put("k", meta, body)
	d.Close()

	leaf := filepath.Dir(fileOf(t, dir, "k"))
	h := keyHash("k")
	// A temp file as a killed writer leaves it: a whole valid blob, never renamed.
	blob, _ := os.ReadFile(fileOf(t, dir, "k"))
	temps := []string{filepath.Join(leaf, tmpPrefix+"123456"), filepath.Join(dir, tmpPrefix+"probe-1")}
	for _, p := range temps {
		os.WriteFile(p, blob, 0o600)
	}
	foreign := []string{filepath.Join(dir, "README"), filepath.Join(leaf, "notes.txt"), filepath.Join(leaf, h+"-zz")}
	for _, p := range foreign {
		os.WriteFile(p, []byte("not a cache file"), 0o600)
	}
	d = openTestDisk(t, opt)
	for _, p := range temps {
		if exists(p) {
			t.Errorf("temp file %s left", p)
		}
	}
	for _, p := range foreign {
		if !exists(p) {
			t.Errorf("foreign file %s deleted", p)
		}
	}
	if s := d.Stats(); s.CorruptFiles != 0 || s.DiskItems != 1 || d.tempsRemoved.Load() != 2 {
		t.Fatalf("stats %+v, temps removed %d", s, d.tempsRemoved.Load())
	}
}

func TestDiskHostileKeys(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cache")
	opt := DiskOptions{Dir: dir, MaxBytes: 64 << 20}
	d := openTestDisk(t, opt)
	keys := []string{
		"../../etc/passwd", "/abs", "a\x00b", strings.Repeat("k", 10<<10), strings.Repeat("../", 3000),
		"", ".", "..", "./", "\\..\\windows", "C:\\x", "tmp-1", "LOCK", "\xff\xfe", "a/b/c", strings.Repeat("\x00", 100),
	}
	for _, k := range keys {
		meta, body := testBlob(k, 1, 100)
		if err := d.Put(k, meta, body); err != nil {
			t.Fatalf("Put %.20q: %v", k, err)
		}
	}
	d.Flush()
	for _, p := range allRegularFiles(t, root) {
		rel, err := filepath.Rel(dir, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("file outside the cache dir: %s", p)
		}
	}
	if got := len(cacheFiles(t, dir)); got != len(keys) {
		t.Fatalf("%d files for %d keys", got, len(keys))
	}
	d.Close()
	d = openTestDisk(t, opt)
	var scanned []string
	d.Scan(func(key string, _ []byte) bool {
		scanned = append(scanned, key)
		return true
	})
	slices.Sort(scanned)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(scanned, want) {
		t.Fatalf("scan after restart: %d keys, want %d", len(scanned), len(want))
	}
	for _, k := range keys {
		gm, gb, _, ok := getBlob(t, d, k)
		if !ok {
			t.Fatalf("miss %.20q", k)
		}
		checkBlob(t, k, gm, gb)
	}
}

func TestOpenDiskErrors(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	tests := []struct {
		name string
		opt  DiskOptions
		want string
	}{
		{"no dir", DiskOptions{MaxBytes: 1}, "Dir is empty"},
		{"no size", DiskOptions{Dir: root}, "MaxBytes"},
		{"dir under a file", DiskOptions{Dir: filepath.Join(file, "cache"), MaxBytes: 1}, filepath.Join(file, "cache")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := OpenDisk(tt.opt)
			if err == nil {
				d.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name %q", err, tt.want)
			}
		})
	}
}

// fakeReaderFrom is a writer with ReadFrom, as net/http's response writer
// and *net.TCPConn have; it records what WriteBodyTo hands to ReadFrom.
type fakeReaderFrom struct {
	bytes.Buffer
	sources []string
}

func (f *fakeReaderFrom) ReadFrom(r io.Reader) (int64, error) {
	src := fmt.Sprintf("%T", r)
	if lr, ok := r.(*io.LimitedReader); ok {
		src += fmt.Sprintf("(%T, %d)", lr.R, lr.N)
	}
	f.sources = append(f.sources, src)
	return f.Buffer.ReadFrom(r)
}

func TestDiskWriteBodyToUsesTheFile(t *testing.T) {
	d := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 64 << 20})
	meta, body := testBlob("k", 1, 300000)
	d.Put("k", meta, body)
	d.Flush()
	e, ok := d.Get("k")
	if !ok {
		t.Fatal("miss")
	}
	defer e.Close()
	var w fakeReaderFrom
	n, err := e.WriteBodyTo(&w, 1000, 200000)
	if err != nil || n != 200000 || !bytes.Equal(w.Bytes(), body[1000:201000]) {
		t.Fatalf("WriteBodyTo: %d %v", n, err)
	}
	if want := []string{"*io.LimitedReader(*os.File, 200000)"}; !slices.Equal(w.sources, want) {
		t.Fatalf("ReadFrom got %v, want %v", w.sources, want)
	}
}

func TestDiskWriteBodyToOverHTTP(t *testing.T) {
	d := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 64 << 20})
	const size = 3<<20 + 17
	meta, body := testBlob("video/slice-0", 1, size)
	d.Put("video/slice-0", meta, body)
	d.Flush()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, ok := d.Get(r.URL.Query().Get("key"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		defer e.Close()
		if e.Body() != nil {
			http.Error(w, "not a file entry", http.StatusInternalServerError)
			return
		}
		off, _ := strconv.ParseInt(r.URL.Query().Get("off"), 10, 64)
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		if _, err := e.WriteBodyTo(w, off, n); err != nil {
			t.Errorf("WriteBodyTo: %v", err)
		}
	}))
	defer srv.Close()
	ranges := [][2]int64{{0, size}, {0, 100}, {1 << 20, 1 << 20}, {size - 1, 1}, {12345, size - 12345}}
	var wg sync.WaitGroup
	for _, rg := range ranges {
		wg.Go(func() {
			resp, err := http.Get(fmt.Sprintf("%s/?key=video/slice-0&off=%d&n=%d", srv.URL, rg[0], rg[1]))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body[rg[0]:rg[0]+rg[1]]) {
				t.Errorf("range %v: status %d, %d bytes, err %v", rg, resp.StatusCode, len(got), err)
			}
		})
	}
	wg.Wait()
}

// TestDiskChangesDuringWrite holds the writer between writing a blob's
// temporary file and renaming it, changes the key, and checks the change wins.
func TestDiskChangesDuringWrite(t *testing.T) {
	tests := []struct {
		name   string
		change func(d *Disk)
		check  func(t *testing.T, d *Disk)
	}{
		{"delete", func(d *Disk) {
			if !d.Delete("k") {
				t.Error("Delete of a blob being written returned false")
			}
		}, func(t *testing.T, d *Disk) {
			if _, ok := d.Get("k"); ok {
				t.Fatal("deleted blob written anyway")
			}
		}},
		{"put", func(d *Disk) {
			meta, body := testBlob("k", 2, 500)
			d.Put("k", meta, body)
		}, func(t *testing.T, d *Disk) {
			_, gb, _ := mustGet(t, d, "k")
			if len(gb) != 500 {
				t.Fatalf("older Put won: %d bytes", len(gb))
			}
		}},
		{"update meta", func(d *Disk) {
			if err := d.UpdateMeta("k", testMeta("k", "new")); err != nil {
				t.Error(err)
			}
		}, func(t *testing.T, d *Disk) {
			gm, _, _ := mustGet(t, d, "k")
			if string(gm) != string(testMeta("k", "new")) {
				t.Fatalf("UpdateMeta lost: %q", gm)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			written, proceed := make(chan string, 1), make(chan struct{})
			var once sync.Once
			d, err := openDisk(DiskOptions{Dir: dir, MaxBytes: 64 << 20, Writers: 1}, func(tmp string) {
				once.Do(func() {
					written <- tmp
					<-proceed
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			meta, body := testBlob("k", 1, 1000)
			d.Put("k", meta, body)
			tmp := <-written
			tt.change(d)
			close(proceed)
			d.Flush()
			tt.check(t, d)
			if exists(tmp) || hasTemp(t, dir) {
				t.Fatal("temporary file left")
			}
			d.Close()
			d2 := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: 64 << 20})
			tt.check(t, d2)
		})
	}
}
