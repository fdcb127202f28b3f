package imagediff

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/disk/ext4"
	"github.com/kiln-project/kiln/internal/testutil"
)

const statusA = `Package: base-files
Status: install ok installed
Architecture: amd64
Version: 13.8
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: curl
Status: install ok installed
Architecture: amd64
Version: 8.14.1-2

Package: wget
Status: install ok installed
Architecture: amd64
Version: 1.25.0-2

Package: gone-config
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
`

// tree writes the test's root tree under dir; plant changes it for B.
func tree(t *testing.T, dir string, plant bool) {
	t.Helper()
	write := func(name, content string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	status := statusA
	hosts, motd, tool, owner := "127.0.0.1 localhost\n", "hello\n", os.FileMode(0o755), 0
	link := "../lib/one"
	if plant {
		// curl at another version, wget removed, jq added.
		status = strings.Replace(status, "8.14.1-2", "8.14.1-3", 1)
		status = strings.Replace(status, "Package: wget\nStatus: install ok installed", "Package: wget\nStatus: deinstall ok config-files", 1)
		status += "\nPackage: jq\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.7.1-6\n"
		hosts = "127.0.0.1 localhosT\n" // same size, other content
		motd = "hello, world\n"         // other size
		tool = 0o755 | os.ModeSetuid
		owner = 1000
		link = "../lib/two"
	}
	write("etc/os-release", "ID=debian\n", 0o644)
	write("var/lib/dpkg/status", status, 0o644)
	write("etc/hosts", hosts, 0o644)
	write("etc/motd", motd, 0o644)
	write("usr/bin/tool", "#!/bin/sh\n", tool)
	write("srv/data", "x", 0o640)
	if err := os.Chown(filepath.Join(dir, "srv/data"), owner, owner); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(link, filepath.Join(dir, "usr/bin/link")); err != nil {
		t.Fatal(err)
	}
	if plant {
		write("opt/new/readme", "new\n", 0o644)
		write("etc/swapped/inside", "now a directory\n", 0o644)
	} else {
		write("var/old/a", "old a\n", 0o644)
		write("var/old/b", "old b\n", 0o644)
		write("etc/swapped", "a file\n", 0o644)
	}
}

// mkfs makes an ext4 filesystem image of tree at path with mkfs.ext4 -d.
func mkfs(t *testing.T, src, path string) {
	t.Helper()
	mk := testutil.NeedTool(t, "mkfs.ext4")
	if out, err := exec.Command(mk, "-q", "-F", "-d", src, path, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
}

func openFS(t *testing.T, path string) *ext4.FS {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	fsys, err := ext4.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// Two filesystems made by mkfs.ext4 from trees that differ by planted
// changes: the report names each, and nothing else; identical trees give
// an empty report.
func TestCompareFilesystems(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedRoot(t) // chown in the tree
	dir := t.TempDir()
	for _, side := range []struct {
		name  string
		plant bool
	}{{"a", false}, {"a2", false}, {"b", true}} {
		src := filepath.Join(dir, side.name)
		tree(t, src, side.plant)
		mkfs(t, src, filepath.Join(dir, side.name+".ext4"))
	}
	a, a2, b := openFS(t, filepath.Join(dir, "a.ext4")), openFS(t, filepath.Join(dir, "a2.ext4")), openFS(t, filepath.Join(dir, "b.ext4"))

	r, err := Compare(context.Background(), a, a2)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Empty() {
		t.Errorf("the same tree made twice: %+v", r)
	}

	r, err = Compare(context.Background(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	wantPkgs := []PackageChange{
		{Name: "curl", Arch: "amd64", From: "8.14.1-2", To: "8.14.1-3"},
		{Name: "jq", Arch: "amd64", To: "1.7.1-6"},
		{Name: "wget", Arch: "amd64", From: "1.25.0-2"},
	}
	if !reflect.DeepEqual(r.Packages, wantPkgs) {
		t.Errorf("packages:\n got %+v\nwant %+v", r.Packages, wantPkgs)
	}
	got := map[string]string{}
	for _, c := range r.Files {
		got[c.Path] = c.Change + " " + strings.Join(c.Fields, ",")
	}
	want := map[string]string{
		"/etc/hosts":           "changed content",
		"/etc/motd":            "changed size,content",
		"/usr/bin/tool":        "changed mode",
		"/srv/data":            "changed owner",
		"/usr/bin/link":        "changed target",
		"/etc/swapped":         "changed type,mode,size",
		"/etc/swapped/inside":  "added ",
		"/opt":                 "added ",
		"/opt/new":             "added ",
		"/opt/new/readme":      "added ",
		"/var/old":             "removed ",
		"/var/old/a":           "removed ",
		"/var/old/b":           "removed ",
		"/var/lib/dpkg/status": "changed size,content",
	}
	// mkfs.ext4 -d keeps the source's directory times, which differ: not
	// compared. lost+found is on both.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("files:\n got %v\nwant %v", got, want)
	}
	for _, c := range r.Files {
		switch c.Path {
		case "/etc/hosts":
			if c.A.Digest == "" || c.B.Digest == "" || c.A.Digest == c.B.Digest {
				t.Errorf("%s: digests %q and %q", c.Path, c.A.Digest, c.B.Digest)
			}
		case "/usr/bin/tool":
			if c.A.Mode != "0755" || c.B.Mode != "4755" {
				t.Errorf("%s: modes %s and %s", c.Path, c.A.Mode, c.B.Mode)
			}
		case "/srv/data":
			if c.A.UID != 0 || c.B.UID != 1000 || c.B.GID != 1000 {
				t.Errorf("%s: owners %d:%d and %d:%d", c.Path, c.A.UID, c.A.GID, c.B.UID, c.B.GID)
			}
		case "/usr/bin/link":
			if c.A.Target != "../lib/one" || c.B.Target != "../lib/two" {
				t.Errorf("%s: targets %q and %q", c.Path, c.A.Target, c.B.Target)
			}
		case "/opt/new/readme":
			if c.B == nil || c.B.Digest == "" || c.B.Size != 4 || c.A != nil {
				t.Errorf("%s: %+v %+v", c.Path, c.A, c.B)
			}
		}
	}
}

// Images reads both sides through the image readers: a qcow2 made from
// the raw filesystem (the root on the whole disk) compares equal to it.
func TestImagesQcow2AgainstRaw(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedRoot(t)
	dir := t.TempDir()
	tree(t, filepath.Join(dir, "a"), false)
	raw := filepath.Join(dir, "a.ext4")
	mkfs(t, filepath.Join(dir, "a"), raw)
	qcow := filepath.Join(dir, "a.qcow2")
	if out, err := exec.Command(testutil.NeedTool(t, "qemu-img"), "convert", "-c", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	r, err := Images(context.Background(), raw, qcow)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Empty() {
		t.Errorf("a filesystem and its qcow2: %+v", r)
	}
	var oe *OpenError
	if _, err := Images(context.Background(), raw, filepath.Join(dir, "missing.qcow2")); !errors.As(err, &oe) || !strings.Contains(err.Error(), "missing.qcow2") {
		t.Errorf("a missing image: %v", err)
	}
}
