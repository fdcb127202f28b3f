//go:build !linux

package testlibvirt

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// sysProcAttr: the daemons' private directories are mount namespaces,
// which only Linux has.
func sysProcAttr(netns bool) (*syscall.SysProcAttr, error) {
	return nil, errors.New("testlibvirt needs Linux (mount namespaces)")
}

func dialIn(pid int, network, addr string, timeout time.Duration) (net.Conn, error) {
	return nil, errors.New("testlibvirt needs Linux (network namespaces)")
}
