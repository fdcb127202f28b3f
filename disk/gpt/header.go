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
