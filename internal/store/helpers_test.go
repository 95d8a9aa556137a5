package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testBlob returns deterministic, self-checking meta and body for key: the
// body starts with ver and continues with bytes drawn from a generator
// seeded by key and ver, so checkBlob can tell a body from another key,
// version or offset, and a partial one.
func testBlob(key string, ver uint64, size int) (meta, body []byte) {
	if size < 8 {
		size = 8
	}
	body = make([]byte, size)
	binary.LittleEndian.PutUint64(body, ver)
	fillBlob(key, ver, body[8:])
	return testMeta(key, "v"+fmt.Sprint(ver)), body
}

func fillBlob(key string, ver uint64, p []byte) {
	var seed [32]byte
	h := sha256.New()
	fmt.Fprintf(h, "%d|", ver)
	h.Write([]byte(key))
	copy(seed[:], h.Sum(nil))
	rand.NewChaCha8(seed).Read(p)
}

func testMeta(key, tag string) []byte {
	return []byte("m:" + keyHash(key)[:16] + ":" + tag)
}

// checkBlob fails the test unless meta and body are a blob testBlob made for
// key (in any version, meta with any tag).
func checkBlob(t testing.TB, key string, meta, body []byte) {
	t.Helper()
	if !bytes.HasPrefix(meta, []byte("m:"+keyHash(key)[:16]+":")) {
		t.Errorf("key %.40q: meta %.60q belongs to another key", key, meta)
		return
	}
	if len(body) < 8 {
		t.Errorf("key %.40q: body of %d bytes is too short", key, len(body))
		return
	}
	want := make([]byte, len(body)-8)
	fillBlob(key, binary.LittleEndian.Uint64(body), want)
	if !bytes.Equal(body[8:], want) {
		t.Errorf("key %.40q: body of %d bytes is damaged or from another key", key, len(body))
	}
}

// readAll reads the whole body of an entry through ReadAt.
func readAll(t testing.TB, e *Entry) []byte {
	t.Helper()
	buf := make([]byte, e.Len())
	n, err := e.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("ReadAt: %v", err)
	}
	if int64(n) != e.Len() {
		t.Fatalf("ReadAt read %d of %d bytes", n, e.Len())
	}
	return buf
}

// getBlob gets key and returns copies of its meta and body.
func getBlob(t testing.TB, s Store, key string) (meta, body []byte, tier string, ok bool) {
	t.Helper()
	e, ok := s.Get(key)
	if !ok {
		return nil, nil, "", false
	}
	defer e.Close()
	return bytes.Clone(e.Meta()), readAll(t, e), e.Tier(), true
}

func openTestDisk(t testing.TB, opt DiskOptions) *Disk {
	t.Helper()
	d, err := OpenDisk(opt)
	if err != nil {
		t.Fatalf("OpenDisk: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// cacheFiles returns the blob files under dir (not LOCK, not temporaries).
func cacheFiles(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() {
			if _, _, ok := parseFileName(de.Name()); ok {
				fi, err := de.Info()
				if err != nil {
					return err
				}
				files[path] = fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return files
}

// fileOf returns the one file of key under dir.
func fileOf(t testing.TB, dir, key string) string {
	t.Helper()
	h := keyHash(key)
	m, err := filepath.Glob(filepath.Join(leafDir(dir, h), h+"-*"))
	if err != nil || len(m) != 1 {
		t.Fatalf("files of key %q: %v %v", key, m, err)
	}
	return m[0]
}

func allRegularFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			out = append(out, path)
		}
		return nil
	})
	return out
}

func hasTemp(t testing.TB, root string) bool {
	t.Helper()
	for _, p := range allRegularFiles(t, root) {
		if strings.HasPrefix(filepath.Base(p), tmpPrefix) {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
