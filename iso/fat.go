package iso

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// FAT12/FAT16 writer (Microsoft fatgen103). Sector numbers below are
// 512-byte sectors from the start of the image.

const (
	fatSectorSize  = 512
	fatRootEntries = 512                                 // 16 KiB root directory
	fatRootSectors = fatRootEntries * 32 / fatSectorSize // 32
	fatMinSectors  = 1 << 20 / fatSectorSize             // images are >= 1 MiB...
	fatAlign       = fatMinSectors                       // ...and whole MiB
	fatMedia       = 0xf8                                // fixed disk
	attrArchive    = 0x20
	attrVolumeID   = 0x08
)

// FAT dates start in 1980 and have a 7-bit year; times have 2 s steps.
var (
	fatMinTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	fatMaxTime = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
)

type fatFile struct {
	name    string
	short   string // 11-byte on-disk short name
	lfn     bool
	data    []byte
	cluster uint32 // first cluster, 0 for empty files
}

// fatLayout is a planned FAT image.
type fatLayout struct {
	label      string
	mod        time.Time
	serial     uint32
	spc        uint32 // sectors per cluster
	total      uint32 // sectors in the image
	fatSectors uint32 // sectors per FAT
	clusters   uint32 // data clusters, numbered 2..clusters+1
	fat16      bool
	files      []fatFile
}

// planFAT picks the smallest cluster size and image size (whole MiB, at
// least 1 MiB) that hold the data, then allocates each file's clusters
// contiguously in name order.
func planFAT(label string, mod time.Time, entries []Entry) (*fatLayout, error) {
	l := &fatLayout{label: label, mod: clampTime(mod, fatMinTime, fatMaxTime)}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	shorts, lfn := fatShortNames(names)
	dirEntries := 1 // the volume label
	for i, e := range entries {
		l.files = append(l.files, fatFile{name: e.Name, short: shorts[i], lfn: lfn[i], data: e.Data})
		dirEntries++
		if lfn[i] {
			dirEntries += (len(e.Name) + 12) / 13
		}
	}
	if dirEntries > fatRootEntries { // unreachable within MaxEntries/MaxNameLen
		return nil, fmt.Errorf("iso: %d root directory entries needed, more than %d", dirEntries, fatRootEntries)
	}
	if !l.chooseGeometry() { // unreachable within MaxTotalSize
		return nil, fmt.Errorf("iso: no FAT12/FAT16 geometry holds the entries")
	}
	next := uint32(2)
	for i := range l.files {
		if n := l.clustersFor(len(l.files[i].data)); n > 0 {
			l.files[i].cluster = next
			next += n
		}
	}
	l.serial = fatSerial(label, l.mod, entries)
	return l, nil
}

func (l *fatLayout) clustersFor(n int) uint32 {
	cs := int(l.spc) * fatSectorSize
	return uint32((n + cs - 1) / cs)
}

// chooseGeometry tries cluster sizes from 512 bytes up. The FAT type
// follows from the cluster count alone (< 4085 is FAT12, < 65525 FAT16),
// so counts within 16 of those limits, which some drivers misjudge, are
// skipped by growing the image.
func (l *fatLayout) chooseGeometry() bool {
	for l.spc = 1; l.spc <= 64; l.spc *= 2 {
		var need uint32
		for _, f := range l.files {
			need += l.clustersFor(len(f.data))
		}
		// Estimate generously (FAT16 entries), then round to whole MiB.
		est := 1 + fatRootSectors + need*l.spc + 2*((need+2)*2/fatSectorSize+1)
		total := max(fatMinSectors, (est+fatAlign-1)/fatAlign*fatAlign)
		for ; total <= 1<<22; total += fatAlign { // up to 2 GiB
			l.total = total
			l.geometry()
			if l.clusters >= 65525-16 {
				break // next cluster size
			}
			if l.clusters >= need && (l.clusters < 4085-16 || l.clusters > 4085+16) {
				return true
			}
		}
	}
	return false
}

// geometry sizes the FATs for l.total: growing a FAT shrinks the data
// area, so iterate until the FAT covers every cluster (plus the two
// reserved entries).
func (l *fatLayout) geometry() {
	l.fatSectors = 1
	for {
		l.clusters = (l.total - 1 - fatRootSectors - 2*l.fatSectors) / l.spc
		l.fat16 = l.clusters >= 4085
		bytes := ((l.clusters+2)*3 + 1) / 2 // FAT12: 12 bits per entry
		if l.fat16 {
			bytes = (l.clusters + 2) * 2
		}
		need := (bytes + fatSectorSize - 1) / fatSectorSize
		if need <= l.fatSectors {
			return
		}
		l.fatSectors = need
	}
}

// fatSerial derives the volume serial from the content, so identical
// inputs give identical images and different seeds different serials.
func fatSerial(label string, mod time.Time, entries []Entry) uint32 {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte(label))
	binary.LittleEndian.PutUint64(n[:], uint64(mod.Unix()))
	h.Write(n[:])
	for _, e := range entries {
		binary.LittleEndian.PutUint64(n[:], uint64(len(e.Name)))
		h.Write(n[:])
		h.Write([]byte(e.Name))
		binary.LittleEndian.PutUint64(n[:], uint64(len(e.Data)))
		h.Write(n[:])
		h.Write(e.Data)
	}
	return binary.LittleEndian.Uint32(h.Sum(nil))
}

func (l *fatLayout) writeTo(w *errWriter) {
	w.write(l.bootSector())
	fat := l.fat()
	w.write(fat)
	w.write(fat)
	w.write(l.rootDir())
	dataStart := int64(1+2*l.fatSectors+fatRootSectors) * fatSectorSize
	for _, f := range l.files {
		if f.cluster != 0 {
			w.padTo(dataStart + int64(f.cluster-2)*int64(l.spc)*fatSectorSize)
			w.write(f.data)
		}
	}
	w.padTo(int64(l.total) * fatSectorSize)
}

// bootSector is sector 0: jump, OEM name, the BIOS parameter block
// (offsets 11-35) and the FAT12/16 extended BPB (36-61), boot code that
// just asks the BIOS to try the next device, and the 0x55AA signature.
func (l *fatLayout) bootSector() []byte {
	b := make([]byte, fatSectorSize)
	copy(b[0:], []byte{0xeb, 0x3c, 0x90}) // jmp 0x3e; nop
	copy(b[3:11], "KILN    ")             // OEM name
	le := binary.LittleEndian
	le.PutUint16(b[11:], fatSectorSize)
	b[13] = byte(l.spc)
	le.PutUint16(b[14:], 1) // reserved sectors: just this one
	b[16] = 2               // number of FATs
	le.PutUint16(b[17:], fatRootEntries)
	if l.total < 1<<16 {
		le.PutUint16(b[19:], uint16(l.total))
	} else {
		le.PutUint32(b[32:], l.total)
	}
	b[21] = fatMedia
	le.PutUint16(b[22:], uint16(l.fatSectors))
	le.PutUint16(b[24:], 32) // sectors per track (CHS hint only)
	le.PutUint16(b[26:], 64) // heads (CHS hint only)
	b[36] = 0x80             // drive number: hard disk
	b[38] = 0x29             // extended boot signature: serial, label, type follow
	le.PutUint32(b[39:], l.serial)
	copy(b[43:54], padLabel(l.label)) // space padded to 11
	copy(b[54:62], "FAT12   ")
	if l.fat16 {
		copy(b[54:62], "FAT16   ")
	}
	copy(b[62:], []byte{0xcd, 0x18, 0xeb, 0xfe}) // int 18h; jmp $
	b[510], b[511] = 0x55, 0xaa
	return b
}

// fat builds one FAT: entry 0 holds the media byte, entry 1 end-of-chain,
// then each file's clusters chain to the next and the last one ends it.
func (l *fatLayout) fat() []byte {
	b := make([]byte, l.fatSectors*fatSectorSize)
	set := func(n, v uint32) {
		if l.fat16 {
			binary.LittleEndian.PutUint16(b[2*n:], uint16(v))
			return
		}
		// FAT12 packs two 12-bit entries into three bytes.
		off := n + n/2
		if n%2 == 0 {
			b[off] = byte(v)
			b[off+1] = b[off+1]&0xf0 | byte(v>>8)&0x0f
		} else {
			b[off] = b[off]&0x0f | byte(v<<4)
			b[off+1] = byte(v >> 4)
		}
	}
	eoc := uint32(0xfff)
	if l.fat16 {
		eoc = 0xffff
	}
	set(0, eoc&^0xff|fatMedia)
	set(1, eoc)
	for _, f := range l.files {
		if f.cluster == 0 {
			continue
		}
		last := f.cluster + l.clustersFor(len(f.data)) - 1
		for c := f.cluster; c < last; c++ {
			set(c, c+1)
		}
		set(last, eoc)
	}
	return b
}

// rootDir builds the fixed-size root directory: the volume-label entry,
// then per file its LFN entries and 32-byte short entry (name 0-10,
// attributes 11, creation 10 ms units 13, creation time/date 14-17,
// access date 18, write time/date 22-25, first cluster 26, size 28).
func (l *fatLayout) rootDir() []byte {
	b := make([]byte, fatRootSectors*fatSectorSize)
	t, d := fatTime(l.mod), fatDate(l.mod)
	le := binary.LittleEndian
	short := func(off int, name string, attr byte, cluster, size uint32) {
		e := b[off : off+32]
		copy(e, name)
		e[11] = attr
		e[13] = byte(l.mod.Second() % 2 * 100)
		le.PutUint16(e[14:], t)
		le.PutUint16(e[16:], d)
		le.PutUint16(e[18:], d)
		le.PutUint16(e[22:], t)
		le.PutUint16(e[24:], d)
		le.PutUint16(e[26:], uint16(cluster))
		le.PutUint32(e[28:], size)
	}
	short(0, padLabel(l.label), attrVolumeID, 0, 0)
	off := 32
	for _, f := range l.files {
		if f.lfn {
			off += copy(b[off:], lfnEntries(f.name, f.short))
		}
		short(off, f.short, attrArchive, f.cluster, uint32(len(f.data)))
		off += 32
	}
	return b
}

// padLabel space-pads a FAT label (at most 11 bytes) to 11.
func padLabel(label string) string {
	return label + strings.Repeat(" ", 11-len(label))
}

// fatTime packs hour(5) minute(6) second/2(5); fatDate packs
// year-1980(7) month(4) day(5).
func fatTime(t time.Time) uint16 {
	return uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2)
}

func fatDate(t time.Time) uint16 {
	return uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day())
}
