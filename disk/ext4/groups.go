package ext4

import (
	"encoding/binary"
	"fmt"
)

// inodeTable returns the first block of group g's inode table, reading
// group descriptors on demand (a big filesystem has thousands).
func (f *FS) inodeTable(g uint64) (uint64, error) {
	f.mu.Lock()
	t, ok := f.tables[g]
	f.mu.Unlock()
	if ok {
		return t, nil
	}
	if g >= f.sb.groups {
		return 0, fmt.Errorf("ext4: group %d outside the %d groups", g, f.sb.groups)
	}
	d := make([]byte, f.sb.descSize)
	if err := f.readFull(d, f.sb.descriptorOffset(g)); err != nil {
		return 0, fmt.Errorf("ext4: reading descriptor of group %d: %w", g, err)
	}
	t = uint64(binary.LittleEndian.Uint32(d[0x08:]))
	if f.sb.descSize >= 64 {
		t |= uint64(binary.LittleEndian.Uint32(d[0x28:])) << 32
	}
	perBlock := uint64(f.sb.blockSize / f.sb.inodeSize)
	need := (uint64(f.sb.inodesPerGroup) + perBlock - 1) / perBlock
	if t == 0 || t+need > f.sb.blocksCount {
		return 0, fmt.Errorf("ext4: group %d: inode table at block %d outside the filesystem", g, t)
	}
	f.mu.Lock()
	if len(f.tables) > 1<<16 {
		clear(f.tables)
	}
	f.tables[g] = t
	f.mu.Unlock()
	return t, nil
}
