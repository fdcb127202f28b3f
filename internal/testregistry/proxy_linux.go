//go:build linux

package testregistry

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// waitSent waits, until deadline, for the kernel to have sent and seen
// acknowledged everything written to c. An abortive close (RST) throws
// away what is still queued, and the client would get fewer bytes than
// the proxy counted as served.
func waitSent(c net.Conn, deadline time.Time) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	for time.Now().Before(deadline) {
		var queued int32 // a C int
		_ = rc.Control(func(fd uintptr) {
			// SIOCOUTQ: bytes not yet acknowledged by the peer.
			_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&queued)))
			if errno != 0 {
				queued = 0
			}
		})
		if queued == 0 {
			return
		}
		time.Sleep(time.Millisecond) // polling the queue, bounded by deadline
	}
}
