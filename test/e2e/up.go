package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// UpProc is a running `kubecdn up` (or any kubecdn command) started by
// StartUp; it is killed when the test ends if still running.
type UpProc struct {
	Cmd    *exec.Cmd
	Stdout *SyncBuffer
	Stderr *SyncBuffer
	Done   chan struct{} // closed once the process exited; Err is then set
	Err    error
}

// StartUp starts bin with args (no admin token from the environment). When
// the test fails, the child's stdout and the tail of its stderr are logged.
func StartUp(t *testing.T, bin string, args ...string) *UpProc {
	t.Helper()
	p := &UpProc{Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, Done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	p.Cmd.Env = append(os.Environ(), "KUBECDN_ADMIN_TOKEN=")
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Err = p.Cmd.Wait(); close(p.Done) }()
	t.Cleanup(func() {
		select {
		case <-p.Done:
		default:
			p.Cmd.Process.Kill()
			<-p.Done
		}
		if t.Failed() {
			t.Logf("up stdout:\n%s\nup stderr (tail):\n%s", p.Stdout, Tail(p.Stderr.String(), 40))
		}
	})
	return p
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitBanner waits up to 20 s until up printed its banner and its control
// API at control (host:port) answers.
func (p *UpProc) WaitBanner(t *testing.T, control string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.Done:
			t.Fatalf("up exited early: %v", p.Err)
		default:
		}
		if strings.Contains(p.Stdout.String(), "Ctrl-C stops everything.") {
			if resp, err := c.Get("http://" + control + "/healthz"); err == nil {
				resp.Body.Close()
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no banner within 20s")
}

// Stop sends SIGINT (Ctrl-C) and waits up to 15 s for a clean exit.
func (p *UpProc) Stop(t *testing.T) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done:
	case <-time.After(15 * time.Second):
		t.Fatal("up did not stop within 15s of SIGINT")
	}
	if p.Err != nil {
		t.Fatalf("up exited with %v after SIGINT", p.Err)
	}
}

// Children lists the processes named comm (as in /proc/PID/comm) whose
// parent is ppid; nil where there is no /proc.
func Children(ppid int, comm string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i, j := strings.LastIndexByte(s, ')'), strings.IndexByte(s, '(')
		if i < 0 || j < 0 || s[j+1:i] != comm {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pid, _ := strconv.Atoi(e.Name())
			out = append(out, pid)
		}
	}
	return out
}
