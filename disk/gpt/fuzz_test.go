package gpt

import (
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

// compactGPT builds an 8-sector disk with a 4-entry GPT (small inputs
// fuzz faster than a real 34-sector table, which is all go-diskfs
// writes): MBR, header, entries, three data sectors, backup entries,
// backup header.
func compactGPT(parts ...Partition) []byte {
	d := make([]byte, 8*SectorSize)
	le := binary.LittleEndian
	d[450] = 0xEE // protective partition, LBAs 1..7
	le.PutUint32(d[454:], 1)
	le.PutUint32(d[458:], 7)
	d[510], d[511] = 0x55, 0xAA
	entries := make([]byte, 4*EntrySize)
	for i, p := range parts {
		e := entries[i*EntrySize:]
		copy(e[0:16], p.Type[:])
		copy(e[16:32], p.GUID[:])
		le.PutUint64(e[32:], p.FirstLBA)
		le.PutUint64(e[40:], p.LastLBA)
		le.PutUint64(e[48:], p.Attributes)
		for j, u := range utf16.Encode([]rune(p.Name)) {
			le.PutUint16(e[56+2*j:], u)
		}
	}
	h := header{myLBA: 1, altLBA: 7, firstUsable: 3, lastUsab: 5, diskGUID: DeriveGUID("fuzz"),
		entriesLBA: 2, numEntries: 4, entrySize: EntrySize, entriesCRC: crc32.ChecksumIEEE(entries)}
	copy(d[1*SectorSize:], marshalHeader(h))
	copy(d[2*SectorSize:], entries)
	b := h
	b.myLBA, b.altLBA, b.entriesLBA = 7, 1, 6
	copy(d[6*SectorSize:], entries)
	copy(d[7*SectorSize:], marshalHeader(b))
	return d
}

// marshalHeader lays out a header sector (offsets in doc.go).
func marshalHeader(h header) []byte {
	b := make([]byte, SectorSize)
	le := binary.LittleEndian
	copy(b[0:], signature)
	le.PutUint32(b[8:], 0x00010000) // revision 1.0
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

func FuzzReadGPT(f *testing.F) {
	one := Partition{Type: TypeLinuxFilesystem, GUID: DeriveGUID("p"), Name: "data", FirstLBA: 3, LastLBA: 5}
	f.Add(compactGPT())
	f.Add(compactGPT(one))
	broken := compactGPT(one, Partition{Type: TypeEFISystem, GUID: DeriveGUID("q"), Name: "über", FirstLBA: 4, LastLBA: 9})
	broken[SectorSize+20] ^= 1 // primary header CRC
	f.Add(broken)
	fixed := compactGPT(one)
	fixed[0] = 'F'
	f.Add(fixed)
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		if len(data) > 0 && data[0] == 'F' {
			// Byte 0 is boot code, which Read ignores: use it to ask for
			// correct CRCs, so mutations get past them into the parsing.
			data = slices.Clone(data) // the fuzzer's copy must stay as it was
			fixCRCs(data, 1)
			fixCRCs(data, size/SectorSize-1)
		}
		tab, err := Read(disk(data), size)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "gpt: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		// What Read returns and go-diskfs writes must read back the same.
		const minDiskSize = 68 * SectorSize // MBR, 2 x (header + 128 entries), 1 sector
		size = max(size-size%SectorSize, minDiskSize)
		out := make(disk, size)
		if tab.ToDiskfs().Write(out, size) != nil {
			return
		}
		again, err := Read(out, size)
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if again.DiskGUID != tab.DiskGUID || len(again.Partitions) != len(tab.Partitions) {
			t.Fatalf("round trip changed the table: %+v -> %+v", tab, again)
		}
		for _, p := range again.Partitions {
			found := false
			for _, q := range tab.Partitions {
				found = found || reflect.DeepEqual(p, q)
			}
			if !found {
				t.Fatalf("round trip invented %+v", p)
			}
		}
	})
}

// fixCRCs recomputes the entry array and header CRCs of the header at lba,
// where they can be located.
func fixCRCs(d []byte, lba int64) {
	if lba < 1 || (lba+1)*SectorSize > int64(len(d)) {
		return
	}
	h := d[lba*SectorSize : (lba+1)*SectorSize]
	le := binary.LittleEndian
	at, n := le.Uint64(h[72:]), uint64(le.Uint32(h[80:]))*uint64(le.Uint32(h[84:]))
	if at < uint64(len(d))/SectorSize && n <= uint64(len(d))-at*SectorSize {
		le.PutUint32(h[88:], crc32.ChecksumIEEE(d[at*SectorSize:at*SectorSize+n]))
	}
	if size := le.Uint32(h[12:]); size >= 20 && size <= SectorSize {
		le.PutUint32(h[16:], 0)
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
	}
}
