//go:build linux

package testlibvirt

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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

// dialIn connects to addr from inside the network namespace of process
// pid: on a goroutine whose thread alone enters that namespace. The thread
// stays locked, so it ends with the goroutine and no other goroutine ever
// runs in the namespace; the connection works from any thread.
func dialIn(pid int, network, addr string, timeout time.Duration) (net.Conn, error) {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter the network namespace of %d: %w", pid, err)}
			return
		}
		c, err := net.DialTimeout(network, addr, timeout)
		done <- result{c, err}
	}()
	r := <-done
	return r.conn, r.err
}
