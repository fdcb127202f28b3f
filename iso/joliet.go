package iso

import "encoding/binary"

// Joliet: a second directory tree, announced by a supplementary volume
// descriptor whose escape sequence names UCS-2 level 3 (%/E), with names
// stored as big-endian UCS-2. Windows reads it; Linux falls back to it when
// Rock Ridge is absent. It shares the file extents with the primary tree.

// jolietEscape is the UCS-2 level 3 escape sequence, stored at offset 88
// of the supplementary volume descriptor.
var jolietEscape = []byte{'%', '/', 'E'}

// ucs2 encodes an ASCII string as big-endian UCS-2. Names are validated to
// be printable ASCII, so every byte is one code unit.
func ucs2(s string) []byte {
	b := make([]byte, 2*len(s))
	for i := 0; i < len(s); i++ {
		binary.BigEndian.PutUint16(b[2*i:], uint16(s[i]))
	}
	return b
}

// jolietDir builds the Joliet root directory: ".", ".." and one record per
// file, sorted by UCS-2 name (for ASCII the same as byte order, which is
// how files is already sorted). Joliet records carry no SUSP.
func (l *isoLayout) jolietDir() []byte {
	d := &dirBuilder{}
	size := uint32(l.jolietSectors * sectorSize)
	d.add(dirRecord([]byte{0}, l.jolietLBA, size, flagDir, l.date7, nil))
	d.add(dirRecord([]byte{1}, l.jolietLBA, size, flagDir, l.date7, nil))
	for _, f := range l.files {
		d.add(dirRecord(ucs2(f.name), f.extent, uint32(len(f.data)), 0, l.date7, nil))
	}
	return d.sectors()
}
