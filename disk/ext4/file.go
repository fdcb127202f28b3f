package ext4

import (
	"errors"
	"io"
	"io/fs"
	"time"
)

// fileInfo implements fs.FileInfo; Sys returns *Inode.
type fileInfo struct {
	name string
	in   *inode
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.in.Size }
func (i *fileInfo) Mode() fs.FileMode  { return i.in.fileMode() }
func (i *fileInfo) ModTime() time.Time { return i.in.ModTime }
func (i *fileInfo) IsDir() bool        { return i.in.isDir() }
func (i *fileInfo) Sys() any           { s := i.in.Inode; return &s }

// dirEntry implements fs.DirEntry.
type dirEntry struct {
	f    *FS
	e    dirent
	mode fs.FileMode
}

func (d *dirEntry) Name() string      { return d.e.name }
func (d *dirEntry) IsDir() bool       { return d.mode.IsDir() }
func (d *dirEntry) Type() fs.FileMode { return d.mode }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.f.readInode(d.e.ino)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: d.e.name, in: in}, nil
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

// file is an open non-directory: regular file, symlink content (never
// reached through Open, which follows links), device or pipe (empty).
type file struct {
	path   string
	info   *fileInfo
	data   *fileData
	off    int64
	closed bool
}

var errSeek = errors.New("ext4: invalid seek")

func (f *file) Stat() (fs.FileInfo, error) {
	if f.closed {
		return nil, &fs.PathError{Op: "stat", Path: f.path, Err: fs.ErrClosed}
	}
	return f.info, nil
}

func (f *file) Read(p []byte) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := f.data.ReadAt(p, f.off)
	f.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	return f.data.ReadAt(p, off)
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrClosed}
	}
	switch whence {
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.data.size
	case io.SeekStart:
	default:
		return 0, errSeek
	}
	if offset < 0 {
		return 0, errSeek
	}
	f.off = offset
	return offset, nil
}

func (f *file) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.path, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// dir is an open directory.
type dir struct {
	f       *FS
	path    string
	info    *fileInfo
	entries []fs.DirEntry // loaded on the first ReadDir
	loaded  bool
	pos     int
	closed  bool
}

func (d *dir) Stat() (fs.FileInfo, error) {
	if d.closed {
		return nil, &fs.PathError{Op: "stat", Path: d.path, Err: fs.ErrClosed}
	}
	return d.info, nil
}

func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errIsDir}
}

func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.closed {
		return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: fs.ErrClosed}
	}
	if !d.loaded {
		entries, err := d.f.dirEntries(d.info.in)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: err}
		}
		d.entries, d.loaded = entries, true
	}
	rest := d.entries[d.pos:]
	if n <= 0 {
		d.pos = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.pos += len(rest)
	return rest, nil
}

func (d *dir) Close() error {
	if d.closed {
		return &fs.PathError{Op: "close", Path: d.path, Err: fs.ErrClosed}
	}
	d.closed = true
	return nil
}
