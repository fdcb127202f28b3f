package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// qcow2Header holds the fields Open checks; offsets are in doc.go.
type qcow2Header struct {
	version       uint32
	backingOffset uint64
	backingSize   uint32
	clusterBits   uint32
	size          uint64
	backingFormat string
}

// Incompatible feature bits go-qcow2reader can read: dirty, corrupt (both
// only warnings), compression type, extended L2 entries.
const knownIncompatible = 1<<0 | 1<<1 | 1<<3 | 1<<4

// readQcow2Header parses and sanity-checks the header of the qcow2 file f
// of fileSize bytes.
func readQcow2Header(f io.ReaderAt, fileSize int64) (*qcow2Header, error) {
	var b [112]byte
	n, err := f.ReadAt(b[:], 0)
	if n < 72 {
		return nil, fmt.Errorf("truncated header: %v", err)
	}
	h := &qcow2Header{
		version:       be32(b[:], 4),
		backingOffset: be64(b[:], 8),
		backingSize:   be32(b[:], 16),
		clusterBits:   be32(b[:], 20),
		size:          be64(b[:], 24),
	}
	if h.version != 2 && h.version != 3 {
		return nil, fmt.Errorf("unsupported version %d", h.version)
	}
	if h.clusterBits < 9 || h.clusterBits > 21 {
		return nil, fmt.Errorf("cluster bits %d outside 9..21", h.clusterBits)
	}
	if h.size > 1<<62 {
		return nil, fmt.Errorf("virtual size %d too large", h.size)
	}
	if m := be32(b[:], 32); m != 0 {
		return nil, fmt.Errorf("encrypted (crypt method %d); kiln reads unencrypted images", m)
	}
	l1Size, l1Offset := uint64(be32(b[:], 36)), be64(b[:], 40)
	if l1Offset > uint64(fileSize) || l1Size*8 > uint64(fileSize)-l1Offset {
		return nil, fmt.Errorf("L1 table (%d entries at %d) outside the %d-byte file", l1Size, l1Offset, fileSize)
	}
	extStart := uint64(72)
	if h.version == 3 {
		if n < 104 {
			return nil, fmt.Errorf("truncated version 3 header: %v", err)
		}
		incompat := be64(b[:], 72)
		if incompat&(1<<2) != 0 {
			return nil, errors.New("uses an external data file, which kiln does not read")
		}
		if unknown := incompat &^ knownIncompatible; unknown != 0 {
			return nil, fmt.Errorf("unknown incompatible features %#x", unknown)
		}
		extStart = uint64(be32(b[:], 100))
		if extStart < 104 || extStart > 1<<h.clusterBits {
			return nil, fmt.Errorf("header length %d invalid", extStart)
		}
		if extStart > 104 && n >= 105 && b[104] > 1 {
			return nil, fmt.Errorf("unknown compression type %d", b[104])
		}
	}
	if h.backingOffset != 0 {
		if h.backingSize == 0 || h.backingSize > 1023 ||
			h.backingOffset+uint64(h.backingSize) > uint64(min(fileSize, 1<<h.clusterBits)) {
			return nil, fmt.Errorf("backing file name (%d bytes at %d) invalid", h.backingSize, h.backingOffset)
		}
		if h.backingFormat, err = backingFormat(f, extStart, 1<<h.clusterBits); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// backingFormat finds the backing file format extension among the header
// extensions, which end by the end of the first cluster.
func backingFormat(f io.ReaderAt, off, end uint64) (string, error) {
	for i := 0; i < 64 && off+8 <= end; i++ {
		var hdr [8]byte
		if _, err := f.ReadAt(hdr[:], int64(off)); err != nil {
			return "", fmt.Errorf("reading header extension: %w", err)
		}
		typ, length := be32(hdr[:], 0), uint64(be32(hdr[:], 4))
		off += 8
		if typ == 0 {
			return "", nil
		}
		if off+length > end {
			return "", errors.New("header extension runs past the first cluster")
		}
		if typ == 0xe2792aca {
			name := make([]byte, length)
			if _, err := f.ReadAt(name, int64(off)); err != nil {
				return "", fmt.Errorf("reading backing format: %w", err)
			}
			return string(name), nil
		}
		off += (length + 7) &^ 7
	}
	return "", nil
}

// be32/be64 read big-endian fields of the qcow2 header.
func be32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
func be64(b []byte, off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }
