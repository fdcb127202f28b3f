package iso

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// dirNames lists dir, to catch stray temporary files.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, de := range des {
		n = append(n, de.Name())
	}
	return n
}

func TestWriteFile(t *testing.T) {
	old := syscall.Umask(0o022) // process-wide: this test must not be parallel
	defer syscall.Umask(old)
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "seed.img")
			opts := Options{Format: f, ModTime: testTime}
			if err := WriteFile(path, 0o600, opts, seedEntries()); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, write(t, opts, seedEntries())) {
				t.Error("file content differs from Write's output")
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", st.Mode().Perm())
			}
			if n := dirNames(t, dir); len(n) != 1 || n[0] != "seed.img" {
				t.Errorf("directory holds %q, want only seed.img", n)
			}
			// 0o664 is wider than the umask allows: perm must still win.
			if err := WriteFile(path, 0o664, opts, seedEntries()); err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o664 {
				t.Errorf("mode %v after rewrite, want 0664 despite umask 022", st.Mode().Perm())
			}
		})
	}
}

func TestWriteFileFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.iso")

	// Invalid entries: nothing at path, no temporary file.
	err := WriteFile(path, 0o644, Options{}, []Entry{{Name: "a/b"}})
	if err == nil || !strings.HasPrefix(err.Error(), "iso: ") {
		t.Fatalf("invalid entry: error %v", err)
	}
	if n := dirNames(t, dir); len(n) != 0 {
		t.Errorf("after invalid input the directory holds %q", n)
	}

	// An existing seed survives a failed rewrite untouched.
	if err := WriteFile(path, 0o644, Options{ModTime: testTime}, seedEntries()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if err := WriteFile(path, 0o644, Options{}, []Entry{{Name: ""}}); err == nil {
		t.Fatal("empty name accepted")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("failed WriteFile changed the existing file")
	}

	// The rename fails (path is a non-empty directory) after the data was
	// written: the temporary file must be removed.
	blocker := filepath.Join(dir, "blocker")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = WriteFile(blocker, 0o644, Options{}, seedEntries())
	if err == nil || !strings.HasPrefix(err.Error(), "iso: ") || !strings.Contains(err.Error(), "rename") {
		t.Fatalf("rename over a directory: error %v", err)
	}
	if n := dirNames(t, dir); len(n) != 2 || n[0] != "blocker" || n[1] != "seed.iso" {
		t.Errorf("after a failed rename the directory holds %q", n)
	}

	// Missing directory.
	if err := WriteFile(filepath.Join(dir, "nope", "seed.iso"), 0o644, Options{}, seedEntries()); err == nil || !strings.HasPrefix(err.Error(), "iso: ") {
		t.Errorf("missing directory: error %v", err)
	}
}

func TestWriteFileRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := WriteFile("seed.iso", 0o644, Options{}, seedEntries()); err != nil {
		t.Fatal(err)
	}
	if n := dirNames(t, dir); len(n) != 1 || n[0] != "seed.iso" {
		t.Errorf("directory holds %q", n)
	}
}
