package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// evictions records the keys an OnEvict hook was told about.
type evictions struct {
	mu   sync.Mutex
	keys map[string]int
}

func newEvictions() *evictions { return &evictions{keys: map[string]int{}} }

func (v *evictions) hook(key string) {
	v.mu.Lock()
	v.keys[key]++
	v.mu.Unlock()
}

func (v *evictions) has(key string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys[key] > 0
}

// waitFor polls cond (the hook runs on goroutines of its own) for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestOnEvictReportsWhatLeaves: every key that leaves a tier, by the size
// bound or by Delete, is reported, and a key that stays, or is only
// replaced, is not; so a caller's per-key state can follow the tier.
func TestOnEvictReportsWhatLeaves(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T, hook func(string)) Store
	}{
		{"memory", func(t *testing.T, hook func(string)) Store {
			return NewMemoryWith(MemoryOptions{MaxBytes: 64 << 10, MaxItem: 4 << 10, OnEvict: hook})
		}},
		{"disk", func(t *testing.T, hook func(string)) Store {
			return openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 64 << 10, OnEvict: hook})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvictions()
			s := tt.open(t, ev.hook)
			defer s.Close()
			flush := func() {
				if d, ok := s.(*Disk); ok {
					d.Flush()
				}
				s.Stats() // runs pending maintenance
			}
			meta, body := testBlob("replaced", 1, 1024)
			s.Put("replaced", meta, body)
			flush()
			meta, body = testBlob("replaced", 2, 1024)
			s.Put("replaced", meta, body)
			flush()
			meta, body = testBlob("deleted", 1, 1024)
			s.Put("deleted", meta, body)
			flush()
			if !s.Delete("deleted") {
				t.Fatal("Delete found nothing")
			}
			waitFor(t, "the Delete to be reported", func() bool { return ev.has("deleted") })
			if s.Contains("deleted") {
				t.Fatal("Contains reports a deleted key")
			}
			if ev.has("replaced") {
				t.Fatal("a replaced key was reported as gone")
			}
			// Far more than the bound: most keys leave, and each that left
			// is reported.
			const n = 400
			for i := range n {
				k := fmt.Sprintf("k%d", i)
				meta, body := testBlob(k, 1, 1024)
				s.Put(k, meta, body)
				if i%50 == 0 {
					flush()
				}
			}
			flush()
			waitFor(t, "every key that left to be reported", func() bool {
				for i := range n {
					k := fmt.Sprintf("k%d", i)
					if !s.Contains(k) && !ev.has(k) {
						return false
					}
				}
				return true
			})
			held := 0
			for i := range n {
				if s.Contains(fmt.Sprintf("k%d", i)) {
					held++
				}
			}
			if held == 0 || held == n {
				t.Fatalf("%d of %d keys held; want the bound to have evicted some, not all", held, n)
			}
		})
	}
}

// TestTieredContains: a key is contained while either tier holds it.
func TestTieredContains(t *testing.T) {
	mem := NewMemory(1<<20, 0)
	disk := openTestDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 1 << 20})
	tr := NewTiered(mem, disk)
	meta, body := testBlob("a", 1, 100)
	tr.Put("a", meta, body)
	disk.Flush()
	if !tr.Contains("a") {
		t.Fatal("stored key not contained")
	}
	mem.Delete("a") // as the memory tier's eviction would
	if !tr.Contains("a") {
		t.Fatal("key still on disk not contained")
	}
	tr.Delete("a")
	if tr.Contains("a") {
		t.Fatal("deleted key contained")
	}
}
