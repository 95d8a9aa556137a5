package kubetest

import (
	"syscall"
)

// sysProcAttr kills the servers when the test binary dies (a test timeout's
// panic, a ^C), so no etcd or kube-apiserver outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
