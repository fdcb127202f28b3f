package ext4

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
)

// fuzzDevice is the size of the device the fuzzer's input sits at the
// start of; the rest reads as zeros. The seeds end in zeros, and dropping
// those halves the input, which the fuzzer copies and minimizes.
const fuzzDevice = 128 << 10

// FuzzExt4Open opens and walks mutated filesystems: no panics, no hangs,
// and Open's errors carry the package prefix.
func FuzzExt4Open(f *testing.F) {
	for _, s := range seedImages {
		f.Add(bytes.TrimRight(loadSeed(f, s.file), "\x00"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys, err := Open(zeroTail(data), fuzzDevice)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ext4: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		exercise(t, fsys)
	})
}

// exercise touches everything a lint pass would, bounded: a corrupt
// filesystem can hold directory cycles fs.WalkDir would follow forever.
func exercise(t *testing.T, fsys *FS) {
	fsys.Label()
	fsys.UUID()
	fsys.FreeBlocks()
	seen := 0
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if seen++; seen > 300 {
			return fs.SkipAll
		}
		if err != nil {
			checkErr(t, err)
			return nil
		}
		if _, err := d.Info(); err != nil {
			checkErr(t, err)
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if _, err := fsys.ReadLink(p); err != nil {
				checkErr(t, err)
			}
			if _, err := fsys.Stat(p); err != nil {
				checkErr(t, err)
			}
		case d.Type().IsRegular():
			file, err := fsys.Open(p)
			if err != nil {
				checkErr(t, err)
				return nil
			}
			if _, err := io.Copy(io.Discard, io.LimitReader(file, 1<<16)); err != nil {
				checkErr(t, err)
			}
			file.Close()
		}
		return nil
	})
}

// checkErr wants fs.PathErrors whose cause is a standard fs error or one
// of this package's.
func checkErr(t *testing.T, err error) {
	t.Helper()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	for _, std := range []error{fs.ErrNotExist, fs.ErrInvalid} {
		if errors.Is(err, std) {
			return
		}
	}
	if !strings.HasPrefix(err.Error(), "ext4: ") {
		t.Fatalf("error without prefix: %v", err)
	}
}

// zeroTail reads data, then zeros.
type zeroTail []byte

func (z zeroTail) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzDevice {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), fuzzDevice-off)]
	n := 0
	if off < int64(len(z)) {
		n = copy(p, z[off:])
	}
	clear(p[n:])
	return len(p), nil
}
