package gpt

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// Geometry of the tables Write produces.
const (
	SectorSize  = 512
	NumEntries  = 128
	EntrySize   = 128
	entrySecs   = NumEntries * EntrySize / SectorSize // 32
	firstUsable = 2 + entrySecs                       // 34
	maxNameLen  = 36                                  // UTF-16 code units
)

// Partition is one used entry. LBAs are 512-byte sectors, both inclusive.
type Partition struct {
	Type       GUID
	GUID       GUID
	Name       string
	FirstLBA   uint64
	LastLBA    uint64
	Attributes uint64
}

// Offset is where the partition starts, in bytes.
func (p Partition) Offset() int64 { return int64(p.FirstLBA) * SectorSize }

// Size is the partition's length in bytes.
func (p Partition) Size() int64 { return int64(p.LastLBA-p.FirstLBA+1) * SectorSize }

// Table is a GUID partition table.
type Table struct {
	DiskGUID   GUID
	Partitions []Partition

	// Warnings, set by Read, lists damage Read worked around, such as a
	// corrupt primary header answered by the backup, or a backup header
	// that is not at the end of the disk because the disk grew. Write
	// ignores it (and repairs all of them).
	Warnings []string
}

// FirstUsable is the first LBA a partition may use in tables Write makes.
func (t *Table) FirstUsable() uint64 { return firstUsable }

// LastUsable is the last LBA a partition may use on a disk of diskSize
// bytes: just before the backup entry array.
func (t *Table) LastUsable(diskSize int64) uint64 {
	return lastUsable(diskSize)
}

func lastUsable(diskSize int64) uint64 {
	last := uint64(diskSize/SectorSize) - 1
	return last - 1 - entrySecs
}

// minDiskSize fits the MBR, both headers and arrays and one sector.
const minDiskSize = (1 + 2*(1+entrySecs) + 1) * SectorSize

// validate returns the partitions sorted by first LBA, or every reason
// the table cannot be written on a disk of diskSize bytes.
func (t *Table) validate(diskSize int64) ([]Partition, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("gpt: "+format, args...))
	}
	if diskSize%SectorSize != 0 {
		bad("disk size %d is not a multiple of %d", diskSize, SectorSize)
	}
	if diskSize < minDiskSize {
		return nil, fmt.Errorf("gpt: disk of %d bytes is too small for a GPT (minimum %d)", diskSize, minDiskSize)
	}
	if t.DiskGUID.IsZero() {
		bad("disk GUID is zero")
	}
	if len(t.Partitions) > NumEntries {
		bad("%d partitions, at most %d fit", len(t.Partitions), NumEntries)
	}
	last := lastUsable(diskSize)
	guids := map[GUID]int{}
	for i, p := range t.Partitions {
		what := fmt.Sprintf("partition %d (%q)", i+1, p.Name)
		if p.Type.IsZero() {
			bad("%s: type GUID is zero", what)
		}
		if p.GUID.IsZero() {
			bad("%s: GUID is zero", what)
		} else if j, dup := guids[p.GUID]; dup {
			bad("%s: GUID %s already used by partition %d", what, p.GUID, j+1)
		} else {
			guids[p.GUID] = i
		}
		if p.FirstLBA > p.LastLBA {
			bad("%s: first LBA %d after last LBA %d", what, p.FirstLBA, p.LastLBA)
		}
		if p.FirstLBA < firstUsable || p.LastLBA > last {
			bad("%s: LBAs %d..%d outside the usable area %d..%d", what, p.FirstLBA, p.LastLBA, firstUsable, last)
		}
		if !utf8.ValidString(p.Name) {
			bad("%s: name is not valid UTF-8", what)
		} else if n := len(utf16.Encode([]rune(p.Name))); n > maxNameLen {
			bad("%s: name is %d UTF-16 units, at most %d fit", what, n, maxNameLen)
		}
		for _, r := range p.Name {
			if r == 0 {
				bad("%s: name contains NUL", what)
				break
			}
		}
	}
	sorted := slices.Clone(t.Partitions)
	slices.SortStableFunc(sorted, func(a, b Partition) int {
		return cmp.Compare(a.FirstLBA, b.FirstLBA)
	})
	for i := 1; i < len(sorted); i++ {
		if a, b := sorted[i-1], sorted[i]; b.FirstLBA <= a.LastLBA {
			bad("partitions %q (%d..%d) and %q (%d..%d) overlap", a.Name, a.FirstLBA, a.LastLBA, b.Name, b.FirstLBA, b.LastLBA)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return sorted, nil
}
