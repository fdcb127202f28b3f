package ext4

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// dirent is one name in a directory.
type dirent struct {
	name  string
	ino   uint32
	ftype uint8 // 1 file, 2 dir, 3 char, 4 block, 5 fifo, 6 socket, 7 symlink; 0 unknown
}

type dirData struct {
	entries []dirent
	byName  map[string]uint32
}

// maxCachedDirs bounds the directory cache; it is cleared when full.
const maxCachedDirs = 256

// dir returns the parsed entries of directory in, cached: path lookups in
// big directories would otherwise parse them again for every name.
func (f *FS) dir(in *inode) (*dirData, error) {
	f.mu.Lock()
	d, ok := f.dirs[in.InodeNumber]
	f.mu.Unlock()
	if ok {
		return d, nil
	}
	entries, err := f.readDirents(in)
	if err != nil {
		return nil, err
	}
	d = &dirData{entries: entries, byName: make(map[string]uint32, len(entries))}
	for _, e := range entries {
		d.byName[e.name] = e.ino
	}
	f.mu.Lock()
	if len(f.dirs) >= maxCachedDirs {
		clear(f.dirs)
	}
	f.dirs[in.InodeNumber] = d
	f.mu.Unlock()
	return d, nil
}

// readDirents reads every block of a directory in order (see doc.go for
// why that also suits htree directories), leaving out "." and "..".
func (f *FS) readDirents(in *inode) ([]dirent, error) {
	if !in.isDir() {
		return nil, errNotDir
	}
	data, err := f.openData(in)
	if err != nil {
		return nil, err
	}
	var out []dirent
	if data.m == nil { // inline: parent inode (4 bytes), then two regions
		b := data.inline
		if len(b) < 4 {
			return nil, fmt.Errorf("ext4: directory inode %d: inline data too short", in.InodeNumber)
		}
		head := b[4:min(len(b), iBlockLen)]
		if out, err = f.parseDirBlock(head, in.InodeNumber, out); err != nil {
			return nil, err
		}
		if len(b) > iBlockLen {
			return f.parseDirBlock(b[iBlockLen:], in.InodeNumber, out)
		}
		return out, nil
	}
	bs := uint64(f.sb.blockSize)
	nblocks := (uint64(in.Size) + bs - 1) / bs
	if nblocks > f.sb.blocksCount {
		return nil, fmt.Errorf("ext4: directory inode %d: size %d larger than the filesystem", in.InodeNumber, in.Size)
	}
	for lblk := uint64(0); lblk < nblocks; {
		phys, run, err := data.m.lookup(lblk)
		if err != nil {
			return nil, err
		}
		run = min(run, nblocks-lblk)
		for k := uint64(0); phys != 0 && k < run; k++ {
			b, err := f.readBlock(phys + k)
			if err != nil {
				return nil, err
			}
			if out, err = f.parseDirBlock(b, in.InodeNumber, out); err != nil {
				return nil, fmt.Errorf("%w (block %d)", err, lblk+k)
			}
		}
		lblk += run
	}
	return out, nil
}

// parseDirBlock appends the live entries of one directory block.
func (f *FS) parseDirBlock(b []byte, dir uint32, out []dirent) ([]dirent, error) {
	le := binary.LittleEndian
	filetype := f.sb.incompat&incompatFiletype != 0
	for pos := 0; pos < len(b); {
		bad := func(what string) error {
			return fmt.Errorf("ext4: directory inode %d: %s at offset %d", dir, what, pos)
		}
		if pos+8 > len(b) {
			return out, bad("truncated entry")
		}
		ino := le.Uint32(b[pos:])
		recLen := int(le.Uint16(b[pos+4:]))
		if len(b) >= 65536 && (recLen == 0 || recLen == 65535) {
			recLen = 65536 // how 64 KiB blocks spell a record spanning the block
		}
		nameLen, ftype := int(b[pos+6]), b[pos+7]
		if !filetype {
			nameLen |= int(ftype) << 8
			ftype = 0
		}
		if recLen < 8 || recLen%4 != 0 || pos+recLen > len(b) || 8+nameLen > recLen {
			return out, bad("corrupt entry")
		}
		if ino != 0 && nameLen > 0 {
			name := string(b[pos+8 : pos+8+nameLen])
			if name != "." && name != ".." {
				if ino > f.sb.inodesCount {
					return out, bad(fmt.Sprintf("entry %q names inode %d", name, ino))
				}
				if strings.ContainsAny(name, "/\x00") {
					return out, bad(fmt.Sprintf("entry name %q contains '/' or NUL", name))
				}
				if ftype > 7 {
					ftype = 0
				}
				out = append(out, dirent{name: name, ino: ino, ftype: ftype})
			}
		}
		pos += recLen
	}
	return out, nil
}
