package qemu

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestFindFirmware(t *testing.T) {
	dir := t.TempDir()
	pair := func(name string) ovmfPair {
		return ovmfPair{filepath.Join(dir, name+"_CODE.fd"), filepath.Join(dir, name+"_VARS.fd")}
	}
	a, b, c := pair("a"), pair("b"), pair("c")
	// a: code only (an incomplete pair is skipped); b: complete; c: complete
	writeFile(t, a.code, "")
	for _, p := range []ovmfPair{b, c} {
		writeFile(t, p.code, "")
		writeFile(t, p.vars, "")
	}

	code, vars, err := findFirmware(UEFI, []ovmfPair{a, b, c})
	if err != nil || code != b.code || vars != b.vars {
		t.Errorf("uefi = %q, %q, %v; want the first complete pair %q, %q", code, vars, err, b.code, b.vars)
	}

	for _, fw := range []Firmware{BIOS, ""} {
		code, vars, err := findFirmware(fw, []ovmfPair{b})
		if code != "" || vars != "" || err != nil {
			t.Errorf("%q = %q, %q, %v; want empty paths, nil", fw, code, vars, err)
		}
	}

	_, _, err = findFirmware(UEFI, []ovmfPair{a})
	if err == nil || !strings.Contains(err.Error(), "install the ovmf package") ||
		!strings.Contains(err.Error(), a.code) || !strings.HasPrefix(err.Error(), "qemu: ") {
		t.Errorf("missing OVMF: err = %v; want it to name the ovmf package and the paths looked at", err)
	}

	if _, _, err := findFirmware("coreboot", nil); err == nil || !strings.Contains(err.Error(), `"coreboot"`) {
		t.Errorf("unknown firmware: err = %v", err)
	}
}
