package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Feature bits the reader looks at.
const (
	compatSparseSuper2 = 0x200

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64Bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	roCompatSparseSuper = 0x1
	roCompatHugeFile    = 0x8
)

// incompatRead are the incompatible features whose layout the reader
// knows; anything else (compression, dirdata, a journal device, or bits
// it has never heard of) means it cannot read the filesystem.
const incompatRead = incompatFiletype | incompatRecover | incompatMetaBG | incompatExtents |
	incompat64Bit | incompatMMP | incompatFlexBG | incompatEAInode | incompatCsumSeed |
	incompatLargeDir | incompatInlineData | incompatEncrypt | incompatCasefold

var incompatNames = map[uint32]string{
	incompatCompression: "compression", incompatJournalDev: "journal_dev", incompatDirData: "dirdata",
}

const (
	superblockOffset = 1024
	superMagic       = 0xEF53
	rootIno          = 2
)

type superblock struct {
	inodesCount    uint32
	blocksCount    uint64
	freeBlocks     uint64
	freeInodes     uint32
	firstDataBlock uint64
	blockSize      int64
	blocksPerGroup uint64
	inodesPerGroup uint32
	inodeSize      int64
	compat         uint32
	incompat       uint32
	roCompat       uint32
	uuid           [16]byte
	label          string
	descSize       int64
	firstMetaBG    uint64
	reservedGDT    uint64 // s_reserved_gdt_blocks (0xCE): room for growing the descriptor table
	backupBGs      [2]uint32
	groups         uint64
}

func readSuperblock(r io.ReaderAt, size int64) (*superblock, error) {
	b := make([]byte, 1024)
	if _, err := r.ReadAt(b, superblockOffset); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("ext4: %d bytes is too small for a filesystem", size)
		}
		return nil, fmt.Errorf("ext4: reading superblock: %w", err)
	}
	le := binary.LittleEndian
	if m := le.Uint16(b[0x38:]); m != superMagic {
		return nil, fmt.Errorf("ext4: no ext2/3/4 superblock (magic %#04x)", m)
	}
	sb := &superblock{
		inodesCount:    le.Uint32(b[0x00:]),
		blocksCount:    uint64(le.Uint32(b[0x04:])),
		freeBlocks:     uint64(le.Uint32(b[0x0C:])),
		freeInodes:     le.Uint32(b[0x10:]),
		firstDataBlock: uint64(le.Uint32(b[0x14:])),
		blocksPerGroup: uint64(le.Uint32(b[0x20:])),
		reservedGDT:    uint64(le.Uint16(b[0xCE:])),
		inodesPerGroup: le.Uint32(b[0x28:]),
		inodeSize:      128,
		compat:         le.Uint32(b[0x5C:]),
		incompat:       le.Uint32(b[0x60:]),
		roCompat:       le.Uint32(b[0x64:]),
		descSize:       32,
		firstMetaBG:    uint64(le.Uint32(b[0x104:])),
		backupBGs:      [2]uint32{le.Uint32(b[0x24C:]), le.Uint32(b[0x250:])},
	}
	logBS := le.Uint32(b[0x18:])
	if logBS > 6 {
		return nil, fmt.Errorf("ext4: block size 2^(10+%d) unsupported", logBS)
	}
	sb.blockSize = 1024 << logBS
	rev := le.Uint32(b[0x4C:])
	if rev > 0 {
		sb.inodeSize = int64(le.Uint16(b[0x58:]))
	} else {
		sb.incompat, sb.roCompat, sb.compat = 0, 0, 0 // revision 0 has no feature fields
	}
	copy(sb.uuid[:], b[0x68:0x78])
	sb.label = strings.TrimRight(string(b[0x78:0x88]), "\x00")
	if sb.incompat&incompat64Bit != 0 {
		sb.blocksCount |= uint64(le.Uint32(b[0x150:])) << 32
		sb.freeBlocks |= uint64(le.Uint32(b[0x158:])) << 32
		sb.descSize = int64(le.Uint16(b[0xFE:]))
		if sb.descSize < 64 || sb.descSize > sb.blockSize || sb.descSize&(sb.descSize-1) != 0 {
			return nil, fmt.Errorf("ext4: group descriptor size %d invalid", sb.descSize)
		}
	}
	if err := sb.check(size); err != nil {
		return nil, err
	}
	return sb, nil
}

func (sb *superblock) check(size int64) error {
	if bad := sb.incompat &^ incompatRead; bad != 0 {
		var names []string
		for bit := uint32(1); bit != 0; bit <<= 1 {
			if bad&bit != 0 {
				if n, ok := incompatNames[bit]; ok {
					names = append(names, n)
				} else {
					names = append(names, fmt.Sprintf("%#x", bit))
				}
			}
		}
		return fmt.Errorf("ext4: unsupported incompatible features: %s", strings.Join(names, ", "))
	}
	if sb.inodeSize < 128 || sb.inodeSize > sb.blockSize || sb.inodeSize&(sb.inodeSize-1) != 0 {
		return fmt.Errorf("ext4: inode size %d invalid", sb.inodeSize)
	}
	if sb.blocksPerGroup == 0 || sb.inodesPerGroup == 0 || int64(sb.inodesPerGroup) > 8*sb.blockSize {
		return fmt.Errorf("ext4: %d blocks and %d inodes per group invalid", sb.blocksPerGroup, sb.inodesPerGroup)
	}
	if sb.blocksCount <= sb.firstDataBlock || sb.firstDataBlock > 1 {
		return fmt.Errorf("ext4: block count %d, first data block %d invalid", sb.blocksCount, sb.firstDataBlock)
	}
	if sb.blocksCount > uint64(size)/uint64(sb.blockSize) {
		return fmt.Errorf("ext4: filesystem of %d blocks of %d bytes does not fit the %d bytes given", sb.blocksCount, sb.blockSize, size)
	}
	sb.groups = (sb.blocksCount - sb.firstDataBlock + sb.blocksPerGroup - 1) / sb.blocksPerGroup
	if sb.inodesCount < rootIno || uint64(sb.inodesCount) > sb.groups*uint64(sb.inodesPerGroup) {
		return fmt.Errorf("ext4: %d inodes do not fit %d groups of %d", sb.inodesCount, sb.groups, sb.inodesPerGroup)
	}
	return nil
}

// hasSuper reports whether group g holds a superblock backup, which
// pushes its meta_bg descriptor block one block further.
func (sb *superblock) hasSuper(g uint64) bool {
	if g == 0 {
		return true
	}
	if sb.compat&compatSparseSuper2 != 0 {
		return g == uint64(sb.backupBGs[0]) || g == uint64(sb.backupBGs[1])
	}
	if sb.roCompat&roCompatSparseSuper == 0 || g == 1 {
		return true
	}
	for _, base := range []uint64{3, 5, 7} {
		p := base
		for p < g {
			p *= base
		}
		if p == g {
			return true
		}
	}
	return false
}

// descriptorOffset is the byte offset of group g's descriptor.
func (sb *superblock) descriptorOffset(g uint64) uint64 {
	perBlock := uint64(sb.blockSize / sb.descSize)
	b := g / perBlock
	// The table follows the superblock's block; that is block 1 with 1 KiB
	// blocks even when first_data_block is 0 (bigalloc).
	block := superblockOffset/uint64(sb.blockSize) + 1 + b
	if sb.incompat&incompatMetaBG != 0 && b >= sb.firstMetaBG {
		first := b * perBlock // first group of the meta group
		block = sb.firstDataBlock + first*sb.blocksPerGroup
		if sb.hasSuper(first) {
			block++
		}
		if first == 0 && sb.blockSize == 1024 && sb.firstDataBlock == 0 {
			block++ // boot block, then superblock, then the table
		}
	}
	return block*uint64(sb.blockSize) + g%perBlock*uint64(sb.descSize)
}
