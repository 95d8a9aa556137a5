package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spawn starts bin with args detached from the caller: its own session, no
// controlling terminal, stdin from /dev/null, stdout and stderr appended to
// logPath, env added to this process's environment. It outlives the command that started it (tofu's local-exec, a
// shell) and is stopped by pid through kill.
func spawn(bin string, args []string, logPath string, env ...string) (int, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	pid := cmd.Process.Pid
	// Reap it if it ends while this process still runs (a start that fails
	// half way); once this process is gone, init does.
	go func() { _ = cmd.Wait() }()
	return pid, nil
}

// alive reports whether pid is a live (not zombie) process running exe, the
// resolved path of the binary it was started from: a recycled pid running
// something else is not ours.
func alive(pid int, exe string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X' {
		return false
	}
	got, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		// Another user's process: not one we started.
		return false
	}
	return strings.TrimSuffix(got, " (deleted)") == exe
}

// kill ends pid (if it is still exe): SIGTERM, SIGKILL after grace, and
// waits until it is gone, at most grace more.
func kill(pid int, exe string, grace time.Duration) error {
	if !alive(pid, exe) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(pid, exe, grace) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(pid, exe, grace) {
		return nil
	}
	return fmt.Errorf("process %d (%s) did not end after SIGKILL", pid, filepath.Base(exe))
}

func waitGone(pid int, exe string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for alive(pid, exe) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
