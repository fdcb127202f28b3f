package image

import (
	"errors"
	"fmt"
	"io"
	"os"

	qcow2reader "github.com/lima-vm/go-qcow2reader"
	lima "github.com/lima-vm/go-qcow2reader/image"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"
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

// Open opens the qcow2 or raw image at path. Any other format is an error
// that names it.
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	img, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return img, nil
}

func open(path string, f *os.File) (*Image, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("image: %s is a directory", path)
	}
	name, err := Detect(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("image: %s: %s", path, trimPrefix(err))
	}
	switch name {
	case string(Raw):
		return &Image{path: path, format: Raw, size: st.Size(), file: f}, nil
	case string(QCOW2):
		return openQcow2(path, f, st.Size())
	default:
		return nil, fmt.Errorf("image: %s is %s; kiln reads qcow2 and raw images", path, describe(name))
	}
}

func openQcow2(path string, f *os.File, fileSize int64) (img *Image, err error) {
	h, err := readQcow2Header(f, fileSize)
	if err != nil {
		return nil, fmt.Errorf("image: %s: qcow2: %w", path, err)
	}
	if err := checkBackingChain(f, h); err != nil {
		return nil, fmt.Errorf("image: %s: qcow2: %w", path, err)
	}
	defer func() {
		// The checks above keep go-qcow2reader on paths that work; this is
		// the last line of defence for a file that changed meanwhile.
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("image: %s: qcow2 reader failed: %v", path, r)
		}
	}()
	q, err := qcow2reader.OpenWithType(f, qcow2.Type)
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
		size:   int64(h.size),
		qcow:   q,
		cache:  newChunkCache(int64(1) << h.clusterBits),
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
