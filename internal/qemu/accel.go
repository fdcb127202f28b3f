package qemu

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// Accel is a QEMU accelerator.
type Accel string

const (
	// KVM is hardware-assisted virtualization through /dev/kvm.
	KVM Accel = "kvm"
	// TCG is QEMU's portable binary translator: slow, but works anywhere.
	TCG Accel = "tcg"
)

// Paths DetectAccel looks at.
const (
	cpuinfoPath = "/proc/cpuinfo"
	kvmPath     = "/dev/kvm"
)

// kvmAPIVersion is the only KVM API version Linux has ever shipped
// (KVM_API_VERSION in <linux/kvm.h>).
const kvmAPIVersion = 12

// DetectAccel picks the accelerator that really works on this host and
// says why, in a sentence fit for a log line or a CLI note.
//
// KVM is chosen only when /proc/cpuinfo lists the vmx (Intel) or svm (AMD)
// flag, /dev/kvm opens read-write and answers KVM_GET_API_VERSION with 12.
// A /dev/kvm without those CPU flags is not hardware virtualization (some
// sandboxes emulate the device): a Linux guest hangs under it, so TCG is
// chosen instead.
func DetectAccel() (Accel, string) {
	return detectAccel(cpuinfoPath, kvmPath, probeKVM)
}

// detectAccel is DetectAccel with its inputs injectable: the cpuinfo file,
// the KVM device node and the probe run on the opened device.
func detectAccel(cpuinfo, kvmDev string, probe func(*os.File) error) (Accel, string) {
	virt, err := cpuVirtFlag(cpuinfo)
	if err != nil {
		return TCG, fmt.Sprintf("cannot read %s (%v); using TCG", cpuinfo, err)
	}
	if _, err := os.Stat(kvmDev); errors.Is(err, fs.ErrNotExist) {
		if virt == "" {
			return TCG, fmt.Sprintf("no %s and no vmx/svm in %s; using TCG", kvmDev, cpuinfo)
		}
		return TCG, fmt.Sprintf("%s has %s but %s does not exist (is the kvm module loaded?); using TCG", cpuinfo, virt, kvmDev)
	}
	if virt == "" {
		return TCG, fmt.Sprintf("no vmx/svm in %s: %s is not hardware virtualization; using TCG", cpuinfo, kvmDev)
	}
	f, err := os.OpenFile(kvmDev, os.O_RDWR, 0)
	if err != nil {
		hint := ""
		if errors.Is(err, fs.ErrPermission) {
			hint = " (add the user to the kvm group)"
		}
		return TCG, fmt.Sprintf("cannot open %s: %v%s; using TCG", kvmDev, err, hint)
	}
	defer f.Close()
	if probe != nil {
		if err := probe(f); err != nil {
			return TCG, fmt.Sprintf("%s does not answer like KVM: %v; using TCG", kvmDev, err)
		}
	}
	return KVM, fmt.Sprintf("%s has %s and %s is usable; using KVM", cpuinfo, virt, kvmDev)
}

// cpuVirtFlag returns "vmx" or "svm" when a "flags" line of the cpuinfo
// file lists it, and "" when none does.
func cpuVirtFlag(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, flag := range strings.Fields(val) {
			if flag == "vmx" || flag == "svm" {
				return flag, nil
			}
		}
	}
	return "", sc.Err()
}

// probeKVM asks the opened device for its KVM API version, a cheap ioctl
// that anything but a KVM device node refuses.
func probeKVM(f *os.File) error {
	const kvmGetAPIVersion = 0xAE00 // _IO(KVMIO=0xAE, 0x00)
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", errno)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("KVM_GET_API_VERSION returned %d, want %d", v, kvmAPIVersion)
	}
	return nil
}
