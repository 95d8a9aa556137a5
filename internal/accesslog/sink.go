package accesslog

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// Sink is where a Logger's lines go: standard output, or a file.
type Sink interface {
	io.Writer
	// Reopen opens a file sink's path anew (after logrotate moved the file
	// away: the edge reopens on SIGHUP); a no-op for standard output.
	Reopen() error
	Close() error
}

// Destinations of Open.
const (
	Stdout = "-"
	Off    = "off"
)

// Open opens dest: "-" is stdout, "off" is no sink (nil, nil), anything
// else a file appended to (created 0644 if missing).
func Open(dest string, stdout io.Writer) (Sink, error) {
	switch dest {
	case Off:
		return nil, nil
	case Stdout:
		return writerSink{stdout}, nil
	}
	if dest == "" {
		return nil, fmt.Errorf(`access log: empty destination: want "-" (standard output), "off" or a file path`)
	}
	f, err := openAppend(dest)
	if err != nil {
		return nil, err
	}
	return &fileSink{path: dest, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

type writerSink struct{ io.Writer }

func (writerSink) Reopen() error { return nil }
func (writerSink) Close() error  { return nil }

// fileSink is a file that Reopen swaps for a new one at the same path.
type fileSink struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func (s *fileSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Write(p)
}

func (s *fileSink) Reopen() error {
	f, err := openAppend(s.path)
	if err != nil {
		return err // keep writing to the file we have
	}
	s.mu.Lock()
	old := s.f
	s.f = f
	s.mu.Unlock()
	return old.Close()
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}
