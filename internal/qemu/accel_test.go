package qemu

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetectAccel(t *testing.T) {
	const (
		flagsNoVirt = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae hypervisor lahf_lm\n\nprocessor\t: 1\nflags\t\t: fpu vme\n"
		flagsVMX    = "processor\t: 0\nflags\t\t: fpu vme vmx ept\nvmx flags\t: vnmi preemption_timer\n"
		flagsSVM    = "processor\t: 0\nflags\t\t: fpu svm npt\n"
		// a "vmx flags" line alone (no vmx in "flags") is not enough
		vmxFlagsOnly = "flags\t\t: fpu\nvmx flags\t: vnmi\n"
	)
	ok := func(*os.File) error { return nil }
	refuse := func(*os.File) error { return errors.New("inappropriate ioctl for device") }
	tests := []struct {
		name      string
		cpuinfo   string // "" = the file is missing
		kvm       string // "file", "dir" or "" (missing)
		probe     func(*os.File) error
		want      Accel
		reasonHas string
	}{
		{"emulated kvm without vmx/svm", flagsNoVirt, "file", ok, TCG,
			"no vmx/svm in CPUINFO: KVM is not hardware virtualization; using TCG"},
		{"vmx and usable kvm", flagsVMX, "file", ok, KVM, "CPUINFO has vmx and KVM is usable; using KVM"},
		{"svm and usable kvm", flagsSVM, "file", ok, KVM, "has svm"},
		{"vmx flags line only", vmxFlagsOnly, "file", ok, TCG, "no vmx/svm"},
		{"no kvm device, no flags", flagsNoVirt, "", ok, TCG, "no KVM and no vmx/svm in CPUINFO; using TCG"},
		{"no kvm device, vmx", flagsVMX, "", ok, TCG, "KVM does not exist (is the kvm module loaded?)"},
		{"kvm cannot be opened", flagsVMX, "dir", ok, TCG, "cannot open KVM"},
		{"probe refuses", flagsVMX, "file", refuse, TCG, "does not answer like KVM: inappropriate ioctl"},
		{"cpuinfo unreadable", "", "file", ok, TCG, "cannot read CPUINFO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cpuinfo := filepath.Join(dir, "cpuinfo")
			if tt.cpuinfo != "" {
				writeFile(t, cpuinfo, tt.cpuinfo)
			}
			kvm := filepath.Join(dir, "kvm")
			switch tt.kvm {
			case "file":
				writeFile(t, kvm, "")
			case "dir":
				if err := os.Mkdir(kvm, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, reason := detectAccel(cpuinfo, kvm, tt.probe)
			reason = strings.NewReplacer(cpuinfo, "CPUINFO", kvm, "KVM").Replace(reason)
			if got != tt.want || !strings.Contains(reason, tt.reasonHas) {
				t.Errorf("detectAccel = %q, %q; want %q with %q", got, reason, tt.want, tt.reasonHas)
			}
		})
	}
}

// TestDetectAccelHere runs the real detection: whatever it picks, it must
// say why, and it must not pick KVM without vmx/svm.
func TestDetectAccelHere(t *testing.T) {
	a, reason := DetectAccel()
	t.Logf("DetectAccel: %s (%s)", a, reason)
	if reason == "" {
		t.Error("empty reason")
	}
	if virt, err := cpuVirtFlag(cpuinfoPath); err == nil && virt == "" && a == KVM {
		t.Errorf("picked KVM without vmx/svm in %s", cpuinfoPath)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
