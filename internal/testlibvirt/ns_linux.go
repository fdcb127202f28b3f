//go:build linux

package testlibvirt

import (
	"syscall"
)

// sysProcAttr starts a daemon in a mount namespace of its own (Go makes
// its mounts private, so the binds never reach the host), in a process
// group of its own, and has the kernel kill it should the test binary die
// without cleaning up.
func sysProcAttr() (*syscall.SysProcAttr, error) {
	return &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Setpgid:      true,
		Pdeathsig:    syscall.SIGKILL,
	}, nil
}
