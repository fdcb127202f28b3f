package gpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf16"
)

const (
	signature  = "EFI PART"
	revision   = 0x00010000
	headerSize = 92
)

// header is the part of a GPT header that varies; offsets are in doc.go.
type header struct {
	myLBA, altLBA         uint64
	firstUsable, lastUsab uint64
	diskGUID              GUID
	entriesLBA            uint64
	numEntries, entrySize uint32
	entriesCRC            uint32
}

func (h *header) marshal() []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	copy(b[0:], signature)
	le.PutUint32(b[8:], revision)
	le.PutUint32(b[12:], headerSize)
	le.PutUint64(b[24:], h.myLBA)
	le.PutUint64(b[32:], h.altLBA)
	le.PutUint64(b[40:], h.firstUsable)
	le.PutUint64(b[48:], h.lastUsab)
	copy(b[56:72], h.diskGUID[:])
	le.PutUint64(b[72:], h.entriesLBA)
	le.PutUint32(b[80:], h.numEntries)
	le.PutUint32(b[84:], h.entrySize)
	le.PutUint32(b[88:], h.entriesCRC)
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:headerSize]))
	return b
}

// parseHeader checks signature, revision, size and CRC of a header sector.
func parseHeader(b []byte) (*header, error) {
	le := binary.LittleEndian
	if string(b[:8]) != signature {
		return nil, errors.New("no \"EFI PART\" signature")
	}
	if rev := le.Uint32(b[8:]); rev>>16 != 1 {
		return nil, fmt.Errorf("unknown revision %#08x", rev)
	}
	size := le.Uint32(b[12:])
	if size < headerSize || size > SectorSize {
		return nil, fmt.Errorf("header size %d outside %d..%d", size, headerSize, SectorSize)
	}
	c := make([]byte, size)
	copy(c, b[:size])
	le.PutUint32(c[16:], 0)
	if got, want := crc32.ChecksumIEEE(c), le.Uint32(b[16:]); got != want {
		return nil, fmt.Errorf("header CRC %#08x, stored %#08x", got, want)
	}
	h := &header{
		myLBA:       le.Uint64(b[24:]),
		altLBA:      le.Uint64(b[32:]),
		firstUsable: le.Uint64(b[40:]),
		lastUsab:    le.Uint64(b[48:]),
		entriesLBA:  le.Uint64(b[72:]),
		numEntries:  le.Uint32(b[80:]),
		entrySize:   le.Uint32(b[84:]),
		entriesCRC:  le.Uint32(b[88:]),
	}
	copy(h.diskGUID[:], b[56:72])
	return h, nil
}

func marshalEntry(b []byte, p Partition) {
	le := binary.LittleEndian
	copy(b[0:16], p.Type[:])
	copy(b[16:32], p.GUID[:])
	le.PutUint64(b[32:], p.FirstLBA)
	le.PutUint64(b[40:], p.LastLBA)
	le.PutUint64(b[48:], p.Attributes)
	for i, u := range utf16.Encode([]rune(p.Name)) {
		le.PutUint16(b[56+2*i:], u)
	}
}

func parseEntry(b []byte) Partition {
	le := binary.LittleEndian
	var p Partition
	copy(p.Type[:], b[0:16])
	copy(p.GUID[:], b[16:32])
	p.FirstLBA = le.Uint64(b[32:])
	p.LastLBA = le.Uint64(b[40:])
	p.Attributes = le.Uint64(b[48:])
	var name []uint16
	for i := 56; i+1 < 128; i += 2 {
		u := le.Uint16(b[i:])
		if u == 0 {
			break
		}
		name = append(name, u)
	}
	p.Name = string(utf16.Decode(name))
	return p
}
