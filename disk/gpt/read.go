package gpt

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// maxEntryBytes bounds the entry array Read accepts (the spec minimum is
// 16 KiB; nothing real uses more than a few times that).
const maxEntryBytes = 1 << 20

// Read reads the GPT of a disk of diskSize bytes. It verifies signature,
// header CRC and entry array CRC of the primary header and falls back to
// the backup when the primary is damaged; Table.Warnings records that and
// other anomalies. Errors start with "gpt: ".
func Read(r io.ReaderAt, diskSize int64) (*Table, error) {
	if diskSize < 3*SectorSize {
		return nil, fmt.Errorf("gpt: disk of %d bytes is too small for a GPT", diskSize)
	}
	last := uint64(diskSize/SectorSize) - 1
	var warnings []string
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }

	primary, pErr := readHalf(r, 1, last)
	altLBA := last
	if primary != nil && primary.altLBA != 1 && primary.altLBA <= last {
		altLBA = primary.altLBA // trust a valid primary about where its backup is
	}
	backup, bErr := readHalf(r, altLBA, last)
	if backup == nil && altLBA != last {
		backup, bErr = readHalf(r, last, last)
	}

	var use *half
	switch {
	case pErr == nil:
		use = primary
		if bErr != nil {
			warn("backup GPT damaged: %v", bErr)
		}
	case bErr == nil:
		use = backup
		warn("primary GPT damaged (%v); using the backup at LBA %d", pErr, backup.myLBA)
	default:
		return nil, fmt.Errorf("gpt: no valid GPT: primary: %v; backup: %v", pErr, bErr)
	}
	if bErr == nil && backup.myLBA != last {
		warn("backup header at LBA %d, not at the last LBA %d: the disk grew after partitioning", backup.myLBA, last)
	}
	if pErr == nil && bErr == nil && primary.entriesCRC != backup.entriesCRC {
		warn("primary and backup entry arrays differ")
	}
	if mbrErr := checkMBR(r); mbrErr != "" {
		warn("%s", mbrErr)
	}

	t := &Table{DiskGUID: use.diskGUID}
	for i, p := range use.parts {
		if p.Type.IsZero() {
			continue
		}
		if p.FirstLBA > p.LastLBA || p.FirstLBA < use.firstUsable || p.LastLBA > use.lastUsab {
			warn("partition %d (%q): LBAs %d..%d outside the usable area %d..%d", i+1, p.Name, p.FirstLBA, p.LastLBA, use.firstUsable, use.lastUsab)
		}
		t.Partitions = append(t.Partitions, p)
	}
	t.Warnings = warnings
	return t, nil
}

// half is one header with its entry array.
type half struct {
	*header
	parts []Partition
}

// readHalf reads and checks the header at lba and its entries. When the
// header itself is sound but something after it is not, it returns both
// the half and an error, so Read can still learn where the backup is.
func readHalf(r io.ReaderAt, lba, last uint64) (*half, error) {
	b := make([]byte, SectorSize)
	if _, err := r.ReadAt(b, int64(lba)*SectorSize); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading LBA %d: %w", lba, err)
	}
	h, err := parseHeader(b)
	if err != nil {
		return nil, fmt.Errorf("header at LBA %d: %w", lba, err)
	}
	res := &half{header: h}
	if h.myLBA != lba {
		return res, fmt.Errorf("header at LBA %d says it is at LBA %d", lba, h.myLBA)
	}
	if h.entrySize < EntrySize || h.entrySize%8 != 0 || h.entrySize > 4096 {
		return res, fmt.Errorf("header at LBA %d: entry size %d invalid", lba, h.entrySize)
	}
	n := uint64(h.numEntries) * uint64(h.entrySize)
	if n > maxEntryBytes {
		return res, fmt.Errorf("header at LBA %d: %d entries of %d bytes is too many", lba, h.numEntries, h.entrySize)
	}
	if h.entriesLBA > last || h.entriesLBA*SectorSize+n > (last+1)*SectorSize {
		return res, fmt.Errorf("header at LBA %d: entry array at LBA %d runs past the disk", lba, h.entriesLBA)
	}
	entries := make([]byte, n)
	if _, err := r.ReadAt(entries, int64(h.entriesLBA)*SectorSize); err != nil && !errors.Is(err, io.EOF) {
		return res, fmt.Errorf("reading entries at LBA %d: %w", h.entriesLBA, err)
	}
	if got := crc32.ChecksumIEEE(entries); got != h.entriesCRC {
		return res, fmt.Errorf("entry array at LBA %d: CRC %#08x, header says %#08x", h.entriesLBA, got, h.entriesCRC)
	}
	for i := uint64(0); i < uint64(h.numEntries); i++ {
		res.parts = append(res.parts, parseEntry(entries[i*uint64(h.entrySize):]))
	}
	return res, nil
}

// checkMBR describes what is wrong with the protective MBR, or "".
func checkMBR(r io.ReaderAt) string {
	b := make([]byte, 66)
	if _, err := r.ReadAt(b, 446); err != nil {
		return fmt.Sprintf("reading the MBR: %v", err)
	}
	if b[64] != 0x55 || b[65] != 0xAA {
		return "no MBR boot signature 55 AA at bytes 510..511"
	}
	for i := 0; i < 4; i++ {
		if b[16*i+4] == 0xEE {
			return ""
		}
	}
	return "MBR holds no protective (0xEE) partition"
}
