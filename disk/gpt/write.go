package gpt

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Write writes the protective MBR (bytes 440..511 of LBA 0 only), both
// headers and both entry arrays for a disk of diskSize bytes, after
// checking the table (see validate); it reports every problem at once.
// Partitions go into entries in order of first LBA.
func (t *Table) Write(w io.WriterAt, diskSize int64) error {
	parts, err := t.validate(diskSize)
	if err != nil {
		return err
	}
	last := uint64(diskSize/SectorSize) - 1
	entries := make([]byte, NumEntries*EntrySize)
	for i, p := range parts {
		marshalEntry(entries[i*EntrySize:], p)
	}
	primary := header{
		myLBA:       1,
		altLBA:      last,
		firstUsable: firstUsable,
		lastUsab:    lastUsable(diskSize),
		diskGUID:    t.DiskGUID,
		entriesLBA:  2,
		numEntries:  NumEntries,
		entrySize:   EntrySize,
		entriesCRC:  crc32.ChecksumIEEE(entries),
	}
	backup := primary
	backup.myLBA, backup.altLBA, backup.entriesLBA = last, 1, last-entrySecs

	for _, c := range []struct {
		lba  uint64
		off  int64
		data []byte
	}{
		{0, 440, protectiveMBR(last)},
		{1, 0, primary.marshal()},
		{2, 0, entries},
		{backup.entriesLBA, 0, entries},
		{last, 0, backup.marshal()},
	} {
		if _, err := w.WriteAt(c.data, int64(c.lba)*SectorSize+c.off); err != nil {
			return fmt.Errorf("gpt: writing LBA %d: %w", c.lba, err)
		}
	}
	return nil
}

// protectiveMBR returns bytes 440..511 of LBA 0: one partition of type
// 0xEE from LBA 1 to the end of the disk (or as far as 32 bits reach).
func protectiveMBR(last uint64) []byte {
	b := make([]byte, 72) // disk signature and reserved stay zero
	e := b[6:22]
	e[0] = 0                   // not bootable
	e[1], e[2], e[3] = 0, 2, 0 // CHS of LBA 1: head 0, sector 2, cylinder 0
	e[4] = 0xEE
	copy(e[5:8], chs(last))
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(min(last, 0xFFFFFFFF)))
	b[70], b[71] = 0x55, 0xAA
	return b
}

// chs encodes an LBA in the legacy 255-head, 63-sector geometry, or
// FF FF FF when it lies beyond cylinder 1023, as UEFI asks.
func chs(lba uint64) []byte {
	c := lba / (255 * 63)
	if c > 1023 {
		return []byte{0xFF, 0xFF, 0xFF}
	}
	h := lba / 63 % 255
	s := lba%63 + 1
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}
