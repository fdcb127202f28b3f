package gpt

import diskfs "github.com/diskfs/go-diskfs/partition/gpt"

// ToDiskfs returns t as a go-diskfs partition table, whose Write writes
// it: a protective MBR (bytes 446..511 of LBA 0; the boot code and disk
// signature before them are left as they are), both headers and both
// arrays of 128 entries, with partition i of t in entry i+1 and usable
// LBAs 34..last-33. Warnings are not part of it.
func (t *Table) ToDiskfs() *diskfs.Table {
	d := &diskfs.Table{
		LogicalSectorSize:  SectorSize,
		PhysicalSectorSize: SectorSize,
		ProtectiveMBR:      true,
		GUID:               t.DiskGUID.String(),
	}
	for i, p := range t.Partitions {
		d.Partitions = append(d.Partitions, &diskfs.Partition{
			Index:      i + 1,
			Start:      p.FirstLBA,
			End:        p.LastLBA,
			Type:       diskfs.Type(p.Type.String()),
			GUID:       p.GUID.String(),
			Name:       p.Name,
			Attributes: p.Attributes,
		})
	}
	return d
}
