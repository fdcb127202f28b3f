package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// TestUntrustedImagesRefused: an image whose header points at a host file
// — a qcow2 backed by /etc/shadow, a vmdk descriptor naming it — is refused
// as a bake base, a kiln test target and a kiln lint argument, with a clear
// message and exit 2, and QEMU is never started (a stand-in qemu-system on
// PATH would leave a mark).
func TestUntrustedImagesRefused(t *testing.T) {
	testutil.Integration(t)
	qemuImg := testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	secret := filepath.Join(dir, "host-secret")
	os.WriteFile(secret, []byte(strings.Repeat("HOST SECRET ", 1<<16)), 0o600)
	if out, err := exec.Command(qemuImg, "create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", filepath.Join(dir, "evil.qcow2"), "1G").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "evil.vmdk"), []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \""+secret+"\" 0\n"), 0o644)

	bin := t.TempDir()
	mark := filepath.Join(dir, "qemu-was-started")
	os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte("#!/bin/sh\ntouch "+mark+"\nexit 1\n"), 0o755)
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}

	for _, img := range []struct{ name, why string }{{"evil.qcow2", "backing file"}, {"evil.vmdk", "vmdk"}} {
		os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("apiVersion: kiln/v1\nname: evil\nbase: ./"+img.name+"\n"), 0o644)
		for _, args := range [][]string{
			{"bake", "r.yaml", "--cache-dir", filepath.Join(dir, "cache")},
			{"test", img.name},
			{"lint", img.name},
		} {
			r := run(t, dir, env, args...)
			all := r.stdout + r.stderr
			if r.code != 2 || !strings.Contains(all, img.why) || strings.Contains(all, "HOST SECRET") {
				t.Errorf("kiln %s: exit %d, want 2 and a message naming the %s:\n%s", strings.Join(args, " "), r.code, img.why, all)
			}
		}
	}
	if _, err := os.Stat(mark); err == nil {
		t.Error("QEMU was started for an untrusted image")
	}
}
