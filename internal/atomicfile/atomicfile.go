// Package atomicfile writes files so that readers see the old file or the
// complete new one, never a part: temp file in the same directory, fsync,
// chmod, rename, fsync of the directory.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write replaces path with data, created with perm (the umask does not apply).
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFrom(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFrom replaces path with what fill writes. When fill or any step
// fails, the temp file is removed and path is left as it was.
func WriteFrom(path string, perm os.FileMode, fill func(io.Writer) error) error {
	return write(path, perm, fill, os.Rename)
}

// Create writes a new file at path, whole, like Write, but never replaces
// one: when path exists it fails with an error matching fs.ErrExist and
// leaves it as it was. For files a user would lose by a slip, such as keys.
func Create(path string, data []byte, perm os.FileMode) error {
	fill := func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
	return write(path, perm, fill, func(tmp, path string) error {
		// link(2) refuses an existing name atomically, where rename would
		// replace it; the complete temp file gets its final name or none.
		if err := os.Link(tmp, path); err != nil {
			return err
		}
		os.Remove(tmp)
		return nil
	})
}

func write(path string, perm os.FileMode, fill func(io.Writer) error, commit func(tmp, path string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Narrow permissions before any byte is written: a secret must never
	// sit in a world-readable file, not even for a moment.
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = commit(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Copy replaces dst with a copy of the file src, created with perm.
func Copy(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFrom(dst, perm, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
