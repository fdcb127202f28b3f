//go:build unix && !linux

package testregistry

import (
	"syscall"
)

// sysProcAttr puts docker-registry in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
