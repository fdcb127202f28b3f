package ext4

import (
	"encoding/binary"
	"fmt"
)

const (
	xattrMagic       = 0xEA020000
	xattrIndexSystem = 7 // "system." prefix
)

// inlineData returns an inline_data inode's content: i_block, then the
// value of its in-inode "system.data" attribute.
func (f *FS) inlineData(in *inode) ([]byte, error) {
	data := in.iblock[:]
	if in.Size <= iBlockLen {
		return data[:in.Size], nil
	}
	v, err := in.inodeXattr("data", xattrIndexSystem)
	if err != nil {
		return nil, err
	}
	data = append(data, v...)
	if int64(len(data)) < in.Size {
		return nil, fmt.Errorf("ext4: inode %d: %d bytes of inline data, size says %d", in.InodeNumber, len(data), in.Size)
	}
	return data[:in.Size], nil
}

// inodeXattr finds an extended attribute in the space after the extra inode
// fields. A missing one reads as empty.
func (in *inode) inodeXattr(name string, index byte) ([]byte, error) {
	le := binary.LittleEndian
	b := in.raw
	start := 128 + in.extra
	if in.extra == 0 || start+4 > len(b) || le.Uint32(b[start:]) != xattrMagic {
		return nil, nil
	}
	first := start + 4 // value offsets count from the first entry
	for pos := first; pos+16 <= len(b) && le.Uint32(b[pos:]) != 0; {
		nameLen := int(b[pos])
		if pos+16+nameLen > len(b) {
			break
		}
		if b[pos+1] == index && string(b[pos+16:pos+16+nameLen]) == name {
			if le.Uint32(b[pos+4:]) != 0 {
				return nil, fmt.Errorf("ext4: inode %d: attribute value in a separate inode is unsupported", in.InodeNumber)
			}
			off, size := first+int(le.Uint16(b[pos+2:])), int(le.Uint32(b[pos+8:]))
			if off+size > len(b) || size < 0 {
				return nil, fmt.Errorf("ext4: inode %d: attribute %q outside the inode", in.InodeNumber, name)
			}
			return b[off : off+size], nil
		}
		pos += (16 + nameLen + 3) &^ 3
	}
	return nil, nil
}
