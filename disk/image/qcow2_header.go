package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// qcow2Header holds the fields Check looks at; offsets are in doc.go.
type qcow2Header struct {
	version       uint32
	backingOffset uint64
	backingSize   uint32
	clusterBits   uint32
	size          uint64
	cryptMethod   uint32
	incompatible  uint64 // version 3 only
	backingName   string // as recorded: relative names are relative to the image's directory
	backingFormat string // header extension 0xe2792aca
	dataFile      string // header extension 0x44415441
}

// Incompatible feature bits of a version 3 header.
const (
	incompatDataFile = 1 << 2
	// Bits go-qcow2reader can read: dirty, corrupt (both only warnings),
	// compression type, extended L2 entries. The data file bit is refused
	// by Check with its own message.
	knownIncompatible = 1<<0 | 1<<1 | incompatDataFile | 1<<3 | 1<<4
)

// Limits QEMU 7.2 itself enforces on a qcow2 header (block/qcow2.h): an
// image beyond them does not open there either.
const (
	maxL1Bytes       = 32 << 20 // QCOW_MAX_L1_SIZE
	maxRefTableBytes = 8 << 20  // QCOW_MAX_REFTABLE_SIZE
	maxSnapshots     = 65536    // QCOW_MAX_SNAPSHOTS
	maxRefcountOrder = 6        // 64-bit refcounts
)

// Header extension types kiln reads (the rest are skipped).
const (
	extEnd           = 0
	extBackingFormat = 0xe2792aca
	extDataFile      = 0x44415441
)

// readQcow2Header parses the header of the qcow2 file f of fileSize bytes
// and checks that every field kiln or go-qcow2reader relies on is in range.
// Whether its backing file, data file or encryption are acceptable is for
// the caller to decide.
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
		cryptMethod:   be32(b[:], 32),
	}
	if h.version != 2 && h.version != 3 {
		return nil, fmt.Errorf("unsupported version %d", h.version)
	}
	if h.clusterBits < 9 || h.clusterBits > 21 {
		return nil, fmt.Errorf("cluster bits %d outside 9..21", h.clusterBits)
	}
	cluster := uint64(1) << h.clusterBits
	if h.size > 1<<62 {
		return nil, fmt.Errorf("virtual size %d out of range", h.size)
	}
	if h.cryptMethod > 2 {
		return nil, fmt.Errorf("unknown crypt method %d", h.cryptMethod)
	}
	if err := checkTables(b[:], h, uint64(fileSize)); err != nil {
		return nil, err
	}
	extStart := uint64(72)
	if h.version == 3 {
		if n < 104 {
			return nil, fmt.Errorf("truncated version 3 header: %v", err)
		}
		h.incompatible = be64(b[:], 72)
		if unknown := h.incompatible &^ knownIncompatible; unknown != 0 {
			return nil, fmt.Errorf("unknown incompatible features %#x", unknown)
		}
		if order := be32(b[:], 96); order > maxRefcountOrder {
			return nil, fmt.Errorf("refcount order %d above %d", order, maxRefcountOrder)
		}
		extStart = uint64(be32(b[:], 100))
		if extStart < 104 || extStart > cluster || extStart%8 != 0 {
			return nil, fmt.Errorf("header length %d invalid", extStart)
		}
		if extStart > 104 && n >= 105 && b[104] > 1 {
			return nil, fmt.Errorf("unknown compression type %d", b[104])
		}
	}
	extEndOff := min(cluster, uint64(fileSize))
	if h.backingOffset != 0 {
		if h.backingSize == 0 || h.backingSize > 1023 || h.backingOffset < extStart ||
			h.backingOffset+uint64(h.backingSize) > extEndOff {
			return nil, fmt.Errorf("backing file name (%d bytes at %d) invalid", h.backingSize, h.backingOffset)
		}
		extEndOff = h.backingOffset
		name := make([]byte, h.backingSize)
		if _, err := f.ReadAt(name, int64(h.backingOffset)); err != nil {
			return nil, fmt.Errorf("reading the backing file name: %w", err)
		}
		h.backingName = string(name)
	}
	if err := readExtensions(f, h, extStart, extEndOff); err != nil {
		return nil, err
	}
	return h, nil
}

// checkTables bounds the L1 table, the refcount table and the snapshot
// table as QEMU does, and keeps them inside the file.
func checkTables(b []byte, h *qcow2Header, fileSize uint64) error {
	cluster := uint64(1) << h.clusterBits
	l1Size, l1Offset := uint64(be32(b, 36)), be64(b, 40)
	if l1Size > maxL1Bytes/8 {
		return fmt.Errorf("L1 table of %d entries larger than %d", l1Size, maxL1Bytes/8)
	}
	if l1Offset > fileSize || l1Size*8 > fileSize-l1Offset {
		return fmt.Errorf("L1 table (%d entries at %d) outside the %d-byte file", l1Size, l1Offset, fileSize)
	}
	// Every guest cluster needs an L1 entry: an L2 table of clusterSize/8
	// entries (16-byte entries with extended L2) covers that many clusters.
	// Extended L2 is a version 3 feature bit read later; assuming 8-byte
	// entries only makes this bound looser.
	perL1 := cluster * (cluster / 8)
	if need := (h.size + perL1 - 1) / perL1; l1Size < need {
		return fmt.Errorf("L1 table of %d entries too small for a %d-byte disk (needs %d)", l1Size, h.size, need)
	}
	refOffset, refClusters := be64(b, 48), uint64(be32(b, 56))
	if refClusters > maxRefTableBytes/cluster {
		return fmt.Errorf("refcount table of %d clusters too large", refClusters)
	}
	if refOffset > fileSize || refOffset%cluster != 0 {
		return fmt.Errorf("refcount table offset %d invalid", refOffset)
	}
	if snapshots := be32(b, 60); snapshots > maxSnapshots {
		return fmt.Errorf("%d snapshots, more than %d", snapshots, maxSnapshots)
	}
	return nil
}

// readExtensions reads the header extensions between off and end (the
// backing file name, or the end of the first cluster): the backing file
// format and the external data file name.
func readExtensions(f io.ReaderAt, h *qcow2Header, off, end uint64) error {
	for i := 0; i < 64 && off+8 <= end; i++ {
		var hdr [8]byte
		if _, err := f.ReadAt(hdr[:], int64(off)); err != nil {
			return fmt.Errorf("reading header extension: %w", err)
		}
		typ, length := be32(hdr[:], 0), uint64(be32(hdr[:], 4))
		off += 8
		if typ == extEnd {
			return nil
		}
		if length > end-off {
			return errors.New("header extension runs past the end of the header")
		}
		switch typ {
		case extBackingFormat, extDataFile:
			if length > 1023 {
				return fmt.Errorf("header extension %#x of %d bytes too long", typ, length)
			}
			v := make([]byte, length)
			if _, err := f.ReadAt(v, int64(off)); err != nil {
				return fmt.Errorf("reading header extension %#x: %w", typ, err)
			}
			if typ == extBackingFormat {
				h.backingFormat = string(v)
			} else {
				h.dataFile = string(v)
			}
		}
		off += (length + 7) &^ 7
	}
	return nil
}

// be32/be64 read big-endian fields of the qcow2 header.
func be32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
func be64(b []byte, off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }
