package ext4

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
)

// FS is a read-only ext2/ext3/ext4 filesystem. It implements fs.FS,
// fs.ReadDirFS, fs.ReadFileFS, fs.StatFS and fs.ReadLinkFS, and is safe for
// concurrent use if the io.ReaderAt is.
//
// Paths are fs.FS paths ("etc/machine-id", "." for the root). Open, Stat,
// ReadDir and ReadFile follow symlinks; Lstat and ReadLink do not follow
// the last one. Absolute link targets resolve from the filesystem's root,
// relative ones from the link's directory; 40 links per lookup at most.
// Note that fs.WalkDir does not guard against directory cycles, which a
// corrupt filesystem can contain.
type FS struct {
	r  io.ReaderAt
	sb *superblock

	mu     sync.Mutex
	tables map[uint64]uint64   // group -> inode table block
	dirs   map[uint32]*dirData // directory inode -> entries
}

var (
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// Open reads the superblock of the filesystem in the first size bytes of
// r. For a partition of a disk image, pass io.NewSectionReader(disk,
// offset, size).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	sb, err := readSuperblock(r, size)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, sb: sb, tables: map[uint64]uint64{}, dirs: map[uint32]*dirData{}}
	root, err := f.readInode(rootIno)
	if err != nil {
		return nil, err
	}
	if !root.isDir() {
		return nil, fmt.Errorf("ext4: root inode is not a directory (mode %#o)", root.Mode)
	}
	return f, nil
}

// Label is the volume label (mkfs -L).
func (f *FS) Label() string { return f.sb.label }

// UUID is the filesystem UUID in the form blkid prints (mkfs -U).
func (f *FS) UUID() string {
	u := f.sb.uuid
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// BlockSize is the filesystem block size in bytes.
func (f *FS) BlockSize() int { return int(f.sb.blockSize) }

// FreeBlocks returns the free and total block counts the superblock
// records (as df would report them after an unmount).
func (f *FS) FreeBlocks() (free, total uint64) { return f.sb.freeBlocks, f.sb.blocksCount }

// FreeInodes returns the free and total inode counts of the superblock.
func (f *FS) FreeInodes() (free, total uint32) { return f.sb.freeInodes, f.sb.inodesCount }

// Open opens the named file, following symlinks. Directories implement
// fs.ReadDirFile; other files io.ReaderAt and io.Seeker too.
func (f *FS) Open(name string) (fs.File, error) {
	in, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{name: base(name), in: in}
	if in.isDir() {
		return &dir{f: f, path: name, info: info}, nil
	}
	data, err := f.openData(in)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &file{path: name, info: info, data: data}, nil
}

// Stat describes the named file, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: base(name), in: in}, nil
}

// Lstat describes the named file; a symlink itself when it is one.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: base(name), in: in}, nil
}

// ReadLink returns the target of the named symlink.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !in.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t, err := f.readLink(in)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// ReadDir lists the named directory sorted by name, without "." and "..".
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	entries, err := f.dirEntries(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return entries, nil
}

// maxReadFile bounds ReadFile, whose whole result lives in memory; a
// sparse or corrupt file can claim any size. Use Open for more.
const maxReadFile = 1 << 30

// ReadFile returns the content of the named file, following symlinks.
func (f *FS) ReadFile(name string) ([]byte, error) {
	in, err := f.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	fail := func(err error) ([]byte, error) { return nil, &fs.PathError{Op: "readfile", Path: name, Err: err} }
	if in.isDir() {
		return fail(errIsDir)
	}
	if in.Size > maxReadFile {
		return fail(fmt.Errorf("ext4: %d bytes is more than ReadFile reads (%d); use Open", in.Size, maxReadFile))
	}
	data, err := f.openData(in)
	if err != nil {
		return fail(err)
	}
	b := make([]byte, data.size)
	if n, err := data.ReadAt(b, 0); n < len(b) {
		return fail(err)
	}
	return b, nil
}

var errIsDir = errors.New("ext4: is a directory")

// dirEntries lists a directory inode as sorted fs.DirEntry values.
func (f *FS) dirEntries(in *inode) ([]fs.DirEntry, error) {
	d, err := f.dir(in)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(d.entries))
	for _, e := range d.entries {
		de := &dirEntry{f: f, e: e}
		if e.ftype == 0 { // no filetype feature: the inode knows
			in, err := f.readInode(e.ino)
			if err != nil {
				return nil, err
			}
			de.mode = in.fileMode().Type()
		} else {
			de.mode = ftypeMode[e.ftype]
		}
		out = append(out, de)
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

var ftypeMode = [8]fs.FileMode{
	0, 0, fs.ModeDir, fs.ModeDevice | fs.ModeCharDevice, fs.ModeDevice, fs.ModeNamedPipe, fs.ModeSocket, fs.ModeSymlink,
}

// readFull reads len(p) bytes at off; the filesystem ending early is an
// error.
func (f *FS) readFull(p []byte, off uint64) error {
	if off > 1<<62 {
		return fmt.Errorf("ext4: offset %d out of range", off)
	}
	n, err := f.r.ReadAt(p, int64(off))
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("ext4: reading %d bytes at %d: %w", len(p), off, err)
}

func (f *FS) readBlock(n uint64) ([]byte, error) {
	if n >= f.sb.blocksCount {
		return nil, fmt.Errorf("ext4: block %d outside the %d-block filesystem", n, f.sb.blocksCount)
	}
	b := make([]byte, f.sb.blockSize)
	return b, f.readFull(b, n*uint64(f.sb.blockSize))
}

func base(name string) string {
	if name == "." {
		return "."
	}
	return path.Base(name)
}
