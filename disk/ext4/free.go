package ext4

import (
	"encoding/binary"
	"fmt"
)

// bgBlockUninit marks a group whose block bitmap was never initialised:
// nothing was ever allocated in it, so all its data blocks are free and
// were never written.
const bgBlockUninit = 0x2

// FreeRanges calls fn for every run of free blocks whose bitmap says it is
// free (first block number and block count), group by group. Groups that
// were never initialised are skipped: nothing was ever written there.
// Lint uses it to check that free space holds no old data.
func (f *FS) FreeRanges(fn func(first, count uint64) error) error {
	bs := uint64(f.sb.blockSize)
	bitmap := make([]byte, bs)
	for g := uint64(0); g < f.sb.groups; g++ {
		d := make([]byte, f.sb.descSize)
		if err := f.readFull(d, f.sb.descriptorOffset(g)); err != nil {
			return fmt.Errorf("ext4: reading descriptor of group %d: %w", g, err)
		}
		if binary.LittleEndian.Uint16(d[0x12:])&bgBlockUninit != 0 {
			continue
		}
		loc := uint64(binary.LittleEndian.Uint32(d[0x00:]))
		if f.sb.descSize >= 64 {
			loc |= uint64(binary.LittleEndian.Uint32(d[0x20:])) << 32
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
