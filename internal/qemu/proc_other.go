//go:build unix && !linux

package qemu

import "syscall"

// canWaitWithoutReaping is false: without waitid's WNOWAIT a process group
// kill may race with the reaping of QEMU.
const canWaitWithoutReaping = false

// sysProcAttr puts QEMU in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func waitExited(int) error { return nil }
