//go:build linux

package qemu

import (
	"syscall"
	"unsafe"
)

// canWaitWithoutReaping says that waitExited really waits (Linux has
// waitid with WNOWAIT).
const canWaitWithoutReaping = true

// sysProcAttr puts QEMU in a process group of its own, so that signals for
// kiln's terminal group (Ctrl-C) do not reach it and it can be killed with
// everything it forked, and asks the kernel to kill it should kiln die
// without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitExited blocks until process pid has exited, without reaping it: the
// zombie keeps its pid, and so its process group id, from being reused
// while the group is still signalled.
func waitExited(pid int) error {
	const pPID = 1     // P_PID in <sys/wait.h>
	var info [128]byte // siginfo_t, filled and ignored
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		default:
			return errno
		}
	}
}
