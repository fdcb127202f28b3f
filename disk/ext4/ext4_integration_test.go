package ext4

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kiln-project/kiln/internal/testutil"
)

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(testutil.NeedTool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func openImage(t *testing.T, path string) *FS {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// extentDepth is the depth of a file's extent tree as debugfs reports it.
func extentDepth(t *testing.T, img, file string) int {
	out := tool(t, "debugfs", "-R", "ex "+file, img)
	m := regexp.MustCompile(`(?m)^\s*\d+/\s*(\d+)\s`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debugfs ex %s:\n%s", file, out)
	}
	d, _ := strconv.Atoi(m[1])
	return d
}

// TestMkfsVariants builds the test tree with mkfs -d in each flavour kiln
// may meet and reads it all back.
func TestMkfsVariants(t *testing.T) {
	testutil.Integration(t)
	for _, v := range []struct {
		name, mkfs string
		args       []string
		opts       treeOpts
		htree      int  // e2fsck -D indexes directories; many/ gets this many index levels (0: no index)
		deep       bool // frag.bin must need a two-level extent tree
		small      bool // 128-byte inodes: no extra time fields
		inline     bool // small files and directories live in their inodes
		blockMaps  bool // ext2/ext3: no extents
	}{
		{name: "ext4", mkfs: "mkfs.ext4", htree: 2, deep: true},
		{name: "ext4-4k", mkfs: "mkfs.ext4", args: []string{"-b", "4096"}, htree: 1},
		{name: "ext4-nocsum-32bit", mkfs: "mkfs.ext4", args: []string{"-O", "^metadata_csum,^64bit"}, deep: true},
		{name: "ext4-inline", mkfs: "mkfs.ext4", args: []string{"-O", "inline_data"}, htree: 2, inline: true, opts: treeOpts{noTrailingHole: true}},
		{name: "ext4-meta_bg", mkfs: "mkfs.ext4", args: []string{"-O", "meta_bg,^resize_inode"}},
		{name: "ext4-bigalloc", mkfs: "mkfs.ext4", args: []string{"-O", "bigalloc", "-C", "4096"}},
		{name: "ext3", mkfs: "mkfs.ext3", htree: 2, blockMaps: true},
		{name: "ext2", mkfs: "mkfs.ext2", blockMaps: true},
		{name: "ext2-128-byte-inodes", mkfs: "mkfs.ext2", args: []string{"-I", "128"}, small: true, blockMaps: true},
		{name: "ext2-no-filetype", mkfs: "mkfs.ext2", args: []string{"-O", "^filetype"}, blockMaps: true},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			src := buildTree(t, v.opts)
			img := filepath.Join(t.TempDir(), "fs.img")
			args := append([]string{"-q", "-N", "16384", "-L", treeLabel, "-U", treeUUID}, v.args...)
			tool(t, v.mkfs, append(args, "-d", src, img, "64M")...)
			if v.htree > 0 {
				// mkfs -d writes linear directories; e2fsck -D indexes them.
				out, err := exec.Command(testutil.NeedTool(t, "e2fsck"), "-fyD", img).CombinedOutput()
				if code := exitCode(err); code > 1 {
					t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
				}
				levels := fmt.Sprintf("Indirect levels: %d\n", v.htree-1)
				if out := tool(t, "debugfs", "-R", "htree many", img); !strings.Contains(out, levels) {
					t.Fatalf("many/ is not a %d-level htree:\n%.600s", v.htree, out)
				}
			}
			if v.deep {
				if d := extentDepth(t, img, "frag.bin"); d < 2 {
					t.Fatalf("frag.bin extent depth %d, want >= 2", d)
				}
			}
			if !v.small {
				setExtraTimes(t, img)
			}
			fsys := openImage(t, img)
			if fsys.Label() != treeLabel || fsys.UUID() != treeUUID {
				t.Errorf("Label %q UUID %q", fsys.Label(), fsys.UUID())
			}
			dump := tool(t, "dumpe2fs", "-h", img)
			free, total := fsys.FreeBlocks()
			if !strings.Contains(dump, "Free blocks:              "+strconv.FormatUint(free, 10)+"\n") ||
				!strings.Contains(dump, "Block count:              "+strconv.FormatUint(total, 10)+"\n") {
				t.Errorf("FreeBlocks = %d, %d; dumpe2fs says\n%s", free, total, dump)
			}
			compareTree(t, fsys, src, v.opts)
			checkExtraTimes(t, fsys, src, !v.small)
			checkLinks(t, fsys)
			checkFSTest(t, fsys)

			// The code paths the variant is meant to cover were taken.
			flags := func(name string) uint32 {
				fi, err := fsys.Lstat(name)
				if err != nil {
					t.Fatal(err)
				}
				return fi.Sys().(*Inode).Flags
			}
			if got := flags("many")&flagIndex != 0; got != (v.htree > 0) {
				t.Errorf("many/ indexed: %v", got)
			}
			if got := flags("a/b/c/d")&flagInlineData != 0 && flags("inline-ish.txt")&flagInlineData != 0; got != v.inline {
				t.Errorf("inline data: %v", got)
			}
			if got := flags("multi.bin")&flagExtents == 0; got != v.blockMaps {
				t.Errorf("block maps: %v", got)
			}
		})
	}
}

// checkFSTest runs the standard library's fs.FS conformance checks on
// parts of the tree (all of it would read the 5 GiB sparse file whole).
func checkFSTest(t *testing.T, fsys *FS) {
	t.Helper()
	for dir, files := range map[string][]string{
		"etc": {"machine-id", "hostname", "ssh/ssh_host_ed25519_key", "ssh/ssh_host_ed25519_key.pub"},
		"a":   {"b/c/d/deep.txt", "hard2", "b/parent-link"},
		"名前":  {"ファイル"},
	} {
		sub, err := fs.Sub(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, files...); err != nil {
			t.Errorf("fstest.TestFS(%s): %v", dir, err)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return 255
	}
	return 0
}
