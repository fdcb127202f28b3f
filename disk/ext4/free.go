package ext4

import (
	"encoding/binary"
	"fmt"
)

// bgBlockUninit marks a group whose block bitmap was never initialised:
// nothing was ever allocated in it, so all its data blocks are free and
// were never written.
const bgBlockUninit = 0x2

// FreeRanges calls fn for every run of free blocks (first block number and
// block count), group by group: from the block bitmap, or, for a group
// whose bitmap was never initialised, every block but the group's metadata
// (whatever the disk held before mkfs is still there). Lint uses it to check
// that free space holds no old data.
func (f *FS) FreeRanges(fn func(first, count uint64) error) error {
	bs := uint64(f.sb.blockSize)
	bitmap := make([]byte, bs)
	for g := uint64(0); g < f.sb.groups; g++ {
		d := make([]byte, f.sb.descSize)
		if err := f.readFull(d, f.sb.descriptorOffset(g)); err != nil {
			return fmt.Errorf("ext4: reading descriptor of group %d: %w", g, err)
		}
		loc := descBlock(d, 0x00, 0x20, f.sb.descSize)
		if binary.LittleEndian.Uint16(d[0x12:])&bgBlockUninit != 0 {
			if err := f.uninitFree(g, d, fn); err != nil {
				return err
			}
			continue
		}
		if loc == 0 || loc >= f.sb.blocksCount {
			return fmt.Errorf("ext4: group %d: block bitmap at block %d outside the filesystem", g, loc)
		}
		if err := f.readFull(bitmap, loc*bs); err != nil {
			return fmt.Errorf("ext4: reading block bitmap of group %d: %w", g, err)
		}
		start := f.sb.firstDataBlock + g*f.sb.blocksPerGroup
		n := min(f.sb.blocksPerGroup, f.sb.blocksCount-start, bs*8)
		run := uint64(0)
		for i := uint64(0); i <= n; i++ {
			free := i < n && bitmap[i/8]&(1<<(i%8)) == 0
			if free {
				run++
				continue
			}
			if run > 0 {
				if err := fn(start+i-run, run); err != nil {
					return err
				}
				run = 0
			}
		}
	}
	return nil
}

// descBlock reads a block number split over a low and (64-byte
// descriptors) a high 32-bit field.
func descBlock(d []byte, lo, hi int, descSize int64) uint64 {
	v := uint64(binary.LittleEndian.Uint32(d[lo:]))
	if descSize >= 64 {
		v |= uint64(binary.LittleEndian.Uint32(d[hi:])) << 32
	}
	return v
}

// uninitFree reports the free blocks of a group whose bitmap is not
// initialised: the whole group but its superblock backup and descriptor
// table, and its bitmaps and inode table when they live in it (without
// flex_bg they do). meta_bg filesystems place descriptors differently; their
// uninitialised groups are skipped.
func (f *FS) uninitFree(g uint64, d []byte, fn func(first, count uint64) error) error {
	sb := f.sb
	if sb.incompat&incompatMetaBG != 0 {
		return nil
	}
	start := sb.firstDataBlock + g*sb.blocksPerGroup
	end := min(start+sb.blocksPerGroup, sb.blocksCount)
	type span struct{ from, to uint64 }
	var meta []span
	if sb.hasSuper(g) {
		gdt := (sb.groups*uint64(sb.descSize) + uint64(sb.blockSize) - 1) / uint64(sb.blockSize)
		meta = append(meta, span{start, start + 1 + gdt + sb.reservedGDT})
	}
	perBlock := uint64(sb.blockSize / sb.inodeSize)
	itb := (uint64(sb.inodesPerGroup) + perBlock - 1) / perBlock
	for _, m := range []span{
		{descBlock(d, 0x00, 0x20, sb.descSize), descBlock(d, 0x00, 0x20, sb.descSize) + 1},
		{descBlock(d, 0x04, 0x24, sb.descSize), descBlock(d, 0x04, 0x24, sb.descSize) + 1},
		{descBlock(d, 0x08, 0x28, sb.descSize), descBlock(d, 0x08, 0x28, sb.descSize) + itb},
	} {
		if m.to > start && m.from < end {
			meta = append(meta, m)
		}
	}
	for b := start; b < end; {
		next := end
		skip := false
		for _, m := range meta {
			if b >= m.from && b < m.to {
				b, skip = m.to, true
				break
			}
			if m.from > b && m.from < next {
				next = m.from
			}
		}
		if skip {
			continue
		}
		if err := fn(b, next-b); err != nil {
			return err
		}
		b = next
	}
	return nil
}
