// Package progress prints the per-region progress lines of the commands
// that work on many regions at once (kubecdn deploy, kubecdn infra): one
// line per event, the region's name in a column first, lines never
// interleaved.
package progress

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// Lines writes progress lines to Out; safe for concurrent use.
type Lines struct {
	mu  sync.Mutex
	out io.Writer
}

// New writes lines to out (io.Discard when nil).
func New(out io.Writer) *Lines {
	if out == nil {
		out = io.Discard
	}
	return &Lines{out: out}
}

// Printf writes "REGION  message" as one line.
func (l *Lines) Printf(region, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, "%-14s %s\n", region, fmt.Sprintf(format, args...))
}

// Parallel runs f(0) … f(n-1) with at most limit running at once (limit
// below 1 means 1) and returns when all started ones are done; once ctx
// ends no more are started.
func Parallel(ctx context.Context, n, limit int, f func(i int)) {
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}
