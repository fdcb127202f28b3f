package gpt

const (
	SectorSize = 512 // the only sector size Read knows
	EntrySize  = 128 // the smallest entry size, and the common one
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
	// that is not at the end of the disk because the disk grew. Writing
	// the table again (ToDiskfs) repairs all of them.
	Warnings []string
}
