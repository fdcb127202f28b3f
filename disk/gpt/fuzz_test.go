package gpt

import (
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// compactGPT builds an 8-sector disk with a 4-entry GPT (small inputs
// fuzz faster than a real 34-sector table): MBR, header, entries, three
// data sectors, backup entries, backup header.
func compactGPT(parts ...Partition) []byte {
	d := make([]byte, 8*SectorSize)
	copy(d[440:], protectiveMBR(7))
	entries := make([]byte, 4*EntrySize)
	for i, p := range parts {
		marshalEntry(entries[i*EntrySize:], p)
	}
	h := header{myLBA: 1, altLBA: 7, firstUsable: 3, lastUsab: 5, diskGUID: DeriveGUID("fuzz"),
		entriesLBA: 2, numEntries: 4, entrySize: EntrySize, entriesCRC: crc32.ChecksumIEEE(entries)}
	copy(d[1*SectorSize:], h.marshal())
	copy(d[2*SectorSize:], entries)
	b := h
	b.myLBA, b.altLBA, b.entriesLBA = 7, 1, 6
	copy(d[6*SectorSize:], entries)
	copy(d[7*SectorSize:], b.marshal())
	return d
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
		// What Read returns and Write accepts must survive a round trip.
		size = max(size-size%SectorSize, minDiskSize)
		out := make(disk, size)
		if tab.Write(out, size) != nil {
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
