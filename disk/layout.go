package disk

import "fmt"

const (
	sectorSize = 512
	mib        = 1 << 20

	biosBootStart = 1 * mib
	biosBootSize  = 1 * mib
	espStart      = 2 * mib
	// The ESP is FAT32, which needs >= 65525 clusters: 65 MiB holds 131040
	// of 512 bytes. Not 64 MiB: go-diskfs v1.9.4's sectors-per-FAT formula
	// leaves out the FAT's two reserved entries, and for some sizes, 64 MiB
	// among them, that leaves the FAT two entries short of the clusters.
	// pinFAT32 checks the geometry go-diskfs chose.
	espSize   = 65 * mib
	rootStart = espStart + espSize

	gptReserve = 33 * sectorSize // backup entries + header at the end
	// MinSize is the smallest disk Assemble makes.
	MinSize = rootStart + 256*mib
)

// Partition numbers in the table.
const (
	PartBIOSBoot = 1
	PartESP      = 2
	PartRoot     = 3
)

// layout is where each partition lies, in bytes.
type layout struct {
	size                 int64
	rootOffset, rootSize int64
}

func newLayout(size int64) (layout, error) {
	if size < MinSize {
		return layout{}, fmt.Errorf("disk: %d bytes is too small; the smallest disk is %d MiB", size, MinSize/mib)
	}
	if size%sectorSize != 0 {
		return layout{}, fmt.Errorf("disk: size %d is not a multiple of %d", size, sectorSize)
	}
	// Root ends on a 4 KiB boundary before the backup GPT.
	end := (size - gptReserve - sectorSize) &^ 4095
	return layout{size: size, rootOffset: rootStart, rootSize: end - rootStart}, nil
}

func lba(off int64) uint64 { return uint64(off / sectorSize) }
