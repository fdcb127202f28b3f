package image

import (
	"fmt"
	"io"
	"os"

	lima "github.com/lima-vm/go-qcow2reader/image"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"
	"github.com/lima-vm/go-qcow2reader/image/raw"
)

// go-qcow2reader opens a qcow2 image's backing file itself, by the name in
// the header, then hands the opened file to the opener it was given. kiln
// gives it two safeguards beyond Check:
//
//   - The header it reads has its backing file offset masked to 0 (no
//     backing file) wherever the verified chain ends, so a header that
//     changed after Check still makes it open nothing.
//   - The opener accepts only the file Check verified at that depth
//     (os.SameFile), in the format Check verified.

// qcow2File is an image file as go-qcow2reader sees it.
type qcow2File struct {
	f         *os.File
	noBacking bool // the header reads as naming no backing file
}

// The bytes of the qcow2 header holding the backing file name offset.
const backingOffsetField, backingOffsetEnd = 8, 16

func (q *qcow2File) ReadAt(p []byte, off int64) (int, error) {
	n, err := q.f.ReadAt(p, off)
	if q.noBacking && off < backingOffsetEnd && off+int64(n) > backingOffsetField {
		for i := max(off, backingOffsetField); i < min(off+int64(n), backingOffsetEnd); i++ {
			p[i-off] = 0
		}
	}
	return n, err
}

// Name lets go-qcow2reader resolve relative backing file names.
func (q *qcow2File) Name() string { return q.f.Name() }

// Close is called by go-qcow2reader's Close.
func (q *qcow2File) Close() error { return q.f.Close() }

// openQcow2Chain opens the qcow2 image f as go-qcow2reader, with the
// backing chain check verified.
func openQcow2Chain(f *os.File, chain []link) (*qcow2.Qcow2, error) {
	return qcow2.Open(&qcow2File{f: f, noBacking: len(chain) == 0}, chainOpener(chain))
}

// chainOpener opens backing files for go-qcow2reader: chain[0] at this
// depth, the rest below.
func chainOpener(chain []link) lima.OpenWithType {
	return func(ra io.ReaderAt, t lima.Type) (lima.Image, error) {
		f, ok := ra.(*os.File)
		if !ok {
			return failed(ra, fmt.Errorf("backing file of unexpected type %T", ra))
		}
		if len(chain) == 0 {
			return failed(f, fmt.Errorf("backing file %s not in the verified chain", f.Name()))
		}
		l := chain[0]
		st, err := f.Stat()
		if err != nil {
			return failed(f, err)
		}
		if !os.SameFile(st, l.file) || Format(t) != l.format {
			return failed(f, fmt.Errorf("backing file %s (%s) is not the %s %s checked before", f.Name(), t, l.format, l.path))
		}
		if l.format == Raw {
			return raw.Open(f)
		}
		q, err := openQcow2Chain(f, chain[1:])
		if err != nil {
			if q != nil {
				return q, err
			}
			return failed(f, err)
		}
		return q, nil
	}
}

// failedImage is the lima.Image an opener returns with its error:
// go-qcow2reader closes what the opener returned, even on error.
type failedImage struct {
	ra  io.ReaderAt
	err error
}

func failed(ra io.ReaderAt, err error) (lima.Image, error) {
	return &failedImage{ra: ra, err: err}, err
}

func (i *failedImage) ReadAt([]byte, int64) (int, error) { return 0, i.err }
func (i *failedImage) Extent(int64, int64) (lima.Extent, error) {
	return lima.Extent{}, i.err
}
func (i *failedImage) Type() lima.Type { return "" }
func (i *failedImage) Size() int64     { return -1 }
func (i *failedImage) Readable() error { return i.err }
func (i *failedImage) Close() error {
	if c, ok := i.ra.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
