package iso

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// Read reads a seed image of either format back: its label and its files,
// sorted by name. It understands what Write produces and what
// cloud-localds produces (genisoimage ISO9660 with Rock Ridge and Joliet,
// or mkfs.vfat + mcopy FAT), preferring Rock Ridge over Joliet over
// primary ISO9660 names, and VFAT long names over 8.3 names.
//
// Read is safe on arbitrary bytes: it never panics, bounds every
// allocation by the image size and the package limits, and rejects images
// with subdirectories, more than MaxEntries files, more than MaxTotalSize
// bytes of data, or names Write would refuse. Errors start with "iso: ".
func Read(r io.ReaderAt, size int64) (label string, entries []Entry, err error) {
	if r == nil {
		return "", nil, errors.New("iso: nil reader")
	}
	if size < 0 {
		return "", nil, fmt.Errorf("iso: negative image size %d", size)
	}
	img := &image{r: r, size: size}
	if size >= (lbaPVD+1)*sectorSize {
		magic, err := img.read(lbaPVD*sectorSize+1, 5, "volume descriptor")
		if err != nil {
			return "", nil, err
		}
		if string(magic) == "CD001" {
			label, entries, err = readISO(img)
			return finish(label, entries, err)
		}
	}
	if size >= fatSectorSize {
		boot, err := img.read(0, fatSectorSize, "boot sector")
		if err != nil {
			return "", nil, err
		}
		if boot[510] == 0x55 && boot[511] == 0xaa {
			label, entries, err = readFAT(img, boot)
			return finish(label, entries, err)
		}
	}
	return "", nil, fmt.Errorf("iso: not an ISO9660 or FAT image (%d bytes)", size)
}

// finish sorts the entries and applies Write's rules to them, so callers
// get only names that are safe to use as file names.
func finish(label string, entries []Entry, err error) (string, []Entry, error) {
	if err != nil {
		return "", nil, err
	}
	sorted, err := checkEntries(entries)
	if err != nil {
		return "", nil, err
	}
	return label, sorted, nil
}

// image is a bounds-checked view of the reader.
type image struct {
	r    io.ReaderAt
	size int64
}

// read returns n bytes at off, or an error naming what was being read if
// they are not all inside the image.
func (m *image) read(off, n int64, what string) ([]byte, error) {
	if off < 0 || n < 0 || off > m.size || n > m.size-off {
		return nil, fmt.Errorf("iso: %s at offset %d (%d bytes) lies outside the %d-byte image", what, off, n, m.size)
	}
	b := make([]byte, n)
	k, err := m.r.ReadAt(b, off)
	if int64(k) == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("iso: read %s: %w", what, err)
}

// collector enforces the package limits before file data is allocated.
type collector struct {
	entries []Entry
	total   int64
}

func (c *collector) check(name string, size int64) error {
	if len(c.entries) >= MaxEntries {
		return fmt.Errorf("iso: image holds more than %d files", MaxEntries)
	}
	if size < 0 || size > MaxTotalSize-c.total {
		return fmt.Errorf("iso: entry %q: total data exceeds %d bytes", name, MaxTotalSize)
	}
	c.total += size
	return nil
}

func (c *collector) add(name string, data []byte) {
	c.entries = append(c.entries, Entry{Name: name, Data: data})
}

// trimID strips the padding of a fixed-width text field.
func trimID(b []byte) string {
	return strings.TrimRight(string(b), " \x00")
}
