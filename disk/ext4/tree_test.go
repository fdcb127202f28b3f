package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Test trees: what kiln's images hold, plus every shape of file the reader
// has a separate code path for.

const (
	treeUUID   = "5c0f4d34-8a3a-4f8e-9a5e-2b7e4c1d9f00"
	treeLabel  = "kiln-root"
	manyNames  = 5000       // entries in many/: enough for a two-level htree
	bigSparse  = 5<<30 + 7  // > 4 GiB: needs i_size_high
	fragChunks = 500        // one-block pieces between holes: a deep extent tree
	fragStride = 12 << 10   // chunk every 12 KiB
	fragChunk  = 4 << 10    // of 4 KiB
	epoch2040  = 2208988800 // 2040-01-01, past the 32-bit time_t
	epoch1965  = -157766400 // 1965-01-01
)

// treeOpts adapts the tree to what a filesystem (or mkfs) can hold.
type treeOpts struct {
	noBigSparse bool // for small partitions
	// mke2fs 1.47.0 -d with inline_data cuts a file's size at its last
	// data block, dropping a trailing hole (debugfs shows the same size).
	noTrailingHole bool
}

func rnd(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// buildTree writes the test tree into a new temporary directory.
func buildTree(t *testing.T, o treeOpts) string {
	t.Helper()
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, data []byte, mode os.FileMode) {
		t.Helper()
		must(os.MkdirAll(filepath.Dir(p(rel)), 0o755))
		must(os.WriteFile(p(rel), data, mode))
		must(os.Chmod(p(rel), mode)) // beat the umask
	}
	// Regular files of every size class.
	write("etc/machine-id", []byte("0123456789abcdef0123456789abcdef\n"), 0o444)
	write("etc/hostname", []byte("golden\n"), 0o644)
	write("etc/ssh/ssh_host_ed25519_key", []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"), 0o600)
	write("etc/ssh/ssh_host_ed25519_key.pub", []byte("ssh-ed25519 AAAA root@golden\n"), 0o644)
	write("empty", nil, 0o644)
	write("small.txt", []byte("hello\n"), 0o644)
	write("inline-ish.txt", bytes.Repeat([]byte("0123456789"), 9), 0o644) // 90 bytes: i_block + xattr with inline_data
	write("multi.bin", rnd(300_000, 1), 0o644)                            // double indirect with 1 KiB ext2 blocks
	write("a/b/c/d/deep.txt", []byte("deep\n"), 0o640)

	// Sparse files: holes must read as zeros.
	sparse, err := os.Create(p("sparse.img"))
	must(err)
	for _, at := range []int64{0, 1 << 20, 3<<20 + 123} {
		_, err := sparse.WriteAt(rnd(4096, uint64(at)), at)
		must(err)
	}
	if o.noTrailingHole {
		_, err = sparse.WriteAt([]byte("end"), 5<<20-3)
		must(err)
	} else {
		must(sparse.Truncate(5 << 20))
	}
	must(sparse.Close())
	frag, err := os.Create(p("frag.bin"))
	must(err)
	for i := range fragChunks {
		_, err := frag.WriteAt(rnd(fragChunk, uint64(i)+100), int64(i)*fragStride)
		must(err)
	}
	must(frag.Close())
	if !o.noBigSparse {
		big, err := os.Create(p("big-sparse"))
		must(err)
		_, err = big.WriteAt(rnd(8192, 7), 4<<30-4096) // straddles 4 GiB
		must(err)
		_, err = big.WriteAt([]byte("the end"), bigSparse-7)
		must(err)
		must(big.Close())
	}

	// A big directory.
	for i := range manyNames {
		write(fmt.Sprintf("many/entry-with-a-rather-long-name-%05d", i), []byte(fmt.Sprint(i)), 0o644)
	}

	// Symlinks: fast, slow, absolute, to a directory, dangling, looping,
	// climbing above the root, to ".".
	links := map[string]string{
		"rel-link":        "a/b/c/d/deep.txt",
		"slow-link":       strings.Repeat("./", 40) + "a/b/c/d/deep.txt",
		"abs-link":        "/etc/machine-id",
		"dir-link":        "a/b",
		"dangling":        "nowhere/at/all",
		"loop1":           "loop2",
		"loop2":           "loop1",
		"up-link":         "../../../etc/hostname",
		"a/b/parent-link": "../../small.txt",
		"self-dir":        ".",
		"abs-dir-link":    "/a/b/c",
	}
	for name, target := range links {
		must(os.Symlink(target, p(name)))
	}
	// chain/l0 -> l1 -> ... -> l40 -> ../small.txt: from l1 it takes the 40
	// links Linux allows, from l0 one too many.
	must(os.Mkdir(p("chain"), 0o755))
	for i := range maxSymlinks + 1 {
		target := fmt.Sprintf("l%d", i+1)
		if i == maxSymlinks {
			target = "../small.txt"
		}
		must(os.Symlink(target, p(fmt.Sprintf("chain/l%d", i))))
	}

	// Modes, owners, special files, names.
	write("secret", []byte("s"), 0o600)
	write("nothing", []byte("n"), 0)
	write("setuid", []byte("#!/bin/sh\n"), 0o4755)
	must(os.Mkdir(p("sgid-dir"), 0o755))
	must(os.Chmod(p("sgid-dir"), 0o2775))
	must(os.Mkdir(p("sticky"), 0o755))
	must(os.Chmod(p("sticky"), 0o1777))
	write("café", []byte("crème\n"), 0o644)
	write("with space", []byte(" "), 0o644)
	write("名前/ファイル", []byte("名"), 0o644)
	write("hard1", []byte("linked\n"), 0o644)
	must(os.Link(p("hard1"), p("a/hard2")))
	if os.Geteuid() == 0 {
		write("owned", []byte("o"), 0o644)
		must(os.Chown(p("owned"), 1234, 5678))
		write("bigid", []byte("b"), 0o644)
		must(os.Chown(p("bigid"), 70000, 80000)) // needs the high 16 bits
		must(os.Lchown(p("abs-link"), 1234, 5678))
		must(syscall.Mknod(p("null"), syscall.S_IFCHR|0o666, 1<<8|3))
		must(syscall.Mkfifo(p("pipe"), 0o640))
	} else {
		t.Log("not root: no owners, device or FIFO in the test tree")
	}

	// Timestamps: mkfs -d copies 32-bit seconds only; setExtraTimes adds
	// what needs the extra inode fields.
	for rel, sec := range map[string]int64{"small.txt": 1_000_000_000, "etc/hostname": epoch1965, "multi.bin": 1_700_000_000} {
		ts := time.Unix(sec, 0)
		must(os.Chtimes(p(rel), ts, ts))
	}
	return root
}

// compareTree checks that every path of the source tree src exists in
// fsys with the same type, mode, owner, size, link target, content, link
// count and mtime, and that fsys holds nothing else but lost+found.
func compareTree(t *testing.T, fsys *FS, src string, o treeOpts) {
	t.Helper()
	want := map[string]bool{"lost+found": true}
	err := filepath.WalkDir(src, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		rel = filepath.ToSlash(rel)
		if rel != "." {
			want[rel] = true
		}
		compareEntry(t, fsys, src, rel, o)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != "." {
			got = append(got, path)
			if !want[path] {
				t.Errorf("%s: in the filesystem, not in the source", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("walked %d paths, want %d", len(got), len(want))
	}
}

func compareEntry(t *testing.T, fsys *FS, src, rel string, o treeOpts) {
	t.Helper()
	st, err := os.Lstat(filepath.Join(src, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	fi, err := fsys.Lstat(rel)
	if err != nil {
		t.Errorf("Lstat(%s): %v", rel, err)
		return
	}
	in := fi.Sys().(*Inode)
	if rel == "." {
		return // mkfs -d does not copy the root's metadata
	}
	if fi.Mode() != st.Mode() || uint32(in.Mode) != sys.Mode {
		t.Errorf("%s: mode %v (%#o), want %v (%#o)", rel, fi.Mode(), in.Mode, st.Mode(), sys.Mode)
	}
	if in.Uid != sys.Uid || in.Gid != sys.Gid {
		t.Errorf("%s: owner %d:%d, want %d:%d", rel, in.Uid, in.Gid, sys.Uid, sys.Gid)
	}
	if fi.Name() != filepath.Base(rel) || fi.IsDir() != st.IsDir() {
		t.Errorf("%s: Name %q IsDir %v", rel, fi.Name(), fi.IsDir())
	}
	if !st.IsDir() && uint64(in.Links) != sys.Nlink {
		t.Errorf("%s: %d links, want %d", rel, in.Links, sys.Nlink)
	}
	sec := st.ModTime().Unix()
	if (st.Mode().IsRegular() || st.Mode()&fs.ModeSymlink != 0) && !extraTimes[rel] &&
		!fi.ModTime().Equal(time.Unix(sec, 0)) {
		t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), time.Unix(sec, 0))
	}
	switch {
	case st.Mode().IsRegular():
		if fi.Size() != st.Size() {
			t.Errorf("%s: size %d, want %d", rel, fi.Size(), st.Size())
		}
		compareContent(t, fsys, filepath.Join(src, filepath.FromSlash(rel)), rel, st.Size())
	case st.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(filepath.Join(src, filepath.FromSlash(rel)))
		if got, err := fsys.ReadLink(rel); err != nil || got != target {
			t.Errorf("%s: ReadLink = %q, %v; want %q", rel, got, err, target)
		}
		if fi.Size() != int64(len(target)) {
			t.Errorf("%s: symlink size %d", rel, fi.Size())
		}
	}
}

// compareContent compares a file with its source; files beyond 64 MiB
// (the sparse 5 GiB one) only around their data and at sampled offsets.
func compareContent(t *testing.T, fsys *FS, srcPath, rel string, size int64) {
	t.Helper()
	if size <= 64<<20 {
		got, err := fsys.ReadFile(rel)
		want, _ := os.ReadFile(srcPath)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: content differs (%d bytes, %v)", rel, len(got), err)
		}
		return
	}
	f, err := fsys.Open(rel)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ra := f.(io.ReaderAt)
	src, err := os.Open(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, off := range []int64{0, 1 << 30, 4<<30 - 8192, 4<<30 - 100, 4 << 30, size - 70_000, size - 7} {
		got, want := make([]byte, 70_000), make([]byte, 70_000)
		n, err := ra.ReadAt(got, off)
		m, _ := src.ReadAt(want, off)
		if n != m || !bytes.Equal(got[:n], want[:m]) || (n < len(got) && !errors.Is(err, io.EOF)) {
			t.Errorf("%s at %d: %d bytes (%v), want %d", rel, off, n, err, m)
		}
	}
}

// checkLinks checks how paths through symlinks resolve.
func checkLinks(t *testing.T, fsys *FS) {
	t.Helper()
	read := func(name string) string {
		b, err := fsys.ReadFile(name)
		if err != nil {
			t.Errorf("ReadFile(%s): %v", name, err)
		}
		return string(b)
	}
	// dir-link/..., self-dir/... and abs-dir-link/... go through links to
	// directories mid-path, like lib/systemd/... on a merged-/usr system:
	// go-diskfs's reader fails there (doc.go).
	for name, want := range map[string]string{
		"rel-link":                    "deep\n",
		"slow-link":                   "deep\n",
		"abs-link":                    "0123456789abcdef0123456789abcdef\n",
		"up-link":                     "golden\n",
		"a/b/parent-link":             "hello\n",
		"dir-link/c/d/deep.txt":       "deep\n",
		"dir-link/parent-link":        "hello\n",
		"self-dir/self-dir/small.txt": "hello\n",
		"abs-dir-link/d/deep.txt":     "deep\n",
		"chain/l1":                    "hello\n",
	} {
		if got := read(name); got != want {
			t.Errorf("ReadFile(%s) = %q, want %q", name, got, want)
		}
	}
	if fi, err := fsys.Stat("dir-link"); err != nil || !fi.IsDir() || fi.Name() != "dir-link" {
		t.Errorf("Stat(dir-link) = %v, %v", fi, err)
	}
	if fi, err := fsys.Lstat("dir-link"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(dir-link) = %v, %v", fi, err)
	}
	a, _ := fsys.ReadDir("dir-link")
	b, _ := fsys.ReadDir("a/b")
	if len(a) == 0 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("ReadDir(dir-link) = %v, want %v", a, b)
	}
	for name, want := range map[string]error{
		"dangling":        fs.ErrNotExist,
		"nope":            fs.ErrNotExist,
		"a/b/nope":        fs.ErrNotExist,
		"loop1":           errLoop,
		"loop1/x":         errLoop,
		"chain/l0":        errLoop,
		"small.txt/x":     errNotDir,
		"/etc/machine-id": fs.ErrInvalid,
		"etc/":            fs.ErrInvalid,
		"a/../small.txt":  fs.ErrInvalid, // fs.FS paths have no ".."
	} {
		_, err := fsys.Stat(name)
		var pe *fs.PathError
		if !errors.Is(err, want) || !errors.As(err, &pe) || pe.Path != name {
			t.Errorf("Stat(%s) error = %v, want %v", name, err, want)
		}
	}
	if _, err := fsys.Lstat("dangling"); err != nil {
		t.Errorf("Lstat(dangling): %v", err)
	}
	if _, err := fsys.ReadLink("small.txt"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink(small.txt) error = %v", err)
	}
	if _, err := fsys.ReadFile("a"); !errors.Is(err, errIsDir) {
		t.Errorf("ReadFile(a) error = %v", err)
	}
	// Hard links share an inode.
	h1, _ := fsys.Stat("hard1")
	h2, _ := fsys.Stat("a/hard2")
	if h1 == nil || h2 == nil || h1.Sys().(*Inode).InodeNumber != h2.Sys().(*Inode).InodeNumber || h1.Sys().(*Inode).Links != 2 {
		t.Errorf("hard links: %v %v", h1, h2)
	}
	// Names in many/ come back sorted and complete.
	entries, err := fsys.ReadDir("many")
	if err != nil || len(entries) != manyNames || !slices.IsSortedFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) }) {
		t.Errorf("ReadDir(many): %d entries, %v", len(entries), err)
	}
}

// extraTimes are the files setExtraTimes changes after mkfs; compareEntry
// leaves their mtimes to checkExtraTimes.
var extraTimes = map[string]bool{"etc/machine-id": true, "multi.bin": true}

// setExtraTimes stores, with debugfs, an mtime past 2038 (epoch bits) and
// one with nanoseconds, which need the extra fields of 256-byte inodes.
func setExtraTimes(t *testing.T, img string) {
	t.Helper()
	tool(t, "debugfs", "-w", "-R", "sif /etc/machine-id mtime 20400101000000", img)
	tool(t, "debugfs", "-w", "-R", fmt.Sprintf("sif /multi.bin mtime_extra %d", 123456789<<2), img)
}

func checkExtraTimes(t *testing.T, fsys *FS, src string, set bool) {
	t.Helper()
	for rel, want := range map[string]time.Time{
		"etc/machine-id": time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		"multi.bin":      time.Unix(1_700_000_000, 123456789),
	} {
		if !set {
			st, err := os.Stat(filepath.Join(src, rel))
			if err != nil {
				t.Fatal(err)
			}
			want = time.Unix(st.ModTime().Unix(), 0)
		}
		if fi, err := fsys.Stat(rel); err != nil || !fi.ModTime().Equal(want) {
			t.Errorf("%s: mtime %v (%v), want %v", rel, fi.ModTime(), err, want)
		}
	}
}
