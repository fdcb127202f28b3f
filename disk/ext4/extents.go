package ext4

import (
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
)

const (
	extentMagic    = 0xF30A
	maxExtentDepth = 5 // the kernel's limit
	uninitLen      = 32768
)

// mapper says where logical block lblk of a file is: phys 0 for a hole
// or an unwritten extent (both read as zeros), and for how many blocks
// from lblk the answer holds (at least 1).
type mapper interface {
	lookup(lblk uint64) (phys, n uint64, err error)
}

// extentMapper walks an extent tree from the root in i_block, one path
// per lookup (depth+1 nodes at most), so corrupt trees cannot make it
// visit more than that.
type extentMapper struct {
	f     *FS
	ino   uint32
	root  []byte
	mu    sync.Mutex        // ReadAt may run in parallel on one file
	nodes map[uint64][]byte // recently read tree blocks
}

type extentNode struct {
	b       []byte
	entries int
	depth   int
}

func (m *extentMapper) parse(b []byte, where string) (extentNode, error) {
	le := binary.LittleEndian
	if len(b) < 12 || le.Uint16(b) != extentMagic {
		return extentNode{}, fmt.Errorf("ext4: inode %d: no extent header in %s", m.ino, where)
	}
	n := extentNode{b: b, entries: int(le.Uint16(b[2:])), depth: int(le.Uint16(b[6:]))}
	if max := int(le.Uint16(b[4:])); n.entries > max || max > (len(b)-12)/12 || n.depth > maxExtentDepth {
		return extentNode{}, fmt.Errorf("ext4: inode %d: corrupt extent header in %s", m.ino, where)
	}
	return n, nil
}

// first is the first logical block of entry i (leaf or index).
func (n extentNode) first(i int) uint64 {
	return uint64(binary.LittleEndian.Uint32(n.b[12+12*i:]))
}

func (m *extentMapper) lookup(lblk uint64) (uint64, uint64, error) {
	le := binary.LittleEndian
	node, err := m.parse(m.root, "i_block")
	if err != nil {
		return 0, 0, err
	}
	limit := uint64(1) << 32 // end of the logical range this subtree covers
	for {
		i := sort.Search(node.entries, func(i int) bool { return node.first(i) > lblk }) - 1
		if i+1 < node.entries {
			limit = min(limit, node.first(i+1))
		}
		hole := func(to uint64) (uint64, uint64, error) {
			if to <= lblk {
				return 0, 1, nil // unsorted entries: make progress anyway
			}
			return 0, to - lblk, nil
		}
		if i < 0 {
			return hole(limit)
		}
		e := node.b[12+12*i:]
		if node.depth == 0 {
			start, length := node.first(i), uint64(le.Uint16(e[4:]))
			uninit := length > uninitLen
			if uninit {
				length -= uninitLen
			}
			if lblk >= start+length {
				return hole(limit)
			}
			off := lblk - start
			if uninit {
				return 0, length - off, nil
			}
			phys := (uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))) + off
			if phys == 0 || phys+length-off > m.f.sb.blocksCount {
				return 0, 0, fmt.Errorf("ext4: inode %d: extent at block %d outside the filesystem", m.ino, phys)
			}
			return phys, length - off, nil
		}
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		b, err := m.block(child)
		if err != nil {
			return 0, 0, err
		}
		next, err := m.parse(b, fmt.Sprintf("block %d", child))
		if err != nil {
			return 0, 0, err
		}
		if next.depth != node.depth-1 {
			return 0, 0, fmt.Errorf("ext4: inode %d: extent block %d has depth %d under depth %d", m.ino, child, next.depth, node.depth)
		}
		node = next
	}
}

func (m *extentMapper) block(n uint64) ([]byte, error) {
	m.mu.Lock()
	b, ok := m.nodes[n]
	m.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := m.f.readBlock(n)
	if err != nil {
		return nil, fmt.Errorf("ext4: inode %d: extent tree: %w", m.ino, err)
	}
	m.mu.Lock()
	if len(m.nodes) >= 8 {
		clear(m.nodes)
	}
	m.nodes[n] = b
	m.mu.Unlock()
	return b, nil
}
