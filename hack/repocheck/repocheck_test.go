package repocheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxTracked is the largest file the repository may hold: embedded schemas
// and test data are well under it; build outputs are not.
const maxTracked = 2 << 20

// TestNoBuildOutputs: no compiled program or oversized file is tracked
// (a 16 MB bench binary once was).
func TestNoBuildOutputs(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	top := strings.TrimSpace(string(root))
	out, err := exec.Command("git", "-C", top, "ls-files", "-z").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		p := filepath.Join(top, name)
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		if st.Size() > maxTracked {
			t.Errorf("%s is %d bytes: build outputs and large files do not belong in git", name, st.Size())
		}
		head := make([]byte, 4)
		if f, err := os.Open(p); err == nil {
			f.Read(head)
			f.Close()
		}
		if bytes.Equal(head, []byte("\x7fELF")) {
			t.Errorf("%s is a compiled program: build outputs do not belong in git (add it to .gitignore)", name)
		}
	}
}
