package iso

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kiln-project/kiln/internal/epoch"
)

// Entry is one file in the seed's flat root directory.
type Entry struct {
	// Name is the file name as cloud-init sees it, e.g. "user-data".
	Name string
	// Data is the file content.
	Data []byte
}

// Format selects the filesystem written by [Write].
type Format int

const (
	// ISO9660 writes an ISO9660 image with Rock Ridge and Joliet, as
	// cloud-localds does by default. It is the zero value.
	ISO9660 Format = iota
	// VFAT writes a FAT12/FAT16 image with VFAT long names, as
	// cloud-localds --filesystem=vfat does.
	VFAT
)

// String returns "iso9660" or "vfat", the names blkid reports.
func (f Format) String() string {
	switch f {
	case ISO9660:
		return "iso9660"
	case VFAT:
		return "vfat"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Options controls how [Write] lays out a seed.
type Options struct {
	// Format is the filesystem to write; the zero value is ISO9660.
	Format Format
	// Label is the volume label; empty means "cidata" for ISO9660 and
	// "CIDATA" for VFAT. VFAT labels are stored in upper case.
	Label string
	// ModTime stamps every file, the root directory and the volume; the
	// zero value means epoch.Default (the Unix epoch): callers pass the
	// build's SOURCE_DATE_EPOCH (see internal/epoch). It is stored in UTC, truncated
	// to the second (two seconds on FAT) and clamped to what the format
	// can represent (1900-2155 for ISO9660, 1980-2107 for FAT).
	ModTime time.Time
}

// Limits on what a seed may hold. They are far above what a NoCloud seed
// needs and keep every offset comfortably inside FAT16 and ISO9660 limits.
const (
	// MaxEntries is the most files a seed may hold.
	MaxEntries = 64
	// MaxNameLen is the longest entry name in bytes (Joliet's limit).
	MaxNameLen = 64
	// MaxTotalSize is the most file data, in bytes, a seed may hold.
	MaxTotalSize = 64 << 20
)

// layout is a fully planned image: every size and offset is known, so
// writing it cannot fail on bad input, only on the writer.
type layout interface {
	writeTo(w *errWriter)
}

// Write validates entries, plans the whole image and writes it to w. Entries
// are stored sorted by name whatever their order in the slice. When the
// input is invalid nothing is written; errors start with "iso: ".
//
// Names must survive Rock Ridge, Joliet and VFAT unchanged, so they must be
// 1 to MaxNameLen bytes of printable ASCII without / \ : * ? " < > | ;,
// must not start or end with a space or end with '.', and must be unique
// ignoring case. At most MaxEntries entries and MaxTotalSize bytes of data.
func Write(w io.Writer, opts Options, entries []Entry) error {
	l, err := plan(opts, entries)
	if err != nil {
		return err
	}
	ew := &errWriter{w: w}
	l.writeTo(ew)
	if ew.err != nil {
		return fmt.Errorf("iso: write image: %w", ew.err)
	}
	return nil
}

// plan validates the input and builds the layout for opts.Format.
func plan(opts Options, entries []Entry) (layout, error) {
	mod := epoch.Or(opts.ModTime)
	switch opts.Format {
	case ISO9660:
		label := opts.Label
		if label == "" {
			label = "cidata"
		}
		if err := checkISOLabel(label); err != nil {
			return nil, err
		}
		sorted, err := checkEntries(entries)
		if err != nil {
			return nil, err
		}
		return planISO(label, mod, sorted), nil
	case VFAT:
		label := opts.Label
		if label == "" {
			label = "CIDATA"
		}
		label, err := checkFATLabel(label)
		if err != nil {
			return nil, err
		}
		sorted, err := checkEntries(entries)
		if err != nil {
			return nil, err
		}
		return planFAT(label, mod, sorted)
	}
	return nil, fmt.Errorf("iso: unknown format %d", int(opts.Format))
}

// errWriter remembers the first write error so the layout writers can
// stay linear; it also counts bytes so they can pad to offsets.
type errWriter struct {
	w   io.Writer
	n   int64
	err error
}

var zeros [32 << 10]byte

func (e *errWriter) write(p []byte) {
	if e.err != nil {
		return
	}
	n, err := e.w.Write(p)
	e.n += int64(n)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	e.err = err
}

// padTo writes zeros until off bytes have been written.
func (e *errWriter) padTo(off int64) {
	for e.err == nil && e.n < off {
		k := min(off-e.n, int64(len(zeros)))
		e.write(zeros[:k])
	}
	if e.err == nil && e.n > off {
		e.err = errors.New("internal layout overrun") // a planning bug, never input
	}
}
