package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
)

func openBytes(t *testing.T, b []byte) *FS {
	t.Helper()
	fsys, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// inodeAt returns the byte offset of the inode a path names.
func inodeAt(t *testing.T, fsys *FS, name string) (int, uint32) {
	t.Helper()
	fi, err := fsys.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*Inode).InodeNumber
	table, err := fsys.inodeTable(uint64(ino-1) / uint64(fsys.sb.inodesPerGroup))
	if err != nil {
		t.Fatal(err)
	}
	slot := int64(ino-1) % int64(fsys.sb.inodesPerGroup)
	return int(int64(table)*fsys.sb.blockSize + slot*fsys.sb.inodeSize), ino
}

func TestOpenRejects(t *testing.T) {
	seed := loadSeed(t, "ext4.img.gz")
	patched := func(off int, v ...byte) []byte {
		b := bytes.Clone(seed)
		copy(b[off:], v)
		return b
	}
	rootOff, _ := inodeAt(t, openBytes(t, seed), ".")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too small"},
		{"zeros", make([]byte, 1<<20), "no ext2/3/4 superblock"},
		{"compression", patched(1024+0x60, 0x01|0x02|0x40), "unsupported incompatible features: compression"},
		{"unknown feature", patched(1024+0x63, 0x80), "unsupported incompatible features: 0x80000000"},
		{"block size", patched(1024+0x18, 9), "block size"},
		{"inode size", patched(1024+0x58, 100, 0), "inode size 100"},
		{"truncated", seed[:len(seed)-1024], "does not fit"},
		{"no root", patched(rootOff, 0, 0), "unknown file type"},
		{"root is a file", patched(rootOff+1, 0x81), "root inode is not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil || !strings.HasPrefix(err.Error(), "ext4: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// Damage inside files shows up as errors from the calls that read them,
// with the rest of the filesystem still readable.
func TestCorruptData(t *testing.T) {
	seed := loadSeed(t, "ext4.img.gz")
	clean := openBytes(t, seed)
	textOff, _ := inodeAt(t, clean, "text")
	dirOff, _ := inodeAt(t, clean, "d")
	dirBlock := binary.LittleEndian.Uint32(seed[dirOff+0x28+20:]) // first extent's start (lo)
	for _, c := range []struct {
		name   string
		patch  func(b []byte)
		op     func(f *FS) error
		want   string
		stdErr error
	}{
		{"extent magic", func(b []byte) { b[textOff+0x28] = 0 },
			func(f *FS) error { _, err := f.ReadFile("text"); return err }, "no extent header", nil},
		{"extent beyond the end", func(b []byte) { binary.LittleEndian.PutUint32(b[textOff+0x28+20:], 1<<30) },
			func(f *FS) error { _, err := f.ReadFile("text"); return err }, "outside the filesystem", nil},
		{"extent depth", func(b []byte) { b[textOff+0x28+6] = 9 },
			func(f *FS) error { _, err := f.ReadFile("text"); return err }, "corrupt extent header", nil},
		{"directory record length", func(b []byte) { binary.LittleEndian.PutUint16(b[int(dirBlock)*1024+4:], 3) },
			func(f *FS) error { _, err := f.ReadDir("d"); return err }, "corrupt entry", nil},
		{"entry names a huge inode", func(b []byte) { binary.LittleEndian.PutUint32(b[int(dirBlock)*1024+24:], 1<<30) },
			func(f *FS) error { _, err := f.ReadDir("d"); return err }, "names inode", nil},
		{"symlink too long", func(b []byte) {
			off, _ := inodeAt(t, clean, "slow-link")
			binary.LittleEndian.PutUint32(b[off+4:], 1<<20)
		}, func(f *FS) error { _, err := f.ReadLink("slow-link"); return err }, "symlink of 1048576 bytes", nil},
		{"size of an exabyte", func(b []byte) { binary.LittleEndian.PutUint32(b[textOff+0x6C:], 1<<31) },
			func(f *FS) error { _, err := f.Stat("text"); return err }, "impossible", nil},
		{"huge sparse file", func(b []byte) { binary.LittleEndian.PutUint32(b[textOff+0x6C:], 1<<10) },
			func(f *FS) error { _, err := f.ReadFile("text"); return err }, "more than ReadFile reads", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(seed)
			c.patch(b)
			fsys := openBytes(t, b)
			err := c.op(fsys)
			var pe *fs.PathError
			if err == nil || !errors.As(err, &pe) || !strings.HasPrefix(pe.Err.Error(), "ext4: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want a PathError containing %q", err, c.want)
			}
			if got, err := fsys.ReadFile("etc/machine-id"); err != nil || string(got) != seedFiles["etc/machine-id"] {
				t.Errorf("rest of the filesystem: %q, %v", got, err)
			}
		})
	}
}

// Files opened through Open behave like os.File for reading.
func TestFileInterface(t *testing.T) {
	fsys := openBytes(t, loadSeed(t, "ext4.img.gz"))
	f, err := fsys.Open("sparse")
	if err != nil {
		t.Fatal(err)
	}
	rs := f.(io.ReadSeeker)
	if off, err := rs.Seek(-100, io.SeekEnd); err != nil || off != 5000 {
		t.Fatalf("Seek = %d, %v", off, err)
	}
	b, err := io.ReadAll(rs)
	if err != nil || string(b) != strings.Repeat("b", 100) {
		t.Errorf("ReadAll after Seek = %q, %v", b, err)
	}
	p := make([]byte, 10)
	if n, err := f.(io.ReaderAt).ReadAt(p, 5095); n != 5 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if n, err := f.(io.ReaderAt).ReadAt(p, 200); n != 10 || err != nil || !bytes.Equal(p, make([]byte, 10)) {
		t.Errorf("ReadAt in the hole = %d, %v, %q", n, err, p)
	}
	if _, err := rs.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek before the start succeeded")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(p); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	d, err := fsys.Open("d")
	if err != nil {
		t.Fatal(err)
	}
	rd := d.(fs.ReadDirFile)
	first, err := rd.ReadDir(2)
	if err != nil || len(first) != 2 || first[0].Name() != "f1" {
		t.Fatalf("ReadDir(2) = %v, %v", first, err)
	}
	rest, err := rd.ReadDir(-1)
	if err != nil || len(rest) != 1 || rest[0].Name() != "f3" {
		t.Errorf("ReadDir(-1) = %v, %v", rest, err)
	}
	if more, err := rd.ReadDir(1); len(more) != 0 || err != io.EOF {
		t.Errorf("ReadDir at the end = %v, %v", more, err)
	}
	if _, err := d.Read(p); err == nil {
		t.Error("Read on a directory succeeded")
	}
}

// One FS and one open file serve parallel readers (run with -race).
func TestConcurrentReads(t *testing.T) {
	for _, s := range seedImages {
		fsys := openBytes(t, loadSeed(t, s.file))
		name := "frag" // extent tree of depth 1
		if s.file == "ext2.img.gz" {
			name = "text" // through an indirect block
		}
		f, err := fsys.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		ra := f.(io.ReaderAt)
		want := seedFiles[name]
		errs := make(chan error, 8)
		for g := range 8 {
			go func() {
				for i := range 50 {
					off := (g*131 + i*37) % len(want)
					p := make([]byte, 700)
					n, _ := ra.ReadAt(p, int64(off))
					if string(p[:n]) != want[off:min(off+700, len(want))] {
						errs <- errors.New(s.file + ": parallel ReadAt differs")
						return
					}
					if b, err := fsys.ReadFile("d/f2"); err != nil || string(b) != "2\n" {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
}
