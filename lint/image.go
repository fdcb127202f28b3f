package lint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/kiln-project/kiln/disk"
	"github.com/kiln-project/kiln/disk/ext4"
	"github.com/kiln-project/kiln/disk/image"
)

// FreeSpaceRule is the rule about free filesystem space holding old data.
const FreeSpaceRule = "free-space"

// freeSpaceLimit is how much non-zero data free space may hold before it
// counts: blocks freed by the last moments of a shutdown are noise (a VM
// bake leaves a MiB or two after its fstrim); a deleted build directory or a
// package cache is not.
const freeSpaceLimit = 16 << 20

// Report is the result of linting an image.
type Report struct {
	Image      string      `json:"image"`
	Format     string      `json:"format"`
	Root       string      `json:"root"` // which partition held the root filesystem
	OS         string      `json:"os,omitempty"`
	Rules      []string    `json:"rules"`
	Violations []Violation `json:"violations"`
}

// Clean reports whether no rule was violated.
func (r *Report) Clean() bool { return len(r.Violations) == 0 }

// InputError is a path kiln lint cannot take: missing, not a disk image,
// or an image it will not open (a backing file, an unknown format).
type InputError struct {
	Path string
	Err  error
}

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Image lints the disk image at path: it finds the Linux root filesystem
// (ext4, the partition holding /etc/os-release), runs every rule on it, and
// checks that its free space holds no old data. A path that is not an
// image kiln opens is an *InputError.
//
// opts are image.Open's: an image kiln did not make is checked before it is
// read (qcow2 or raw, no backing file, at most image.MaxVirtualSize unless
// image.WithMaxVirtualSize says otherwise).
func Image(ctx context.Context, path string, opts ...image.Option) (*Report, error) {
	img, err := image.Open(path, opts...)
	if err != nil {
		return nil, &InputError{Path: path, Err: err}
	}
	defer img.Close()
	rep := &Report{Image: path, Format: string(img.Format()), Rules: RuleNames(), Violations: []Violation{}}
	root, err := disk.FindRoot(img)
	if err != nil {
		return nil, fmt.Errorf("lint: %s: %w", path, err)
	}
	rep.Root = root.Where
	rep.OS = osName(root)
	rep.Violations = CheckFS(root.FS)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dirty, err := dirtyFreeSpace(ctx, img, root.FS, root.Offset)
	if err != nil {
		return nil, fmt.Errorf("lint: %s: checking free space: %w", path, err)
	}
	if dirty > freeSpaceLimit {
		rep.Violations = append(rep.Violations, Violation{Rule: FreeSpaceRule,
			Message: fmt.Sprintf("%d MiB of free filesystem space holds old data: it bloats the image; discard it (fstrim, or zero it before converting)", dirty>>20)})
	}
	return rep, nil
}

func osName(fsys fs.FS) string {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return ""
}

// dirtyFreeSpace counts non-zero bytes in the filesystem's free blocks,
// reading only what the image container actually stores.
func dirtyFreeSpace(ctx context.Context, img *image.Image, fsys *ext4.FS, partOff int64) (int64, error) {
	bs := int64(fsys.BlockSize())
	buf := make([]byte, 1<<20)
	var dirty int64
	err := fsys.FreeRanges(func(first, count uint64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		off, length := partOff+int64(first)*bs, int64(count)*bs
		if off+length > img.Size() {
			length = img.Size() - off
		}
		return img.Allocated(off, length, func(off, length int64) error {
			for length > 0 {
				n := min(length, int64(len(buf)))
				if _, err := img.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				for b := int64(0); b < n; b += bs {
					if !isZero(buf[b:min(b+bs, n)]) {
						dirty += min(bs, n-b)
					}
				}
				off, length = off+n, length-n
			}
			return nil
		})
	})
	return dirty, err
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
