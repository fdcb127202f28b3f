//go:build linux

package testlibvirt

import (
	"syscall"
)

// sysProcAttr starts a daemon in a mount namespace of its own (Go makes
// its mounts private, so the binds never reach the host), with netns in a
// network namespace of its own too, in a process group of its own, and has
// the kernel kill it should the test binary die without cleaning up.
func sysProcAttr(netns bool) (*syscall.SysProcAttr, error) {
	flags := uintptr(syscall.CLONE_NEWNS)
	if netns {
		flags |= syscall.CLONE_NEWNET
	}
	return &syscall.SysProcAttr{
		Unshareflags: flags,
		Setpgid:      true,
		Pdeathsig:    syscall.SIGKILL,
	}, nil
}
