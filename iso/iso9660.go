package iso

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ECMA-119 (ISO9660) writer. Everything is in 2048-byte logical sectors
// ("LBA" = sector number); multi-byte numbers are mostly stored
// "both-endian": little-endian copy immediately followed by big-endian.

const sectorSize = 2048

// Fixed sector numbers; see the layout in doc.go.
const (
	lbaPVD    = 16
	lbaPathL  = 19 // primary L (little-endian) path table
	lbaPathM  = 20 // primary M (big-endian) path table
	lbaJPathL = 21 // Joliet L path table
	lbaJPathM = 22 // Joliet M path table
	lbaRoot   = 23 // primary root directory
)

// pathTableSize is one path-table record for the root: 8 bytes of header,
// a 1-byte directory identifier (0x00) and a pad byte.
const pathTableSize = 10

// flagDir is the "directory" bit of a directory record's flags byte.
const flagDir = 0x02

// Dates outside this range cannot be stored in a 7-byte directory date
// (year = 1900 + one byte).
var (
	isoMinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	isoMaxTime = time.Date(2155, 12, 31, 23, 59, 59, 0, time.UTC)
)

type isoFile struct {
	name   string // real name: Rock Ridge NM and Joliet
	id     string // primary-tree identifier, e.g. "USER_DAT.;1"
	data   []byte
	extent uint32 // first sector of the data
}

// isoLayout is a planned ISO9660 image.
type isoLayout struct {
	label  string
	date7  [7]byte
	date17 [17]byte
	files  []isoFile // sorted by name; data is written in this order

	rootSectors   int    // size of the primary root directory
	jolietSectors int    // size of the Joliet root directory
	ceLBA         uint32 // SUSP continuation area (ER entry)
	jolietLBA     uint32 // Joliet root directory
	dataLBA       uint32 // first file sector
	volumeSectors uint32 // volume space size
}

// planISO assigns every sector. entries are valid and sorted by name.
func planISO(label string, mod time.Time, entries []Entry) *isoLayout {
	mod = clampTime(mod, isoMinTime, isoMaxTime)
	l := &isoLayout{label: label, date7: date7(mod), date17: date17(mod)}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	for i, id := range isoIdentifiers(names) {
		l.files = append(l.files, isoFile{name: entries[i].Name, id: id, data: entries[i].Data})
	}
	// Record lengths do not depend on extents, so directories can be
	// sized before any extent is known.
	l.rootSectors = len(l.primaryDir()) / sectorSize
	l.ceLBA = lbaRoot + uint32(l.rootSectors)
	l.jolietLBA = l.ceLBA + 1
	l.jolietSectors = len(l.jolietDir()) / sectorSize
	l.dataLBA = l.jolietLBA + uint32(l.jolietSectors)
	next := l.dataLBA
	for i := range l.files {
		// Empty files get an in-volume extent and no sectors.
		l.files[i].extent = l.dataLBA
		if n := len(l.files[i].data); n > 0 {
			l.files[i].extent = next
			next += uint32((n + sectorSize - 1) / sectorSize)
		}
	}
	if next == l.dataLBA {
		next++ // keep the empty files' extent inside the volume
	}
	l.volumeSectors = next
	return l
}

func (l *isoLayout) writeTo(w *errWriter) {
	w.padTo(lbaPVD * sectorSize) // system area
	w.write(l.volumeDescriptor(false))
	w.write(l.volumeDescriptor(true))
	w.write(terminator())
	w.write(pathTable(lbaRoot, false))
	w.write(pathTable(lbaRoot, true))
	w.write(pathTable(l.jolietLBA, false))
	w.write(pathTable(l.jolietLBA, true))
	w.padTo(lbaRoot * sectorSize)
	w.write(l.primaryDir())
	w.padTo(int64(l.ceLBA) * sectorSize)
	ce := make([]byte, sectorSize)
	copy(ce, suspER())
	w.write(ce)
	w.padTo(int64(l.jolietLBA) * sectorSize)
	w.write(l.jolietDir())
	for _, f := range l.files {
		if len(f.data) > 0 {
			w.padTo(int64(f.extent) * sectorSize)
			w.write(f.data)
		}
	}
	w.padTo(int64(l.volumeSectors) * sectorSize)
}

// volumeDescriptor builds the primary (type 1) or Joliet supplementary
// (type 2) volume descriptor. Offsets are ECMA-119 §8.4.
func (l *isoLayout) volumeDescriptor(joliet bool) []byte {
	b := make([]byte, sectorSize)
	b[0] = 1
	rootLBA, rootSize := uint32(lbaRoot), uint32(l.rootSectors*sectorSize)
	pathL, pathM := uint32(lbaPathL), uint32(lbaPathM)
	text := func(off, n int, s string) { // a-/d-characters, space padded
		copy(b[off:off+n], s+strings.Repeat(" ", n-len(s)))
	}
	if joliet {
		b[0] = 2
		copy(b[88:], jolietEscape)
		rootLBA, rootSize = l.jolietLBA, uint32(l.jolietSectors*sectorSize)
		pathL, pathM = lbaJPathL, lbaJPathM
		text = func(off, n int, s string) { // UCS-2, (0x00 0x20) padded
			for i := 0; i+1 < n; i += 2 {
				c := byte(' ')
				if i/2 < len(s) {
					c = s[i/2]
				}
				b[off+i], b[off+i+1] = 0, c
			}
		}
	}
	copy(b[1:6], "CD001")
	b[6] = 1
	text(8, 32, "")       // system identifier
	text(40, 32, l.label) // volume identifier; Joliet keeps 16 characters
	put733(b[80:], l.volumeSectors)
	put723(b[120:], 1) // volume set size
	put723(b[124:], 1) // volume sequence number
	put723(b[128:], sectorSize)
	put733(b[132:], pathTableSize)
	binary.LittleEndian.PutUint32(b[140:], pathL)
	binary.BigEndian.PutUint32(b[148:], pathM)
	copy(b[156:190], dirRecord([]byte{0}, rootLBA, rootSize, flagDir, l.date7, nil))
	text(190, 128, "")                    // volume set identifier
	text(318, 128, "")                    // publisher
	text(446, 128, "")                    // data preparer
	text(574, 128, "KILN")                // application
	text(702, 37, "")                     // copyright file
	text(739, 37, "")                     // abstract file
	text(776, 37, "")                     // bibliographic file
	copy(b[813:], l.date17[:])            // creation
	copy(b[830:], l.date17[:])            // modification
	copy(b[847:], "0000000000000000\x00") // expiration: none
	copy(b[864:], l.date17[:])            // effective
	b[881] = 1                            // file structure version
	return b
}

func terminator() []byte {
	b := make([]byte, sectorSize)
	b[0] = 255
	copy(b[1:6], "CD001")
	b[6] = 1
	return b
}

// pathTable is a one-record path table (root only) in its own sector:
// identifier length 1, extended attribute length 0, extent, parent
// directory number 1, identifier 0x00, pad.
func pathTable(lba uint32, bigEndian bool) []byte {
	b := make([]byte, sectorSize)
	b[0] = 1
	if bigEndian {
		binary.BigEndian.PutUint32(b[2:], lba)
		binary.BigEndian.PutUint16(b[6:], 1)
	} else {
		binary.LittleEndian.PutUint32(b[2:], lba)
		binary.LittleEndian.PutUint16(b[6:], 1)
	}
	return b
}

// primaryDir builds the primary root directory with its Rock Ridge
// fields. Records are sorted by identifier, as ECMA-119 §9.3 requires.
func (l *isoLayout) primaryDir() []byte {
	d := &dirBuilder{}
	size := uint32(l.rootSectors * sectorSize)
	px, tf := rripPX(modeDir, 2), rripTF(l.date7)
	dot := concat(suspSP(), rripRR(rrPX|rrTF), px, tf, suspCE(l.ceLBA, 0, uint32(len(suspER()))))
	d.add(dirRecord([]byte{0}, lbaRoot, size, flagDir, l.date7, dot))
	d.add(dirRecord([]byte{1}, lbaRoot, size, flagDir, l.date7, concat(rripRR(rrPX|rrTF), px, tf)))
	files := slices.Clone(l.files)
	slices.SortFunc(files, func(a, b isoFile) int { return compareISOIDs(a.id, b.id) })
	for _, f := range files {
		su := concat(rripRR(rrPX|rrNM|rrTF), rripNM(f.name), rripPX(modeFile, 1), tf)
		d.add(dirRecord([]byte(f.id), f.extent, uint32(len(f.data)), 0, l.date7, su))
	}
	return d.sectors()
}

// dirRecord builds a directory record (ECMA-119 §9.1): length, extended
// attribute length, extent (both-endian), data length (both-endian),
// 7-byte date, flags, unit size, gap, volume sequence number, identifier
// length, identifier, a pad byte when the identifier length is even, then
// the System Use area. The total is padded to an even length.
func dirRecord(id []byte, extent, size uint32, flags byte, date [7]byte, su []byte) []byte {
	n := 33 + len(id)
	if len(id)%2 == 0 {
		n++
	}
	total := n + len(su)
	total += total % 2
	rec := make([]byte, total)
	rec[0] = byte(total)
	put733(rec[2:], extent)
	put733(rec[10:], size)
	copy(rec[18:25], date[:])
	rec[25] = flags
	put723(rec[28:], 1)
	rec[32] = byte(len(id))
	copy(rec[33:], id)
	copy(rec[n:], su)
	return rec
}

// dirBuilder packs directory records into sectors; a record may not cross
// a sector boundary, so the rest of a sector is zero-filled instead.
type dirBuilder struct{ buf []byte }

func (d *dirBuilder) add(rec []byte) {
	if used := len(d.buf) % sectorSize; used+len(rec) > sectorSize {
		d.buf = append(d.buf, make([]byte, sectorSize-used)...)
	}
	d.buf = append(d.buf, rec...)
}

func (d *dirBuilder) sectors() []byte {
	if r := len(d.buf) % sectorSize; r != 0 {
		d.buf = append(d.buf, make([]byte, sectorSize-r)...)
	}
	return d.buf
}

// isoIdentifiers maps names to unique level-1 identifiers "BASE.EXT;1":
// upper case, anything but A-Z 0-9 _ becomes '_', the last '.' separates
// an extension, base truncated to 8 and extension to 3 (genisoimage's
// scheme: "network-config" -> "NETWORK_.;1"). Names whose natural
// identifier clashes get a numeric tail on the base ("USER_DA1.;1"),
// chosen in name order so the result is deterministic.
func isoIdentifiers(names []string) []string {
	type split struct{ base, ext string }
	nat := make([]split, len(names))
	count := map[string]int{}
	for i, name := range names {
		base, ext := name, ""
		if j := strings.LastIndexByte(name, '.'); j >= 0 {
			base, ext = name[:j], name[j+1:]
		}
		nat[i] = split{dChars(base, 8), dChars(ext, 3)}
		count[nat[i].base+"."+nat[i].ext]++
	}
	used := map[string]bool{}
	for id, n := range count {
		if n == 1 {
			used[id] = true
		}
	}
	ids := make([]string, len(names))
	for i, s := range nat {
		id := s.base + "." + s.ext
		for n := 1; count[s.base+"."+s.ext] > 1; n++ {
			// The candidate must differ from every natural identifier
			// and from tails already handed out.
			tail := strconv.Itoa(n)
			id = s.base[:min(len(s.base), 8-len(tail))] + tail + "." + s.ext
			if count[id] == 0 && !used[id] {
				break
			}
		}
		used[id] = true
		ids[i] = id + ";1"
	}
	return ids
}

// dChars upper-cases s, replaces non-d-characters with '_' and truncates.
func dChars(s string, max int) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), max)])
}

// compareISOIDs orders identifiers as ECMA-119 §9.3: by name, then by
// extension, each padded with spaces. (Versions are all ";1".)
func compareISOIDs(a, b string) int {
	ab, ae, _ := strings.Cut(strings.TrimSuffix(a, ";1"), ".")
	bb, be, _ := strings.Cut(strings.TrimSuffix(b, ";1"), ".")
	if c := comparePadded(ab, bb); c != 0 {
		return c
	}
	return comparePadded(ae, be)
}

func comparePadded(a, b string) int {
	n := max(len(a), len(b))
	return strings.Compare(a+strings.Repeat(" ", n-len(a)), b+strings.Repeat(" ", n-len(b)))
}

// date7 is the directory-record date: years since 1900, month, day, hour,
// minute, second, GMT offset in 15-minute units (0).
func date7(t time.Time) [7]byte {
	return [7]byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

// date17 is the volume-descriptor date: "YYYYMMDDHHMMSScc" in ASCII
// digits (cc = hundredths) and a GMT offset byte (0).
func date17(t time.Time) [17]byte {
	var d [17]byte
	copy(d[:], fmt.Sprintf("%04d%02d%02d%02d%02d%02d00", t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second()))
	return d
}

// clampTime converts t to UTC whole seconds within [lo, hi].
func clampTime(t, lo, hi time.Time) time.Time {
	t = t.UTC().Truncate(time.Second)
	if t.Before(lo) {
		return lo
	}
	if t.After(hi) {
		return hi
	}
	return t
}

// put723 stores v both-endian in 4 bytes (ECMA-119 §7.2.3).
func put723(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

// put733 stores v both-endian in 8 bytes (ECMA-119 §7.3.3).
func put733(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}
