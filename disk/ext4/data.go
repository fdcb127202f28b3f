package ext4

import (
	"errors"
	"fmt"
	"io"
)

// maxLink bounds symlink targets (PATH_MAX).
const maxLink = 4096

// fileData reads an inode's content.
type fileData struct {
	f      *FS
	size   int64
	inline []byte // whole content, when stored in the inode
	m      mapper // otherwise
}

func (f *FS) openData(in *inode) (*fileData, error) {
	d := &fileData{f: f, size: in.Size}
	if in.Flags&flagEncrypt != 0 {
		return nil, fmt.Errorf("ext4: inode %d is encrypted", in.InodeNumber)
	}
	switch typ := in.Mode & modeType; {
	case typ != modeFile && typ != modeDir && typ != modeLink:
		d.size = 0 // devices keep their numbers in i_block; no content
	case in.Flags&flagInlineData != 0:
		var err error
		if d.inline, err = f.inlineData(in); err != nil {
			return nil, err
		}
	case typ == modeLink && in.Size < iBlockLen && f.dataSectors(in) == 0:
		d.inline = in.iblock[:in.Size] // fast symlink
	case in.Flags&flagExtents != 0:
		d.m = &extentMapper{f: f, ino: in.InodeNumber, root: in.iblock[:], nodes: map[uint64][]byte{}}
	default:
		d.m = newBlockMapper(f, in)
	}
	return d, nil
}

// ReadAt reads like a file: holes are zeros, and short reads at the end
// come with io.EOF.
func (d *fileData) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("ext4: negative offset")
	}
	if off >= d.size {
		return 0, io.EOF
	}
	var eof error
	if rest := d.size - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	if d.m == nil {
		return copy(p, d.inline[off:]), eof
	}
	bs := d.f.sb.blockSize
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		phys, run, err := d.m.lookup(uint64(pos / bs))
		if err != nil {
			return n, err
		}
		chunk := len(p) - n
		if avail := run*uint64(bs) - uint64(pos%bs); avail < uint64(chunk) {
			chunk = int(avail)
		}
		if phys == 0 {
			clear(p[n : n+chunk])
		} else if err := d.f.readFull(p[n:n+chunk], phys*uint64(bs)+uint64(pos%bs)); err != nil {
			return n, err
		}
		n += chunk
	}
	return n, eof
}

// readLink returns a symlink's target.
func (f *FS) readLink(in *inode) (string, error) {
	if in.Size > maxLink {
		return "", fmt.Errorf("ext4: inode %d: symlink of %d bytes", in.InodeNumber, in.Size)
	}
	d, err := f.openData(in)
	if err != nil {
		return "", err
	}
	b := make([]byte, in.Size)
	if n, err := d.ReadAt(b, 0); n < len(b) {
		return "", err
	}
	return string(b), nil
}
