package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/kiln-project/kiln/disk/ext4"
	"github.com/kiln-project/kiln/disk/gpt"
	"github.com/kiln-project/kiln/disk/image"
)

// Root is the Linux root filesystem of a disk image.
type Root struct {
	*ext4.FS
	// Where names the partition ("partition 3 (root)") or "whole disk".
	Where string
	// Offset and Size locate the filesystem on the disk, in bytes.
	Offset, Size int64
}

// FindRoot returns the root filesystem of a disk: the first ext2/3/4
// filesystem, in a GPT partition or on the whole disk, that holds
// etc/os-release (or usr/lib/os-release).
func FindRoot(img *image.Image) (*Root, error) {
	var cands []Root
	if t, err := gpt.Read(img, img.Size()); err == nil {
		for i, p := range t.Partitions {
			cands = append(cands, Root{Where: fmt.Sprintf("partition %d (%s)", i+1, p.Name), Offset: p.Offset(), Size: p.Size()})
		}
	}
	cands = append(cands, Root{Where: "whole disk", Offset: 0, Size: img.Size()})
	var lastErr error
	for _, c := range cands {
		fsys, err := ext4.Open(io.NewSectionReader(img, c.Offset, c.Size), c.Size)
		if err != nil {
			lastErr = err
			continue
		}
		for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
			if _, err := fs.Stat(fsys, p); err == nil {
				c.FS = fsys
				return &c, nil
			}
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no filesystem")
	}
	return nil, fmt.Errorf("no Linux root filesystem (ext2/3/4 with /etc/os-release) found (%v)", lastErr)
}

// OpenRoot opens the Linux root filesystem of the disk image at path, for
// reading an image (or a stopped VM's disk) offline; opts are image.Open's
// (a kiln overlay names its chain with image.WithBacking). Close the
// returned closer when done.
func OpenRoot(path string, opts ...image.Option) (*Root, io.Closer, error) {
	img, err := image.Open(path, opts...)
	if err != nil {
		return nil, nil, err
	}
	root, err := FindRoot(img)
	if err != nil {
		img.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return root, img, nil
}
