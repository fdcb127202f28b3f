package builder

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootResolveStaysInside(t *testing.T) {
	dir := t.TempDir()
	r := root{dir: dir}
	os.MkdirAll(filepath.Join(dir, "run/systemd"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	// An absolute symlink in the tree must resolve inside the tree.
	os.Symlink("/run/systemd", filepath.Join(dir, "etc/sd"))
	os.Symlink("../../..", filepath.Join(dir, "etc/up"))
	if got, _ := r.resolve("/etc/sd/x.conf"); got != filepath.Join(dir, "run/systemd/x.conf") {
		t.Errorf("absolute link: %s", got)
	}
	if got, _ := r.resolve("/etc/up/etc/passwd"); got != filepath.Join(dir, "etc/passwd") {
		t.Errorf("relative link above the root: %s", got)
	}
	if err := r.writeFile("/etc/sd/new/file", []byte("x"), 0o640, os.Getuid(), os.Getgid()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "run/systemd/new/file"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("written file: %v %v", st, err)
	}
	// Writing over a symlink replaces the link instead of following it.
	os.Symlink("/etc/hostname", filepath.Join(dir, "etc/link"))
	if err := r.writeFile("/etc/link", []byte("y"), 0o644, 0, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Lstat(filepath.Join(dir, "etc/link")); st.Mode()&os.ModeSymlink != 0 {
		t.Error("symlink followed instead of replaced")
	}
	os.Symlink("loop", filepath.Join(dir, "loop"))
	if _, err := r.resolve("/loop/x"); err == nil {
		t.Error("symlink loop resolved")
	}
}

func TestRootOwner(t *testing.T) {
	dir := t.TempDir()
	r := root{dir: dir}
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:998:997::/var/lib/app:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\napp:x:997:\n"), 0o644)
	if u, g, err := r.owner("app"); err != nil || u != 998 || g != 997 {
		t.Fatalf("owner app: %d %d %v", u, g, err)
	}
	if _, _, err := r.owner("nobody:app"); err == nil {
		t.Fatal("unknown user resolved")
	}
}

// readFile follows absolute and relative links inside the tree, never to
// the build host's files.
func TestRootReadFile(t *testing.T) {
	r := root{dir: t.TempDir()}
	if err := r.writeFile("/usr/lib/unit", []byte("in the tree"), 0o644, os.Getuid(), os.Getgid()); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"/etc/abs": "/usr/lib/unit", "/etc/rel": "../usr/lib/unit", "/etc/hosts-link": "/etc/hostname"} {
		if err := r.symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/etc/abs", "/etc/rel"} {
		if b, err := r.readFile(p); err != nil || string(b) != "in the tree" {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if b, err := r.readFile("/etc/hosts-link"); err == nil {
		t.Errorf("a link to a file the tree lacks read %q (the build host's?)", b)
	}
}
