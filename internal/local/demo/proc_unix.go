//go:build unix

package demo

import (
	"os/exec"
	"syscall"
	"time"
)

// inGroup makes cmd the leader of a new process group that ctx's end
// stops as a whole: SIGTERM first, SIGKILL 3 s later. On Linux the group's
// leader also gets SIGKILL when up dies without stopping it.
func inGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(cmd.SysProcAttr)
	cmd.Cancel = func() error { return killGroup(cmd, syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
}

// killGroup sends sig to cmd's process group.
func killGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}
