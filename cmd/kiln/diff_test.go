package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

// kiln diff on two small root filesystems made by mkfs.ext4 (raw images,
// the root on the whole disk): the same tree twice is no difference (exit
// 0, nothing printed); a planted change in a package's version, a file's
// content, mode and owner is each named (exit 1), in text and JSON; an
// argument that is no image is exit 2, named.
func TestDiffCLI(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedRoot(t) // chown in the trees
	mkfs := testutil.NeedTool(t, "mkfs.ext4")
	dir := t.TempDir()
	mkTree := func(name, version, motd string, mode os.FileMode, uid int) {
		src := filepath.Join(dir, name)
		files := map[string]string{
			"etc/os-release":      "ID=debian\n",
			"etc/motd":            motd,
			"var/lib/dpkg/status": "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + version + "\n",
		}
		for p, content := range files {
			os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
			if err := os.WriteFile(filepath.Join(src, p), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Join(src, "etc/motd"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(src, "etc/motd"), uid, uid); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(mkfs, "-q", "-F", "-d", src, filepath.Join(dir, name+".img"), "8M").CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
	}
	mkTree("a", "8.14.1-2", "hello\n", 0o644, 0)
	mkTree("a2", "8.14.1-2", "hello\n", 0o644, 0)
	mkTree("b", "8.14.1-3", "HELLO\n", 0o600, 1000)

	if r := run(t, dir, nil, "diff", "a.img", "a2.img"); r.code != 0 || r.stdout != "" {
		t.Errorf("the same tree: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r := run(t, dir, nil, "diff", "a.img", "b.img")
	for _, want := range []string{
		"~ package curl 8.14.1-2 -> 8.14.1-3 (amd64)",
		"~ /etc/motd  mode 0644 -> 0600, owner 0:0 -> 1000:1000, content sha256:",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("diff lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 1 {
		t.Errorf("images that differ: exit %d, want 1\n%s", r.code, r.stderr)
	}
	r = run(t, dir, nil, "diff", "-O", "json", "a.img", "b.img")
	env := envelopeOf(t, r)
	data := env["data"].(map[string]any)
	if r.code != 1 || data["same"] != false || len(data["packages"].([]any)) != 1 || len(data["files"].([]any)) != 2 {
		t.Errorf("json: exit %d %v", r.code, env)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)
	if r = run(t, dir, nil, "diff", "a.img", "notes.txt"); r.code != 2 || !strings.Contains(r.stderr, "notes.txt") {
		t.Errorf("a text file: exit %d\n%s", r.code, r.stderr)
	}
}
