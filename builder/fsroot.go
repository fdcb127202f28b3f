package builder

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// root is an OS file tree being built (what becomes the image's root
// filesystem). Its paths resolve like the guest would resolve them: a
// symlink such as /etc/resolv.conf -> /run/... points inside the tree, never
// at the build host.
type root struct{ dir string }

// resolve returns the host path of guest path p, following symlinks inside
// the tree for every component but the last (which may not exist yet).
func (r root) resolve(p string) (string, error) {
	return r.resolveN(p, 0)
}

func (r root) resolveN(p string, depth int) (string, error) {
	if depth > 40 {
		return "", fmt.Errorf("too many levels of symbolic links resolving %s", p)
	}
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for i, part := range parts {
		if part == "" {
			continue
		}
		next := path.Join(cur, part)
		if i == len(parts)-1 {
			return filepath.Join(r.dir, next), nil
		}
		host := filepath.Join(r.dir, next)
		st, err := os.Lstat(host)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return filepath.Join(r.dir, path.Join(append([]string{next}, parts[i+1:]...)...)), nil
			}
			return "", err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(host)
			if err != nil {
				return "", err
			}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			return r.resolveN(path.Join(append([]string{target}, parts[i+1:]...)...), depth+1)
		}
		cur = next
	}
	return filepath.Join(r.dir, cur), nil
}

// writeFile writes a file into the tree with parents created (0755),
// replacing whatever was at the path, including a symlink.
func (r root) writeFile(p string, data []byte, mode os.FileMode, uid, gid int) error {
	host, err := r.resolve(p)
	if err != nil {
		return err
	}
	if err := r.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	os.Remove(host) // a symlink or old file at the path is replaced, not followed
	f, err := os.OpenFile(host, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chown(host, uid, gid); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	return os.Chmod(host, mode)
}

func (r root) mkdirAll(p string) error {
	host, err := r.resolve(p)
	if err != nil {
		return err
	}
	if st, err := os.Stat(host); err == nil && st.IsDir() {
		return nil
	}
	if p != "/" && p != "." {
		if err := r.mkdirAll(path.Dir(p)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(host, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	return nil
}

// symlink makes p a symlink to target (replacing what was there).
func (r root) symlink(target, p string) error {
	host, err := r.resolve(p)
	if err != nil {
		return err
	}
	if err := r.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	os.Remove(host)
	return os.Symlink(target, host)
}

// readFile reads guest path p, following symbolic links inside the tree
// only (an absolute link never reaches the build host's files).
func (r root) readFile(p string) ([]byte, error) {
	for range 40 {
		host, err := r.resolve(p)
		if err != nil {
			return nil, err
		}
		fi, err := os.Lstat(host)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return os.ReadFile(host)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return nil, err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = target
	}
	return nil, fmt.Errorf("too many levels of symbolic links reading %s", p)
}

// remove deletes guest paths; globs are expanded inside the tree. Missing
// paths are not an error.
func (r root) remove(patterns ...string) error {
	for _, pat := range patterns {
		matches, err := filepath.Glob(filepath.Join(r.dir, pat))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// exists reports whether guest path p exists (not following a final symlink).
func (r root) exists(p string) bool {
	host, err := r.resolve(p)
	if err != nil {
		return false
	}
	_, err = os.Lstat(host)
	return err == nil
}

// lookupID returns the numeric id of a user or group from the tree's
// /etc/passwd or /etc/group.
func (r root) lookupID(file, name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	host, err := r.resolve(file)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(host)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 2 && fields[0] == name {
			return strconv.Atoi(fields[2])
		}
	}
	return 0, fmt.Errorf("%s has no entry %q", file, name)
}

// owner resolves "user:group" to ids in the tree.
func (r root) owner(owner string) (int, int, error) {
	u, g, _ := strings.Cut(owner, ":")
	if g == "" {
		g = u
	}
	uid, err := r.lookupID("/etc/passwd", u)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %s: no such user in the image", owner)
	}
	gid, err := r.lookupID("/etc/group", g)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %s: no such group in the image", owner)
	}
	return uid, gid, nil
}
