//go:build !linux

package testlibvirt

import (
	"errors"
	"syscall"
)

// sysProcAttr: the daemons' private directories are mount namespaces,
// which only Linux has.
func sysProcAttr(netns bool) (*syscall.SysProcAttr, error) {
	return nil, errors.New("testlibvirt needs Linux (mount namespaces)")
}
