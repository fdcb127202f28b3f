package ext4

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"time"
)

// Inode flags.
const (
	flagEncrypt    = 0x800
	flagIndex      = 0x1000
	flagHugeFile   = 0x40000
	flagExtents    = 0x80000
	flagInlineData = 0x10000000
)

// File types in the mode (S_IFMT).
const (
	modeType   = 0xF000
	modeFIFO   = 0x1000
	modeChar   = 0x2000
	modeDir    = 0x4000
	modeBlock  = 0x6000
	modeFile   = 0x8000
	modeLink   = 0xA000
	modeSocket = 0xC000
)

const iBlockLen = 60

// Inode is what FileInfo.Sys returns: the inode's metadata as stored.
type Inode struct {
	InodeNumber uint32
	Mode        uint16 // file type (0xF000 bits) and permissions (07777), as on disk
	Uid, Gid    uint32
	Links       uint16
	Size        int64
	ModTime     time.Time
	Flags       uint32 // EXT4_*_FL bits
}

// inode is an inode as read, with what locating its data needs.
type inode struct {
	Inode
	blocks  uint64 // i_blocks, in 512-byte sectors (or blocks with huge_file)
	xattr   uint64 // extended attribute block
	iblock  [iBlockLen]byte
	raw     []byte // the whole on-disk inode, for in-inode xattrs
	extra   int    // i_extra_isize, 0 when absent or invalid
	nsecond bool   // mtime has nanoseconds and epoch bits
}

func (f *FS) readInode(ino uint32) (*inode, error) {
	if ino < 1 || ino > f.sb.inodesCount {
		return nil, fmt.Errorf("ext4: inode number %d outside 1..%d", ino, f.sb.inodesCount)
	}
	g := uint64(ino-1) / uint64(f.sb.inodesPerGroup)
	table, err := f.inodeTable(g)
	if err != nil {
		return nil, err
	}
	slot := uint64(ino-1) % uint64(f.sb.inodesPerGroup)
	b := make([]byte, f.sb.inodeSize)
	if err := f.readFull(b, table*uint64(f.sb.blockSize)+slot*uint64(f.sb.inodeSize)); err != nil {
		return nil, fmt.Errorf("ext4: reading inode %d: %w", ino, err)
	}
	le := binary.LittleEndian
	in := &inode{raw: b}
	in.InodeNumber = ino
	in.Mode = le.Uint16(b[0x00:])
	in.Uid = uint32(le.Uint16(b[0x02:])) | uint32(le.Uint16(b[0x78:]))<<16
	in.Gid = uint32(le.Uint16(b[0x18:])) | uint32(le.Uint16(b[0x7A:]))<<16
	in.Links = le.Uint16(b[0x1A:])
	in.Flags = le.Uint32(b[0x20:])
	size := uint64(le.Uint32(b[0x04:])) | uint64(le.Uint32(b[0x6C:]))<<32
	if size > 1<<62 {
		return nil, fmt.Errorf("ext4: inode %d: size %d impossible", ino, size)
	}
	in.Size = int64(size)
	in.blocks = uint64(le.Uint32(b[0x1C:]))
	if f.sb.roCompat&roCompatHugeFile != 0 {
		in.blocks |= uint64(le.Uint16(b[0x74:])) << 32
	}
	in.xattr = uint64(le.Uint32(b[0x68:])) | uint64(le.Uint16(b[0x76:]))<<32
	copy(in.iblock[:], b[0x28:0x28+iBlockLen])
	if f.sb.inodeSize > 128 {
		if e := int(le.Uint16(b[0x80:])); e >= 4 && 128+e <= len(b) && e%4 == 0 {
			in.extra = e
		}
	}
	sec := int64(int32(le.Uint32(b[0x10:])))
	var nsec int64
	if in.extra >= 0x8C-0x80 { // i_mtime_extra present
		x := le.Uint32(b[0x88:])
		sec += int64(x&3) << 32
		nsec = int64(x >> 2)
		if nsec > 999_999_999 {
			nsec = 0
		}
	}
	in.ModTime = time.Unix(sec, nsec)
	switch in.Mode & modeType {
	case modeFIFO, modeChar, modeDir, modeBlock, modeFile, modeLink, modeSocket:
	default:
		return nil, fmt.Errorf("ext4: inode %d: unknown file type in mode %#o (unused inode?)", ino, in.Mode)
	}
	return in, nil
}

func (in *inode) isDir() bool     { return in.Mode&modeType == modeDir }
func (in *inode) isSymlink() bool { return in.Mode&modeType == modeLink }

// fileMode converts the on-disk mode to an fs.FileMode.
func (in *inode) fileMode() fs.FileMode {
	m := fs.FileMode(in.Mode & 0o777)
	if in.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if in.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if in.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch in.Mode & modeType {
	case modeDir:
		m |= fs.ModeDir
	case modeLink:
		m |= fs.ModeSymlink
	case modeFIFO:
		m |= fs.ModeNamedPipe
	case modeSocket:
		m |= fs.ModeSocket
	case modeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case modeBlock:
		m |= fs.ModeDevice
	}
	return m
}

// dataSectors is i_blocks in 512-byte units less an xattr block: zero for
// a fast symlink.
func (f *FS) dataSectors(in *inode) uint64 {
	n := in.blocks
	if in.Flags&flagHugeFile != 0 {
		n *= uint64(f.sb.blockSize / 512)
	}
	if in.xattr != 0 {
		n -= min(n, uint64(f.sb.blockSize/512))
	}
	return n
}
