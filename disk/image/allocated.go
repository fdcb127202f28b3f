package image

import "fmt"

// Allocated calls fn for the parts of [off, off+length) that the container
// stores as data. Unallocated and known-zero clusters of a qcow2 are
// skipped; a raw image is data throughout.
func (i *Image) Allocated(off, length int64, fn func(off, length int64) error) error {
	if off < 0 || length < 0 || off+length > i.size {
		return fmt.Errorf("image: %s: range %d+%d outside the %d-byte disk", i.path, off, length, i.size)
	}
	if i.file != nil {
		return fn(off, length)
	}
	end := off + length
	for off < end {
		ext, err := i.qcow.Extent(off, end-off)
		if err != nil {
			return fmt.Errorf("image: %s: %w", i.path, err)
		}
		if ext.Length <= 0 {
			return fmt.Errorf("image: %s: empty extent at %d", i.path, off)
		}
		if ext.Allocated && !ext.Zero {
			if err := fn(ext.Start, ext.Length); err != nil {
				return err
			}
		}
		off = ext.Start + ext.Length
	}
	return nil
}
