//go:build unix && !linux

package demo

import "syscall"

// setPdeathsig: outside Linux an ffmpeg outlives an up that was killed
// (SIGKILL); a stopped up still stops it.
func setPdeathsig(*syscall.SysProcAttr) {}
