package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestTieredRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mem := NewMemory(1<<20, 64<<10)
	disk := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: 64 << 20})
	s := NewTiered(mem, disk)

	smallMeta, small := testBlob("small", 1, 1000)
	bigMeta, big := testBlob("big", 1, 1<<20)
	s.Put("small", smallMeta, small)
	s.Put("big", bigMeta, big)
	disk.Flush()

	if _, _, tier, _ := getBlob(t, s, "small"); tier != TierMemory {
		t.Fatalf("small blob from %s", tier)
	}
	e, ok := s.Get("big")
	if !ok || e.Tier() != TierDisk || e.Body() != nil {
		t.Fatalf("big blob: %v %+v", ok, e)
	}
	e.Close()

	// A disk hit that fits memory is promoted.
	mem.Delete("small")
	gm, gb, tier, ok := getBlob(t, s, "small")
	if !ok || tier != TierDisk {
		t.Fatalf("small after memory delete: %v %s", ok, tier)
	}
	checkBlob(t, "small", gm, gb)
	if _, _, tier, _ := getBlob(t, s, "small"); tier != TierMemory {
		t.Fatalf("not promoted: next hit from %s", tier)
	}
	if _, _, tier, _ := getBlob(t, s, "big"); tier != TierDisk {
		t.Fatal("blob over the memory item limit promoted")
	}

	if err := s.UpdateMeta("small", testMeta("small", "u")); err != nil {
		t.Fatal(err)
	}
	if gm, _, _ := mustGet(t, mem, "small"); string(gm) != string(testMeta("small", "u")) {
		t.Fatalf("memory meta %q", gm)
	}
	if gm, _, _ := mustGet(t, disk, "small"); string(gm) != string(testMeta("small", "u")) {
		t.Fatalf("disk meta %q", gm)
	}
	if err := s.UpdateMeta("absent", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpdateMeta absent: %v", err)
	}

	n := 0
	s.Scan(func(string, []byte) bool { n++; return true })
	if n != 2 {
		t.Fatalf("scan found %d blobs", n)
	}
	st := s.Stats()
	if st.MemoryItems != 1 || st.DiskItems != 2 || st.DiskBytes == 0 || st.MemoryBytes == 0 {
		t.Fatalf("stats %+v", st)
	}

	if !s.Delete("small") {
		t.Fatal("Delete false")
	}
	if _, ok := mem.Get("small"); ok {
		t.Fatal("memory kept a deleted blob")
	}
	if _, ok := disk.Get("small"); ok {
		t.Fatal("disk kept a deleted blob")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t *testing.T, s Store, key string) ([]byte, []byte, string) {
	t.Helper()
	m, b, tier, ok := getBlob(t, s, key)
	if !ok {
		t.Fatalf("%T: miss %q", s, key)
	}
	return m, b, tier
}

func TestTieredMemoryOnly(t *testing.T) {
	s := NewTiered(NewMemory(1<<20, 0), nil)
	meta, body := testBlob("k", 1, 100)
	s.Put("k", meta, body)
	mustGet(t, s, "k")
	n := 0
	s.Scan(func(string, []byte) bool { n++; return true })
	if n != 1 || !s.Delete("k") || s.Stats().DiskItems != 0 {
		t.Fatal("memory-only tiered store")
	}
	if err := s.UpdateMeta("k", nil); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

// TestTieredDeleteNotUndoneByPromotion: a Get that read the blob from disk
// before a Delete must not put it back into memory after the Delete.
func TestTieredDeleteNotUndoneByPromotion(t *testing.T) {
	mem := NewMemory(1<<20, 0)
	disk := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 64 << 20})
	s := NewTiered(mem, disk)
	for i := range 200 {
		key := fmt.Sprintf("k%d", i)
		meta, body := testBlob(key, 1, 2000)
		s.Put(key, meta, body)
		disk.Flush()
		mem.Delete(key)
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 5 {
				if e, ok := s.Get(key); ok {
					e.Close()
				}
			}
		})
		s.Delete(key)
		wg.Wait()
		if _, ok := s.Get(key); ok {
			t.Fatalf("%s: deleted blob served after a concurrent promotion", key)
		}
	}
}

// hammer runs random Put, Get, UpdateMeta and Delete on a few keys from
// several goroutines and checks every blob it reads.
func hammer(t *testing.T, s Store, workers, ops int, maxSize int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range ops {
				key := fmt.Sprintf("key-%d", rng.IntN(40))
				switch r := rng.IntN(10); {
				case r < 3:
					meta, body := testBlob(key, rng.Uint64(), 8+rng.IntN(maxSize))
					if err := s.Put(key, meta, body); err != nil {
						t.Error(err)
						return
					}
				case r < 8:
					e, ok := s.Get(key)
					if !ok {
						continue
					}
					var buf bytes.Buffer
					if _, err := e.WriteBodyTo(&buf, 0, e.Len()); err != nil {
						t.Error(err)
					}
					checkBlob(t, key, e.Meta(), buf.Bytes())
					e.Close()
				case r < 9:
					err := s.UpdateMeta(key, testMeta(key, fmt.Sprint("u", rng.IntN(100))))
					if err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
					}
				default:
					s.Delete(key)
				}
			}
		})
	}
	wg.Wait()
}

func TestConcurrent(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T) (Store, func())
	}{
		{"memory", func(t *testing.T) (Store, func()) {
			return NewMemory(200<<10, 0), func() {}
		}},
		{"disk", func(t *testing.T) (Store, func()) {
			d := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 300 << 10, Writers: 2, QueueBytes: 1 << 20})
			return d, d.Flush
		}},
		{"tiered", func(t *testing.T) (Store, func()) {
			d := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 300 << 10, Writers: 2, QueueBytes: 1 << 20})
			return NewTiered(NewMemory(100<<10, 16<<10), d), d.Flush
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, flush := tt.open(t)
			hammer(t, s, 8, 1000, 24<<10)
			flush()
			st := s.Stats()
			if st.MemoryBytes > 200<<10 || st.DiskBytes > 300<<10 {
				t.Fatalf("bounds: %+v", st)
			}
			s.Scan(func(key string, meta []byte) bool {
				gm, gb, _, ok := getBlob(t, s, key)
				if ok {
					checkBlob(t, key, gm, gb)
				}
				return true
			})
			d, _ := s.(*Disk)
			if ts, ok := s.(*Tiered); ok {
				d = ts.Disk()
			}
			if d != nil {
				if hasTemp(t, d.Dir()) {
					t.Fatal("temp files left after Flush")
				}
				if got := int64(len(cacheFiles(t, d.Dir()))); got != st.DiskItems {
					t.Fatalf("%d files, %d indexed", got, st.DiskItems)
				}
			}
			t.Logf("stats %+v", st)
		})
	}
}
