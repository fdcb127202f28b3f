package iso

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// fatVolume is the geometry read from a boot sector.
type fatVolume struct {
	img       *image
	bps, spc  int64 // bytes per sector, sectors per cluster
	firstData int64 // first sector of cluster 2
	clusters  int64 // number of data clusters
	fat16     bool
	fat       []byte // the first FAT, entries 0..clusters+1
	used      []bool // clusters already claimed by a file
}

func readFAT(img *image, boot []byte) (string, []Entry, error) {
	le := binary.LittleEndian
	bps := int64(le.Uint16(boot[11:]))
	spc := int64(boot[13])
	reserved := int64(le.Uint16(boot[14:]))
	nfats := int64(boot[16])
	rootEntries := int64(le.Uint16(boot[17:]))
	total := int64(le.Uint16(boot[19:]))
	if total == 0 {
		total = int64(le.Uint32(boot[32:]))
	}
	fatSize := int64(le.Uint16(boot[22:]))
	switch {
	case bps != 512 && bps != 1024 && bps != 2048 && bps != 4096:
		return "", nil, fmt.Errorf("iso: FAT: %d bytes per sector not supported", bps)
	case spc == 0 || spc&(spc-1) != 0:
		return "", nil, fmt.Errorf("iso: FAT: bad sectors per cluster %d", spc)
	case reserved == 0 || nfats == 0:
		return "", nil, fmt.Errorf("iso: FAT: bad boot sector (reserved %d, FATs %d)", reserved, nfats)
	case rootEntries == 0 || fatSize == 0:
		return "", nil, fmt.Errorf("iso: FAT32 not supported")
	}
	rootSectors := (rootEntries*32 + bps - 1) / bps
	v := &fatVolume{img: img, bps: bps, spc: spc}
	v.firstData = reserved + nfats*fatSize + rootSectors
	if total <= v.firstData {
		return "", nil, fmt.Errorf("iso: FAT: %d sectors leave no data area", total)
	}
	v.clusters = (total - v.firstData) / spc
	switch {
	case v.clusters == 0:
		return "", nil, fmt.Errorf("iso: FAT: no data clusters")
	case v.clusters >= 65525:
		return "", nil, fmt.Errorf("iso: FAT32 not supported")
	}
	// The FAT type follows from the cluster count alone (fatgen103 §3.5).
	v.fat16 = v.clusters >= 4085
	v.used = make([]bool, v.clusters+2)
	need := ((v.clusters+2)*3 + 1) / 2
	if v.fat16 {
		need = (v.clusters + 2) * 2
	}
	if need > fatSize*bps {
		return "", nil, fmt.Errorf("iso: FAT: %d-sector FAT too small for %d clusters", fatSize, v.clusters)
	}
	var err error
	if v.fat, err = img.read(reserved*bps, need, "FAT"); err != nil {
		return "", nil, err
	}
	root, err := img.read((reserved+nfats*fatSize)*bps, rootEntries*32, "root directory")
	if err != nil {
		return "", nil, err
	}
	label := ""
	if boot[38] == 0x29 { // extended BPB: label at 43
		if l := trimID(boot[43:54]); l != "NO NAME" {
			label = l
		}
	}
	var c collector
	var lfn longName
	for off := 0; off+32 <= len(root); off += 32 {
		e := root[off : off+32]
		attr := e[11]
		switch {
		case e[0] == 0: // end of directory
			return label, c.entries, nil
		case e[0] == 0xe5: // deleted
			lfn.reset()
		case attr&0x3f == 0x0f:
			lfn.add(e)
		case attr&attrVolumeID != 0:
			label = trimID(e[:11])
			lfn.reset()
		default:
			name := lfn.name(e[:11])
			if name == "" {
				name = shortDisplay(e)
			}
			lfn.reset()
			if attr&0x10 != 0 {
				return "", nil, fmt.Errorf("iso: entry %q is a directory; seeds are flat", name)
			}
			data, err := v.readFile(&c, name, uint32(le.Uint16(e[26:])), int64(le.Uint32(e[28:])))
			if err != nil {
				return "", nil, err
			}
			c.add(name, data)
		}
	}
	return label, c.entries, nil
}

// next returns the FAT entry for cluster n.
func (v *fatVolume) next(n int64) int64 {
	if v.fat16 {
		return int64(binary.LittleEndian.Uint16(v.fat[2*n:]))
	}
	off := n + n/2 // 12-bit entries: 1.5 bytes each
	x := int64(binary.LittleEndian.Uint16(v.fat[off:]))
	if n%2 == 1 {
		return x >> 4
	}
	return x & 0xfff
}

// readFile follows the cluster chain from first for size bytes, reading
// contiguous runs of clusters at once.
func (v *fatVolume) readFile(c *collector, name string, first uint32, size int64) ([]byte, error) {
	if err := c.check(name, size); err != nil {
		return nil, err
	}
	cs := v.spc * v.bps
	n := (size + cs - 1) / cs
	if n > v.clusters {
		return nil, fmt.Errorf("iso: entry %q: %d bytes do not fit the volume", name, size)
	}
	data := make([]byte, 0, min(size, v.img.size)) // size is unverified yet
	cl := int64(first)
	for i := int64(0); i < n; {
		// Extend the run while the chain is contiguous.
		run := int64(1)
		for i+run < n && v.valid(cl+run-1) && v.next(cl+run-1) == cl+run {
			run++
		}
		if !v.valid(cl) || !v.valid(cl+run-1) {
			return nil, fmt.Errorf("iso: entry %q: broken cluster chain", name)
		}
		// A cluster may belong to one file once: this rejects loops and
		// cross-linked files, and bounds the work by the image size.
		for k := cl; k < cl+run; k++ {
			if v.used[k] {
				return nil, fmt.Errorf("iso: entry %q: cluster %d used twice", name, k)
			}
			v.used[k] = true
		}
		want := min(run*cs, size-int64(len(data)))
		b, err := v.img.read((v.firstData+(cl-2)*v.spc)*v.bps, want, fmt.Sprintf("data of %q", name))
		if err != nil {
			return nil, err
		}
		data = append(data, b...)
		i += run
		if i < n {
			cl = v.next(cl + run - 1)
		}
	}
	return data, nil
}

func (v *fatVolume) valid(cl int64) bool { return cl >= 2 && cl < v.clusters+2 }

// shortDisplay renders an 8.3 entry as "BASE.EXT", honouring the Windows
// NT lower-case flags in byte 12 (0x08 base, 0x10 extension) that
// mkfs.fat/mtools may set, and the 0x05 escape for a leading 0xE5.
func shortDisplay(e []byte) string {
	base := []byte(strings.TrimRight(string(e[:8]), " "))
	ext := strings.TrimRight(string(e[8:11]), " ")
	if len(base) > 0 && base[0] == 0x05 {
		base[0] = 0xe5
	}
	name := string(base)
	if e[12]&0x08 != 0 {
		name = strings.ToLower(name)
	}
	if e[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext != "" {
		name += "." + ext
	}
	return name
}

// longName accumulates LFN entries, which precede their short entry in
// descending sequence order (the first one flagged 0x40).
type longName struct {
	units    []uint16
	expect   int // sequence number of the next entry, 0 when idle
	checksum byte
}

func (l *longName) reset() { *l = longName{} }

func (l *longName) add(e []byte) {
	seq := int(e[0] & 0x1f)
	switch {
	case e[0]&0x40 != 0 && seq >= 1: // last part, first on disk
		l.units = make([]uint16, 13*seq)
		l.checksum = e[13]
	case seq >= 1 && seq == l.expect && e[13] == l.checksum:
	default:
		l.reset()
		return
	}
	for k, off := range lfnOffsets {
		l.units[(seq-1)*13+k] = binary.LittleEndian.Uint16(e[off:])
	}
	l.expect = seq - 1
}

// name returns the long name if a complete set of LFN entries with the
// right checksum preceded short, else "".
func (l *longName) name(short []byte) string {
	if l.units == nil || l.expect != 0 || lfnChecksum(string(short)) != l.checksum {
		return ""
	}
	u := l.units
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}
