//go:build linux

package testregistry

import (
	"syscall"
)

// sysProcAttr puts docker-registry in a process group of its own, killed
// as a whole by Stop, and has the kernel kill it should the test binary
// die without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
