package store

import (
	"fmt"
	"io"
	"testing"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"1KiB", 1 << 10},
	{"1MiB", 1 << 20},
}

func BenchmarkMemoryGet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			m := NewMemory(64<<20, 8<<20)
			defer m.Close()
			meta, body := testBlob("k", 1, bs.size)
			m.Put("k", meta, body)
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				e, ok := m.Get("k")
				if !ok {
					b.Fatal("miss")
				}
				if _, err := e.WriteBodyTo(io.Discard, 0, e.Len()); err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
		})
	}
}

// BenchmarkDiskGet measures a hit on a verified file: open, read header and
// meta, copy the body to io.Discard, close.
func BenchmarkDiskGet(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			d := openTestDisk(b, DiskOptions{Dir: b.TempDir(), MaxBytes: 64 << 20})
			meta, body := testBlob("k", 1, bs.size)
			d.Put("k", meta, body)
			d.Flush()
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for b.Loop() {
				e, ok := d.Get("k")
				if !ok {
					b.Fatal("miss")
				}
				if _, err := e.WriteBodyTo(io.Discard, 0, e.Len()); err != nil {
					b.Fatal(err)
				}
				e.Close()
			}
		})
	}
}

// BenchmarkDiskPut measures the request-path cost of a Put and the writers'
// throughput (the loop waits for the queue at the end).
func BenchmarkDiskPut(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			d := openTestDisk(b, DiskOptions{Dir: b.TempDir(), MaxBytes: 256 << 20, QueueBytes: 1 << 30})
			meta, body := testBlob("k", 1, bs.size)
			b.SetBytes(int64(bs.size))
			i := 0
			for b.Loop() {
				d.Put(fmt.Sprint("k", i%1000), meta, body)
				i++
			}
			d.Flush()
		})
	}
}
