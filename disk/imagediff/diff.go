// Package imagediff compares two disk images offline, through kiln's own
// readers (qcow2 or raw, GPT, ext4): the packages dpkg records as
// installed in each root filesystem, then every file's type, permissions,
// owner, size, link target and content. Nothing in either image is run or
// mounted, and no link in it is followed.
package imagediff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"sync"

	"github.com/kiln-project/kiln/disk"
	"github.com/kiln-project/kiln/disk/ext4"
	"github.com/kiln-project/kiln/disk/image"
)

// FS is a read-only root filesystem as a diff reads it: fs.FS whose
// directories list sorted (fs.ReadDirFS), with Lstat and ReadLink so that
// links are compared, not followed. *ext4.FS is one.
type FS interface {
	fs.ReadDirFS
	Lstat(name string) (fs.FileInfo, error)
	ReadLink(name string) (string, error)
}

// Entry is one file as the diff sees it.
type Entry struct {
	Type   string `json:"type"` // file, dir, symlink, char, block, fifo, socket
	Mode   string `json:"mode"` // permissions with setuid, setgid and sticky, in octal ("0755", "4755")
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Size   int64  `json:"size"`             // of a regular file's content, else 0
	Target string `json:"target,omitempty"` // a symlink's
	// Digest is the sha256 of a regular file's content ("sha256:..."), for
	// the files a report names (not computed for files found equal).
	Digest string `json:"digest,omitempty"`
}

// Change kinds of a FileChange.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// FileChange is a path whose entry differs: added (only in B), removed
// (only in A) or changed, with the fields that changed: type, mode, owner,
// size, target, content.
type FileChange struct {
	Path   string   `json:"path"` // absolute, "/etc/hosts"
	Change string   `json:"change"`
	Fields []string `json:"fields,omitempty"`
	A      *Entry   `json:"a,omitempty"`
	B      *Entry   `json:"b,omitempty"`
}

// PackageChange is a package (by name and architecture) added, removed or
// at another version: From is empty for an added one, To for a removed one.
type PackageChange struct {
	Name string `json:"name"`
	Arch string `json:"arch"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Report is what differs between A and B; empty when nothing does.
type Report struct {
	Packages []PackageChange `json:"packages"`
	Files    []FileChange    `json:"files"`
}

// Empty reports two images found identical.
func (r *Report) Empty() bool { return len(r.Packages) == 0 && len(r.Files) == 0 }

// OpenError is an image Images cannot take: missing, not a disk image,
// refused (a backing file, too large), or without a Linux root filesystem.
type OpenError struct {
	Path string
	Err  error
}

func (e *OpenError) Error() string { return e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// Images compares the root filesystems of the disk images at pathA and
// pathB. opts are image.Open's, for both (kiln refuses backing files and
// bounds the virtual size unless told otherwise).
func Images(ctx context.Context, pathA, pathB string, opts ...image.Option) (*Report, error) {
	a, closeA, err := disk.OpenRoot(pathA, opts...)
	if err != nil {
		return nil, &OpenError{Path: pathA, Err: err}
	}
	defer closeA.Close()
	b, closeB, err := disk.OpenRoot(pathB, opts...)
	if err != nil {
		return nil, &OpenError{Path: pathB, Err: err}
	}
	defer closeB.Close()
	r, err := Compare(ctx, a, b)
	if err != nil {
		return nil, fmt.Errorf("compare %s with %s: %w", pathA, pathB, err)
	}
	return r, nil
}

// Compare compares two root filesystems: packages, then files.
func Compare(ctx context.Context, a, b FS) (*Report, error) {
	pa, err := Packages(a)
	if err != nil {
		return nil, fmt.Errorf("A: %w", err)
	}
	pb, err := Packages(b)
	if err != nil {
		return nil, fmt.Errorf("B: %w", err)
	}
	r := &Report{Packages: comparePackages(pa, pb), Files: []FileChange{}}
	w := walker{ctx: ctx, a: a, b: b}
	if err := w.dir("."); err != nil {
		return nil, err
	}
	if err := w.contents(); err != nil {
		return nil, err
	}
	for _, c := range w.changes {
		if c.Change != Changed || len(c.Fields) > 0 {
			r.Files = append(r.Files, *c)
		}
	}
	return r, nil
}

// walker walks A and B side by side, in name order.
type walker struct {
	ctx     context.Context
	a, b    FS
	changes []*FileChange
	// same are the changes whose files' sizes match: their content is
	// compared afterwards, in parallel.
	same []*FileChange
}

func (w *walker) dir(dir string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	ea, err := w.a.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("A: %w", err)
	}
	eb, err := w.b.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("B: %w", err)
	}
	i, j := 0, 0
	for i < len(ea) || j < len(eb) {
		switch {
		case j == len(eb) || i < len(ea) && ea[i].Name() < eb[j].Name():
			if err := w.only(Removed, w.a, path.Join(dir, ea[i].Name())); err != nil {
				return err
			}
			i++
		case i == len(ea) || eb[j].Name() < ea[i].Name():
			if err := w.only(Added, w.b, path.Join(dir, eb[j].Name())); err != nil {
				return err
			}
			j++
		default:
			if err := w.both(path.Join(dir, ea[i].Name())); err != nil {
				return err
			}
			i, j = i+1, j+1
		}
	}
	return nil
}

// only records a tree present on one side: the directory and all below.
func (w *walker) only(change string, fsys FS, name string) error {
	e, err := entryOf(fsys, name)
	if err != nil {
		return err
	}
	c := &FileChange{Path: "/" + name, Change: change}
	if e.Type == "file" {
		if e.Digest, err = digestOf(fsys, name); err != nil {
			return err
		}
	}
	if change == Added {
		c.B = e
	} else {
		c.A = e
	}
	w.changes = append(w.changes, c)
	if e.Type != "dir" {
		return nil
	}
	entries, err := fsys.ReadDir(name)
	if err != nil {
		return err
	}
	for _, d := range entries {
		if err := w.only(change, fsys, path.Join(name, d.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) both(name string) error {
	ea, err := entryOf(w.a, name)
	if err != nil {
		return fmt.Errorf("A: %w", err)
	}
	eb, err := entryOf(w.b, name)
	if err != nil {
		return fmt.Errorf("B: %w", err)
	}
	c := &FileChange{Path: "/" + name, Change: Changed, A: ea, B: eb}
	if ea.Type != eb.Type {
		c.Fields = append(c.Fields, "type")
	}
	if ea.Mode != eb.Mode {
		c.Fields = append(c.Fields, "mode")
	}
	if ea.UID != eb.UID || ea.GID != eb.GID {
		c.Fields = append(c.Fields, "owner")
	}
	if ea.Size != eb.Size {
		c.Fields = append(c.Fields, "size")
	}
	if ea.Target != eb.Target {
		c.Fields = append(c.Fields, "target")
	}
	w.changes = append(w.changes, c)
	if ea.Type == "file" && eb.Type == "file" {
		if ea.Size == eb.Size {
			w.same = append(w.same, c)
		} else {
			c.Fields = append(c.Fields, "content")
		}
	}
	if ea.Type == "dir" && eb.Type == "dir" {
		return w.dir(name)
	}
	// A type changed to or from a directory: what is below is added or
	// removed.
	for _, s := range []struct {
		fsys   FS
		e      *Entry
		change string
	}{{w.a, ea, Removed}, {w.b, eb, Added}} {
		if s.e.Type != "dir" {
			continue
		}
		entries, err := s.fsys.ReadDir(name)
		if err != nil {
			return err
		}
		for _, d := range entries {
			if err := w.only(s.change, s.fsys, path.Join(name, d.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// contents compares the files of equal size byte for byte, a few at a
// time (reading a compressed image is CPU work), and digests both sides
// of those that differ, and of those whose size differs.
func (w *walker) contents() error {
	jobs := make(chan *FileChange)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range max(2, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				name := c.Path[1:]
				equal, err := sameContent(w.a, w.b, name)
				if err == nil && !equal {
					c.Fields = append(c.Fields, "content")
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, c := range w.same {
		if w.ctx.Err() != nil {
			break
		}
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range w.changes {
		if c.Change != Changed || len(c.Fields) == 0 {
			continue
		}
		var err error
		if c.A.Type == "file" {
			if c.A.Digest, err = digestOf(w.a, c.Path[1:]); err != nil {
				return fmt.Errorf("A: %w", err)
			}
		}
		if c.B.Type == "file" {
			if c.B.Digest, err = digestOf(w.b, c.Path[1:]); err != nil {
				return fmt.Errorf("B: %w", err)
			}
		}
	}
	return nil
}

// entryOf describes name without following it.
func entryOf(fsys FS, name string) (*Entry, error) {
	fi, err := fsys.Lstat(name)
	if err != nil {
		return nil, err
	}
	m := fi.Mode()
	perm := m.Perm()
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	e := &Entry{Type: typeOf(m), Mode: fmt.Sprintf("%04o", uint32(perm))}
	if in, ok := fi.Sys().(*ext4.Inode); ok {
		e.UID, e.GID = in.Uid, in.Gid
	}
	switch e.Type {
	case "file":
		e.Size = fi.Size()
	case "symlink":
		if e.Target, err = fsys.ReadLink(name); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func typeOf(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "char"
	case m&fs.ModeDevice != 0:
		return "block"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "unknown"
}

const chunk = 1 << 20

// sameContent compares two regular files of equal size, stopping at the
// first difference.
func sameContent(a, b FS, name string) (bool, error) {
	fa, err := a.Open(name)
	if err != nil {
		return false, fmt.Errorf("A: %w", err)
	}
	defer fa.Close()
	fb, err := b.Open(name)
	if err != nil {
		return false, fmt.Errorf("B: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		endA := ea == io.EOF || ea == io.ErrUnexpectedEOF
		endB := eb == io.EOF || eb == io.ErrUnexpectedEOF
		switch {
		case ea != nil && !endA:
			return false, fmt.Errorf("A: %s: %w", name, ea)
		case eb != nil && !endB:
			return false, fmt.Errorf("B: %s: %w", name, eb)
		case endA || endB:
			return endA && endB, nil
		}
	}
}

func digestOf(fsys FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, chunk)); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// comparePackages lists what differs, by name then architecture.
func comparePackages(a, b []Package) []PackageChange {
	key := func(p Package) string { return p.Name + ":" + p.Arch }
	in := map[string]Package{}
	for _, p := range a {
		in[key(p)] = p
	}
	out := []PackageChange{}
	seen := map[string]bool{}
	for _, p := range b {
		seen[key(p)] = true
		old, ok := in[key(p)]
		switch {
		case !ok:
			out = append(out, PackageChange{Name: p.Name, Arch: p.Arch, To: p.Version})
		case old.Version != p.Version:
			out = append(out, PackageChange{Name: p.Name, Arch: p.Arch, From: old.Version, To: p.Version})
		}
	}
	for _, p := range a {
		if !seen[key(p)] {
			out = append(out, PackageChange{Name: p.Name, Arch: p.Arch, From: p.Version})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Arch < out[j].Arch
	})
	return out
}
