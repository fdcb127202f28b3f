package boot

import (
	"context"

	"github.com/kiln-project/kiln/disk/image"
)

// ImageInfo is what Vet learned of an image.
type ImageInfo struct {
	Format      string // qcow2 or raw
	VirtualSize int64  // bytes the guest sees
}

// Vet checks an image kiln did not make before anything — QEMU, qemu-img
// or a kiln reader — opens it: a qcow2 or raw disk of a sane size, with no
// backing file, external data file or encryption (see image.Check). opts
// can raise the size limit for an image kiln baked itself.
func Vet(ctx context.Context, path string, opts ...image.Option) (ImageInfo, error) {
	info, err := image.Check(path, opts...)
	if err != nil {
		return ImageInfo{}, err
	}
	return ImageInfo{Format: string(info.Format), VirtualSize: info.VirtualSize}, nil
}
