package image

import (
	"errors"
	"fmt"
	"io"
	"os"

	lima "github.com/lima-vm/go-qcow2reader/image"
)

// Image is the virtual disk inside an image file. It implements
// io.ReaderAt; reads are safe for concurrent use.
type Image struct {
	path   string
	format Format
	size   int64
	file   *os.File    // raw
	qcow   lima.Image  // qcow2
	cache  *chunkCache // qcow2
}

// Open opens the qcow2 or raw image at path for reading, after checking
// it as Check does, with the same options: any other format, a backing
// file not named by WithBacking, an external data file, encryption or a
// virtual size over the limit is an error that names it.
//
// A kiln overlay is opened with its chain named, such as
// Open(overlay, WithBacking(base)); go-qcow2reader then reads base where
// the overlay has no data, and opens no other file.
func Open(path string, opts ...Option) (*Image, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	img, err := open(path, f, makeOptions(opts))
	if err != nil {
		f.Close()
		return nil, err
	}
	return img, nil
}

func open(path string, f *os.File, o options) (img *Image, err error) {
	c, err := check(path, f, o)
	if err != nil {
		return nil, err
	}
	if c.info.Format == Raw {
		return &Image{path: path, format: Raw, size: c.info.VirtualSize, file: f}, nil
	}
	defer func() {
		// Check keeps go-qcow2reader on paths that work; this is the last
		// line of defence for a file that changed meanwhile.
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("image: %s: qcow2 reader failed: %v", path, r)
		}
	}()
	q, err := openQcow2Chain(f, c.chain)
	if err != nil {
		if q != nil {
			q.Close()
		}
		return nil, fmt.Errorf("image: %s: qcow2: %w", path, err)
	}
	if err := q.Readable(); err != nil {
		q.Close()
		return nil, fmt.Errorf("image: %s: qcow2: %w", path, err)
	}
	return &Image{
		path:   path,
		format: QCOW2,
		size:   c.info.VirtualSize,
		qcow:   q,
		cache:  newChunkCache(c.clusterSize),
	}, nil
}

// Size is the size of the virtual disk in bytes.
func (i *Image) Size() int64 { return i.size }

// Format is the container the disk was read from.
func (i *Image) Format() Format { return i.format }

// ReadAt reads the virtual disk: at end of disk it returns fewer bytes
// and io.EOF, like a file.
func (i *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("image: %s: negative offset %d", i.path, off)
	}
	if off >= i.size {
		return 0, io.EOF
	}
	var eof error
	if rest := i.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	var n int
	var err error
	if i.file != nil {
		n, err = i.file.ReadAt(p, off)
	} else {
		n, err = i.cache.readAt(i.qcow, i.size, p, off)
	}
	if err != nil {
		if errors.Is(err, io.EOF) && n < len(p) {
			return n, fmt.Errorf("image: %s: truncated at %d: %w", i.path, off+int64(n), io.ErrUnexpectedEOF)
		}
		if !errors.Is(err, io.EOF) {
			return n, fmt.Errorf("image: %s: %w", i.path, err)
		}
	}
	return n, eof
}

// Close releases the file (and the backing files).
func (i *Image) Close() error {
	if i.file != nil {
		return i.file.Close()
	}
	return i.qcow.Close()
}

// trimPrefix drops the "image: " of an error of this package about to be
// wrapped in another.
func trimPrefix(err error) string {
	s := err.Error()
	if len(s) > 7 && s[:7] == "image: " {
		return s[7:]
	}
	return s
}
