//go:build !linux

package kubetest

import "syscall"

// sysProcAttr: outside Linux a child outlives a killed test binary; Cleanup
// still stops it when the test ends normally.
func sysProcAttr() *syscall.SysProcAttr { return nil }
