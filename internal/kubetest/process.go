package kubetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child process (etcd or kube-apiserver) whose stdout and
// stderr go to a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *logWriter
	done chan struct{} // closed when the process has exited
	err  error         // how it exited; read after done
}

// startProcess starts bin with args, its output in logPath; onLine, if not
// nil, sees every line of output as it is written.
func startProcess(name, bin, logPath string, args []string, onLine func(string)) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	lw := &logWriter{f: f, onLine: onLine}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = lw
	cmd.Stderr = lw
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: lw, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited returns a description of the exit if the process has exited.
func (p *process) exited() (string, bool) {
	select {
	case <-p.done:
		return fmt.Sprintf("%s exited: %v", p.name, p.err), true
	default:
		return "", false
	}
}

// stop asks the process to end (SIGTERM), kills it after grace (at once if
// grace is 0) and waits for it.
func (p *process) stop(grace time.Duration) {
	if _, gone := p.exited(); gone {
		return
	}
	if grace > 0 {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logWriter writes a child's output to a file, keeps its last lines for
// error messages, and hands complete lines to onLine.
type logWriter struct {
	mu      sync.Mutex
	f       *os.File
	onLine  func(string)
	partial []byte
	tail    []string
}

const tailLines = 25

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.f.Write(b)
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.tail = append(w.tail, line)
		if len(w.tail) > tailLines {
			w.tail = w.tail[len(w.tail)-tailLines:]
		}
		if w.onLine != nil {
			w.onLine(line)
		}
	}
	return n, err
}

// lastLines returns the last lines written, each cut to 400 bytes.
func (w *logWriter) lastLines() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	lines := append(w.tail, string(w.partial))
	for _, l := range lines {
		if l == "" {
			continue
		}
		if len(l) > 400 {
			l = l[:400] + "…"
		}
		b.WriteString("    ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// contains reports whether any kept line contains s.
func (w *logWriter) contains(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.tail {
		if strings.Contains(l, s) {
			return true
		}
	}
	return strings.Contains(string(w.partial), s)
}
