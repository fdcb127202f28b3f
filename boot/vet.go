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

// Vet checks an image kiln did not make before anything opens it, and
// returns its format and size.
func Vet(ctx context.Context, path string) (ImageInfo, error) {
	img, err := image.Open(path)
	if err != nil {
		return ImageInfo{}, err
	}
	defer img.Close()
	return ImageInfo{Format: string(img.Format()), VirtualSize: img.Size()}, nil
}
