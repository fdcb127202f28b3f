package lint

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// cleanTree makes a minimal root filesystem that breaks no rule.
func cleanTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"etc/os-release":                 "PRETTY_NAME=\"Test Linux\"\nID=test\n",
		"etc/machine-id":                 "uninitialized\n",
		"etc/cloud/cloud.cfg":            "users: [default]\n",
		"etc/cloud/cloud.cfg.d/90-x.cfg": "datasource_list: [NoCloud, None]\n",
		"etc/ssh/sshd_config":            "PermitRootLogin no\n",
		"var/log/wtmp":                   "",
		"var/lib/apt/lists/lock":         "",
		"root/.bashrc":                   "# fine\n",
		"home/ops/.profile":              "# fine\n",
	}
	for p, c := range files {
		write(t, dir, p, c)
	}
	for _, d := range []string{"tmp", "var/tmp", "var/lib/cloud", "var/lib/dhcp", "var/cache/apt/archives/partial", "run/systemd/resolve"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(dir, "etc/resolv.conf"))
	return dir
}

func write(t *testing.T, dir, p, content string) {
	t.Helper()
	full := filepath.Join(dir, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// plants make exactly one rule fail.
var plants = map[string]func(t *testing.T, dir string){
	"machine-id": func(t *testing.T, d string) { write(t, d, "etc/machine-id", "0123456789abcdef0123456789abcdef\n") },
	"dbus-machine-id": func(t *testing.T, d string) {
		write(t, d, "var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n")
	},
	"ssh-host-keys": func(t *testing.T, d string) {
		write(t, d, "etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
	},
	"tls-snakeoil": func(t *testing.T, d string) {
		write(t, d, "etc/ssl/private/ssl-cert-snakeoil.key", "-----BEGIN PRIVATE KEY-----\n")
	},
	"cloud-init-state": func(t *testing.T, d string) {
		write(t, d, "var/lib/cloud/instances/i-123/datasource", "DataSourceNoCloud\n")
	},
	"cloud-init-logs": func(t *testing.T, d string) { write(t, d, "var/log/cloud-init.log", "2026-11-26 boot\n") },
	"dhcp-leases": func(t *testing.T, d string) {
		write(t, d, "var/lib/dhcp/dhclient.eth0.leases", "lease { fixed-address 10.0.2.15; }\n")
	},
	"shell-history": func(t *testing.T, d string) { write(t, d, "home/ops/.bash_history", "sudo cat /etc/shadow\n") },
	"package-cache": func(t *testing.T, d string) {
		write(t, d, "var/cache/apt/archives/htop_3.2.2-2_amd64.deb", "!<arch>\n")
	},
	"random-seed": func(t *testing.T, d string) { write(t, d, "var/lib/systemd/random-seed", "0123456789") },
	"resolv-conf": func(t *testing.T, d string) {
		os.Remove(filepath.Join(d, "etc/resolv.conf"))
		write(t, d, "etc/resolv.conf", "nameserver 192.168.1.1\n")
	},
	"datasource-list": func(t *testing.T, d string) { os.Remove(filepath.Join(d, "etc/cloud/cloud.cfg.d/90-x.cfg")) },
	"build-logs":      func(t *testing.T, d string) { write(t, d, "var/log/dpkg.log", "2026-11-26 install htop\n") },
	"temp-files":      func(t *testing.T, d string) { write(t, d, "tmp/build.sh", "#!/bin/sh\n") },
	"policy-rc":       func(t *testing.T, d string) { write(t, d, "usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n") },
	"first-boot-work": func(t *testing.T, d string) {
		write(t, d, "usr/lib/systemd/catalog/systemd.catalog", "-- f77379a8490b408bbe5f6940505a777b\nSubject: The journal has been started\n")
	},
}

func rulesOf(vs []Violation) string {
	var names []string
	seen := map[string]bool{}
	for _, v := range vs {
		if !seen[v.Rule] {
			seen[v.Rule] = true
			names = append(names, v.Rule)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func TestEveryRuleHasAPlant(t *testing.T) {
	for _, r := range Rules {
		if plants[r.Name] == nil {
			t.Errorf("rule %s has no planted-violation test", r.Name)
		}
	}
}

// TestCheckFS plants each violation in a directory tree: lint names exactly
// that rule, and the clean tree has no violation at all.
func TestCheckFS(t *testing.T) {
	if vs := CheckFS(os.DirFS(cleanTree(t)).(FS)); len(vs) != 0 {
		t.Fatalf("clean tree: %v", vs)
	}
	for rule, plant := range plants {
		t.Run(rule, func(t *testing.T) {
			dir := cleanTree(t)
			plant(t, dir)
			vs := CheckFS(os.DirFS(dir).(FS))
			if got := rulesOf(vs); got != rule {
				t.Fatalf("violations %v, want only %s", vs, rule)
			}
		})
	}
}

func TestDatasourceListOrder(t *testing.T) {
	dir := cleanTree(t)
	write(t, dir, "etc/cloud/cloud.cfg.d/99-late.cfg", "datasource_list: [ Ec2, NoCloud ]\n")
	vs := CheckFS(os.DirFS(dir).(FS))
	if len(vs) != 1 || !strings.Contains(vs[0].Message, `starts with "Ec2"`) {
		t.Fatalf("%v", vs)
	}
}

// mkImage makes a qcow2 (zstd) disk whose whole-disk ext4 filesystem is
// made from tree. With dirtyFree, the file is first filled with random
// data that mkfs leaves in the free blocks.
func mkImage(t *testing.T, tree string, dirtyFree bool) string {
	t.Helper()
	mkfs := testutil.NeedTool(t, "mkfs.ext4")
	qimg := testutil.NeedTool(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if dirtyFree {
		junk := make([]byte, 1<<20)
		rand.Read(junk)
		for i := 0; i < 64; i++ {
			f.Write(junk)
		}
	}
	f.Truncate(64 << 20)
	f.Close()
	if out, err := exec.Command(mkfs, "-q", "-F", "-E", "nodiscard", "-d", tree, raw).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	img := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command(qimg, "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", raw, img).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	return img
}

// TestImage lints real qcow2 images: the clean one passes, each planted
// violation is named, and so is free space full of old data.
func TestImage(t *testing.T) {
	testutil.Integration(t)
	ctx := context.Background()
	rep, err := Image(ctx, mkImage(t, cleanTree(t), false))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.OS != "Test Linux" || rep.Format != "qcow2" || rep.Root != "whole disk" {
		t.Fatalf("clean image: %+v", rep)
	}
	for _, rule := range []string{"machine-id", "ssh-host-keys", "resolv-conf", "shell-history", "package-cache", "first-boot-work"} {
		dir := cleanTree(t)
		plants[rule](t, dir)
		rep, err := Image(ctx, mkImage(t, dir, false))
		if err != nil {
			t.Fatal(err)
		}
		if got := rulesOf(rep.Violations); got != rule {
			t.Errorf("%s planted: violations %v", rule, rep.Violations)
		}
	}
	rep, err = Image(ctx, mkImage(t, cleanTree(t), true))
	if err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(rep.Violations); got != FreeSpaceRule {
		t.Errorf("dirty free space: violations %v", rep.Violations)
	}
}

func TestImageNotADisk(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "notes.txt")
	os.WriteFile(odd, []byte(strings.Repeat("not a disk", 300000)), 0o644)
	if _, err := Image(context.Background(), odd); err == nil || !strings.Contains(err.Error(), "not a raw disk") {
		t.Errorf("text file: %v", err)
	}
	blank := filepath.Join(dir, "blank.raw")
	os.WriteFile(blank, make([]byte, 4<<20), 0o644)
	if _, err := Image(context.Background(), blank); err == nil || !strings.Contains(err.Error(), "no Linux root filesystem") {
		t.Errorf("blank disk: %v", err)
	}
}
