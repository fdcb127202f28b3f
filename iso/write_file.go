package iso

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes the seed to path atomically: it validates the input,
// writes a temporary file in the same directory, fsyncs it, sets perm
// (exactly, regardless of umask), and renames it over path. On any error
// the temporary file is removed and path is left as it was: absent, or the
// previous file untouched. After the rename the directory is synced on a
// best-effort basis.
func WriteFile(path string, perm os.FileMode, opts Options, entries []Entry) (err error) {
	l, err := plan(opts, entries)
	if err != nil {
		return err // invalid input: not even a temporary file
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("iso: create temporary file for %q: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close() // may already be closed; the error is irrelevant then
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	ew := &errWriter{w: bw}
	l.writeTo(ew)
	if ew.err == nil {
		ew.err = bw.Flush()
	}
	if ew.err != nil {
		return fmt.Errorf("iso: write %q: %w", tmp, ew.err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("iso: sync %q: %w", tmp, err)
	}
	if err := f.Chmod(perm.Perm()); err != nil {
		return fmt.Errorf("iso: chmod %q: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("iso: close %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("iso: rename %q to %q: %w", tmp, path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: persists the rename; some filesystems refuse
		d.Close()
	}
	return nil
}
