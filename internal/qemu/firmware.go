package qemu

import (
	"fmt"
	"os"
	"strings"
)

// Firmware is the guest firmware: SeaBIOS (QEMU's default) or OVMF.
type Firmware string

const (
	// BIOS boots through SeaBIOS, QEMU's built-in legacy BIOS.
	BIOS Firmware = "bios"
	// UEFI boots through OVMF (EDK II for QEMU), loaded as two pflash
	// devices: read-only code and a per-machine writable variable store.
	UEFI Firmware = "uefi"
)

// ovmfPair is one known location of matching OVMF code and variable
// template files (a 4 MiB code image needs the 4 MiB vars template).
type ovmfPair struct{ code, vars string }

// ovmfCandidates lists where distributions install OVMF without Secure
// Boot (the secboot builds need SMM and enrolled keys), in the order
// FindFirmware tries them.
var ovmfCandidates = []ovmfPair{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},         // Debian 12+, Ubuntu 22.04+
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},               // older Debian and Ubuntu
	{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},     // Fedora, RHEL
	{"/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"}, // Arch
	{"/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd"},   // QEMU's own bundle
}

// FindFirmware returns the OVMF code and variable-template paths for UEFI,
// and empty paths for BIOS (SeaBIOS is built into QEMU). The template must
// never be handed to a guest: [Start] copies it into the machine's work
// directory first.
func FindFirmware(fw Firmware) (code, vars string, err error) {
	return findFirmware(fw, ovmfCandidates)
}

func findFirmware(fw Firmware, candidates []ovmfPair) (code, vars string, err error) {
	switch fw {
	case BIOS, "":
		return "", "", nil
	case UEFI:
	default:
		return "", "", fmt.Errorf("qemu: unknown firmware %q (want bios or uefi)", fw)
	}
	var looked []string
	for _, c := range candidates {
		if isFile(c.code) && isFile(c.vars) {
			return c.code, c.vars, nil
		}
		looked = append(looked, c.code)
	}
	return "", "", fmt.Errorf("qemu: no OVMF firmware for uefi (looked for %s): install the ovmf package",
		strings.Join(looked, ", "))
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
