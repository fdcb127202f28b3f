package ext4

import (
	"errors"
	"io/fs"
	"strings"
)

// maxSymlinks is how many symlinks one lookup may follow (Linux: 40).
const maxSymlinks = 40

var (
	errNotDir = errors.New("ext4: not a directory")
	errLoop   = errors.New("ext4: too many levels of symbolic links")
)

// resolve finds the inode name refers to. Symlinks met on the way are
// followed, the last one only if follow is set: absolute targets from the
// root, relative ones from the link's directory. ".." goes up the
// directories actually walked, and stays at the root.
func (f *FS) resolve(op, name string, follow bool) (*inode, error) {
	fail := func(err error) (*inode, error) {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if !fs.ValidPath(name) {
		return fail(fs.ErrInvalid)
	}
	root, err := f.readInode(rootIno)
	if err != nil {
		return fail(err)
	}
	stack := []*inode{root} // directories from the root down
	var comps []string
	if name != "." {
		comps = strings.Split(name, "/")
	}
	links := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		dir := stack[len(stack)-1]
		d, err := f.dir(dir)
		if err != nil {
			return fail(err)
		}
		ino, ok := d.byName[c]
		if !ok {
			return fail(fs.ErrNotExist)
		}
		in, err := f.readInode(ino)
		if err != nil {
			return fail(err)
		}
		if in.isSymlink() && (len(comps) > 0 || follow) {
			if links++; links > maxSymlinks {
				return fail(errLoop)
			}
			target, err := f.readLink(in)
			if err != nil {
				return fail(err)
			}
			if target == "" {
				return fail(fs.ErrNotExist)
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			comps = append(strings.Split(target, "/"), comps...)
			continue
		}
		if len(comps) == 0 {
			return in, nil
		}
		if !in.isDir() {
			return fail(errNotDir)
		}
		stack = append(stack, in)
	}
	return stack[len(stack)-1], nil
}
