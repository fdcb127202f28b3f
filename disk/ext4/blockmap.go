package ext4

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// blockMapper maps through ext2/ext3 block pointers: 12 direct, then a
// single, a double and a triple indirect block.
type blockMapper struct {
	f      *FS
	ino    uint32
	ptrs   [15]uint64
	mu     sync.Mutex        // ReadAt may run in parallel on one file
	tables map[uint64][]byte // recently read indirect blocks
}

func newBlockMapper(f *FS, in *inode) *blockMapper {
	m := &blockMapper{f: f, ino: in.InodeNumber, tables: map[uint64][]byte{}}
	for i := range m.ptrs {
		m.ptrs[i] = uint64(binary.LittleEndian.Uint32(in.iblock[4*i:]))
	}
	return m
}

func (m *blockMapper) lookup(lblk uint64) (uint64, uint64, error) {
	if lblk < 12 {
		return m.run(func(i uint64) uint64 { return m.ptrs[i] }, lblk, 12)
	}
	lblk -= 12
	per := uint64(m.f.sb.blockSize / 4)
	span := per
	for level := 1; level <= 3; level++ {
		if lblk < span {
			return m.walk(m.ptrs[11+level], span, lblk)
		}
		lblk -= span
		span *= per
	}
	return 0, 0, fmt.Errorf("ext4: inode %d: block beyond the triple indirect range", m.ino)
}

// walk descends from the indirect block covering span logical blocks.
func (m *blockMapper) walk(block, span, idx uint64) (uint64, uint64, error) {
	per := uint64(m.f.sb.blockSize / 4)
	for {
		if block == 0 {
			return 0, span - idx, nil
		}
		t, err := m.table(block)
		if err != nil {
			return 0, 0, err
		}
		ptr := func(i uint64) uint64 { return uint64(binary.LittleEndian.Uint32(t[4*i:])) }
		sub := span / per
		if sub == 1 {
			return m.run(ptr, idx, per)
		}
		block, span, idx = ptr(idx/sub), sub, idx%sub
	}
}

// run answers for entry i of a pointer list of length n: a hole lasts as
// long as the zeros do, data as long as the blocks are consecutive.
func (m *blockMapper) run(ptr func(uint64) uint64, i, n uint64) (uint64, uint64, error) {
	p := ptr(i)
	k := uint64(1)
	if p == 0 {
		for i+k < n && ptr(i+k) == 0 {
			k++
		}
		return 0, k, nil
	}
	for i+k < n && ptr(i+k) == p+k {
		k++
	}
	if p+k > m.f.sb.blocksCount {
		return 0, 0, fmt.Errorf("ext4: inode %d: block %d outside the filesystem", m.ino, p)
	}
	return p, k, nil
}

func (m *blockMapper) table(n uint64) ([]byte, error) {
	m.mu.Lock()
	t, ok := m.tables[n]
	m.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := m.f.readBlock(n)
	if err != nil {
		return nil, fmt.Errorf("ext4: inode %d: indirect block: %w", m.ino, err)
	}
	m.mu.Lock()
	if len(m.tables) >= 8 {
		clear(m.tables)
	}
	m.tables[n] = t
	m.mu.Unlock()
	return t, nil
}
