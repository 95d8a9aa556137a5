package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestMemoryRoundTrip(t *testing.T) {
	m := NewMemory(1<<20, 0)
	defer m.Close()
	tests := []struct {
		name string
		key  string
		size int
	}{
		{"small", "http://a/x", 100},
		{"empty key", "", 16},
		{"binary key", "a\x00b\xff../", 1000},
		{"max item", "big", int(m.MaxItem()) - memItemOverhead - len("big") - len(testMeta("big", "v1"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta, body := testBlob(tt.key, 1, tt.size)
			if err := m.Put(tt.key, meta, body); err != nil {
				t.Fatal(err)
			}
			e, ok := m.Get(tt.key)
			if !ok {
				t.Fatal("miss after Put")
			}
			defer e.Close()
			if e.Tier() != TierMemory || e.Len() != int64(len(body)) || !bytes.Equal(e.Meta(), meta) || !bytes.Equal(e.Body(), body) {
				t.Fatalf("got tier %s len %d meta %q", e.Tier(), e.Len(), e.Meta())
			}
			var buf bytes.Buffer
			if n, err := e.WriteBodyTo(&buf, 3, 5); err != nil || n != 5 || !bytes.Equal(buf.Bytes(), body[3:8]) {
				t.Fatalf("WriteBodyTo: %d %v", n, err)
			}
			if err := m.UpdateMeta(tt.key, testMeta(tt.key, "u")); err != nil {
				t.Fatal(err)
			}
			gm, gb, _, _ := getBlob(t, m, tt.key)
			if !bytes.Equal(gm, testMeta(tt.key, "u")) || !bytes.Equal(gb, body) {
				t.Fatalf("after UpdateMeta: meta %q", gm)
			}
			if !bytes.Equal(e.Meta(), meta) {
				t.Fatal("UpdateMeta changed the meta of an entry already returned")
			}
			if !m.Delete(tt.key) || m.Delete(tt.key) {
				t.Fatal("Delete should report true once")
			}
			if _, ok := m.Get(tt.key); ok {
				t.Fatal("hit after Delete")
			}
			if err := m.UpdateMeta(tt.key, meta); !errors.Is(err, ErrNotFound) {
				t.Fatalf("UpdateMeta of absent key: %v", err)
			}
		})
	}
}

func TestMemoryBounds(t *testing.T) {
	const maxBytes = 256 << 10
	m := NewMemory(maxBytes, 16<<10)
	defer m.Close()
	for i := range 2000 {
		key := fmt.Sprintf("k%d", i)
		meta, body := testBlob(key, 1, 1024)
		if err := m.Put(key, meta, body); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if s := m.Stats(); s.MemoryBytes > maxBytes {
				t.Fatalf("after %d puts: %d bytes > %d", i, s.MemoryBytes, maxBytes)
			}
		}
	}
	s := m.Stats()
	if s.MemoryBytes > maxBytes || s.MemoryBytes < maxBytes/2 || s.MemoryItems == 0 {
		t.Fatalf("stats %+v, bound %d", s, maxBytes)
	}
	var n, total int64
	m.Scan(func(key string, meta []byte) bool {
		e, _ := m.Get(key)
		if e != nil {
			total += memWeight(key, e.Meta(), e.Body())
			checkBlob(t, key, e.Meta(), e.Body())
		}
		n++
		return true
	})
	if total > maxBytes || n == 0 {
		t.Fatalf("scan: %d items weighing %d", n, total)
	}

	// A blob over maxItem is not kept, and removes the older one.
	meta, body := testBlob("k1999", 2, 32<<10)
	m.Put("k1999", meta, body)
	if _, ok := m.Get("k1999"); ok {
		t.Fatal("blob over maxItem kept, or older version left")
	}
}

func TestMemoryDisabled(t *testing.T) {
	m := NewMemory(0, 0)
	meta, body := testBlob("k", 1, 10)
	if err := m.Put("k", meta, body); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get("k"); ok {
		t.Fatal("memory of 0 bytes kept a blob")
	}
	if s := m.Stats(); s != (Stats{}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestPutRefusesHugeKeyAndMeta(t *testing.T) {
	m := NewMemory(1<<20, 0)
	d := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 1 << 20})
	for _, s := range []Store{m, d, NewTiered(m, d)} {
		if err := s.Put(string(make([]byte, MaxKeyLen+1)), nil, nil); err == nil {
			t.Errorf("%T: key over MaxKeyLen accepted", s)
		}
		if err := s.Put("k", make([]byte, MaxMetaLen+1), nil); err == nil {
			t.Errorf("%T: meta over MaxMetaLen accepted", s)
		}
	}
}

// TestEntryRanges checks ReadAt and WriteBodyTo on both kinds of entries.
func TestEntryRanges(t *testing.T) {
	meta, body := testBlob("k", 1, 100)
	m := NewMemory(1<<20, 0)
	m.Put("k", meta, body)
	d := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 1 << 20})
	d.Put("k", meta, body)
	d.Flush()
	for _, s := range []Store{m, d} {
		e, ok := s.Get("k")
		if !ok {
			t.Fatalf("%T: miss", s)
		}
		readTests := []struct {
			off     int64
			size    int
			wantN   int
			wantErr error
		}{
			{0, 100, 100, nil},
			{0, 150, 100, io.EOF},
			{90, 10, 10, nil},
			{90, 20, 10, io.EOF},
			{100, 1, 0, io.EOF},
			{200, 1, 0, io.EOF},
		}
		for _, rt := range readTests {
			p := make([]byte, rt.size)
			n, err := e.ReadAt(p, rt.off)
			if n != rt.wantN || err != rt.wantErr || (n > 0 && !bytes.Equal(p[:n], body[rt.off:rt.off+int64(n)])) {
				t.Errorf("%s ReadAt(%d, %d) = %d, %v; want %d, %v", e.Tier(), rt.size, rt.off, n, err, rt.wantN, rt.wantErr)
			}
		}
		writeTests := []struct {
			off, n int64
			ok     bool
		}{
			{0, 100, true}, {10, 0, true}, {99, 1, true}, {100, 0, true},
			{-1, 1, false}, {0, 101, false}, {50, 51, false}, {101, 0, false}, {0, -1, false},
		}
		for _, wt := range writeTests {
			var buf bytes.Buffer
			n, err := e.WriteBodyTo(&buf, wt.off, wt.n)
			if wt.ok != (err == nil) || (wt.ok && (n != wt.n || !bytes.Equal(buf.Bytes(), body[wt.off:wt.off+wt.n]))) {
				t.Errorf("%s WriteBodyTo(%d, %d) = %d, %v", e.Tier(), wt.off, wt.n, n, err)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
	}
}
