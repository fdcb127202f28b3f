package iso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"
)

// Limits that keep Read's work bounded on hostile images.
const (
	maxDescriptors = 32        // volume descriptors examined from sector 16
	maxDirSize     = 256 << 10 // root directory bytes
	maxCEHops      = 8         // SUSP continuation areas followed per record
	maxCESize      = sectorSize
)

// tree selects which names readISO reports; tests use it to check the
// Joliet and primary trees separately.
type tree int

const (
	treeBest    tree = iota // Rock Ridge, else Joliet, else primary
	treeJoliet              // Joliet names (error if absent)
	treePrimary             // primary ISO9660 identifiers, without ";1"
)

func readISO(img *image) (string, []Entry, error) {
	return readISOTree(img, treeBest)
}

// isoRecord is the part of a directory record Read needs.
type isoRecord struct {
	id     []byte
	extent uint32
	size   uint32
	flags  byte
	su     []byte // System Use area
}

func readISOTree(img *image, which tree) (string, []Entry, error) {
	var pvd, joliet []byte
walk:
	for i := range int64(maxDescriptors) {
		vd, err := img.read((lbaPVD+i)*sectorSize, sectorSize, "volume descriptor")
		if err != nil {
			return "", nil, err
		}
		if string(vd[1:6]) != "CD001" {
			return "", nil, fmt.Errorf("iso: volume descriptor %d: bad standard identifier", lbaPVD+i)
		}
		switch vd[0] {
		case 1:
			if pvd == nil {
				pvd = vd
			}
		case 2:
			// Joliet: escape %/@, %/C or %/E (UCS-2 level 1-3).
			if e := vd[88:91]; joliet == nil && e[0] == '%' && e[1] == '/' && (e[2] == '@' || e[2] == 'C' || e[2] == 'E') {
				joliet = vd
			}
		case 255:
			break walk
		}
	}
	if pvd == nil {
		return "", nil, fmt.Errorf("iso: no primary volume descriptor")
	}
	if bs := binary.LittleEndian.Uint16(pvd[128:]); bs != sectorSize {
		return "", nil, fmt.Errorf("iso: logical block size %d not supported", bs)
	}
	label := trimID(pvd[40:72])
	records, err := readDirectory(img, pvd[156:190])
	if err != nil {
		return "", nil, err
	}
	// Rock Ridge is in use when the root "." record starts with SUSP "SP"
	// (check bytes BE EF); its byte 6 is how many bytes to skip at the
	// start of every other System Use area.
	rr, skip := false, 0
	if len(records) > 0 {
		if su := records[0].su; len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[4] == 0xbe && su[5] == 0xef {
			rr, skip = true, int(su[6])
		}
	}
	// Pick the tree whose names are reported.
	mode := which
	if which == treeBest && !rr {
		mode = treePrimary
		if joliet != nil {
			mode = treeJoliet
		}
	}
	if mode == treeJoliet {
		if joliet == nil {
			return "", nil, fmt.Errorf("iso: no Joliet volume descriptor")
		}
		if records, err = readDirectory(img, joliet[156:190]); err != nil {
			return "", nil, err
		}
	}
	var c collector
	for _, rec := range records {
		if len(rec.id) == 1 && rec.id[0] <= 1 {
			continue // "." and ".."
		}
		name := primaryName(rec.id)
		switch mode {
		case treeJoliet:
			if name, err = jolietName(rec.id); err != nil {
				return "", nil, err
			}
		case treeBest: // Rock Ridge; keep the primary name if NM is absent
			nm, err := rockRidgeName(img, rec.su[min(skip, len(rec.su)):])
			if err != nil {
				return "", nil, err
			}
			if nm != "" {
				name = nm
			}
		}
		if rec.flags&flagDir != 0 {
			return "", nil, fmt.Errorf("iso: entry %q is a directory; seeds are flat", name)
		}
		if rec.flags&0x80 != 0 {
			return "", nil, fmt.Errorf("iso: entry %q spans several extents, not supported", name)
		}
		if err := c.check(name, int64(rec.size)); err != nil {
			return "", nil, err
		}
		data, err := img.read(int64(rec.extent)*sectorSize, int64(rec.size), fmt.Sprintf("data of %q", name))
		if err != nil {
			return "", nil, err
		}
		c.add(name, data)
	}
	return label, c.entries, nil
}

// readDirectory reads the directory a 34-byte root record points at and
// splits it into records. A zero length byte means the rest of the sector
// is padding.
func readDirectory(img *image, root []byte) ([]isoRecord, error) {
	extent := binary.LittleEndian.Uint32(root[2:])
	size := binary.LittleEndian.Uint32(root[10:])
	if size > maxDirSize {
		return nil, fmt.Errorf("iso: root directory of %d bytes, more than %d", size, maxDirSize)
	}
	buf, err := img.read(int64(extent)*sectorSize, int64(size), "root directory")
	if err != nil {
		return nil, err
	}
	var recs []isoRecord
	for off := 0; off < len(buf); {
		n := int(buf[off])
		if n == 0 {
			off = (off/sectorSize + 1) * sectorSize
			continue
		}
		if n < 34 || off+n > len(buf) {
			return nil, fmt.Errorf("iso: malformed directory record at offset %d", off)
		}
		b := buf[off : off+n]
		idLen := int(b[32])
		if 33+idLen > n || idLen == 0 {
			return nil, fmt.Errorf("iso: malformed directory record at offset %d", off)
		}
		suStart := min(33+idLen+1-idLen%2, n) // pad byte after an even-length id
		rec := isoRecord{
			id:     b[33 : 33+idLen],
			extent: binary.LittleEndian.Uint32(b[2:]),
			size:   binary.LittleEndian.Uint32(b[10:]),
			flags:  b[25],
		}
		if suStart < n {
			rec.su = b[suStart:]
		}
		recs = append(recs, rec)
		off += n
	}
	return recs, nil
}

// primaryName turns "USER_DAT.;1" into "USER_DAT": version and a trailing
// dot (present when there is no extension) are not part of the name.
func primaryName(id []byte) string {
	s := string(id)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// jolietName decodes a big-endian UCS-2 identifier, dropping a ";1".
func jolietName(id []byte) (string, error) {
	if len(id)%2 != 0 {
		return "", fmt.Errorf("iso: Joliet identifier of odd length %d", len(id))
	}
	u := make([]uint16, len(id)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(id[2*i:])
	}
	return strings.TrimSuffix(string(utf16.Decode(u)), ";1"), nil
}

// rockRidgeName returns the name in the NM entries of a System Use area,
// following CE continuation areas, or "" when there is none. NM entries
// with the CONTINUE flag (bit 0) are concatenated; "." / ".." NMs (bits 1,
// 2) carry no name.
func rockRidgeName(img *image, su []byte) (string, error) {
	var name bytes.Buffer
	for hop := 0; ; hop++ {
		var next []byte
		for len(su) >= 4 {
			n := int(su[2])
			if n < 4 || n > len(su) {
				break // padding or damage: stop, as Linux does
			}
			e := su[:n]
			su = su[n:]
			switch string(e[:2]) {
			case "ST": // SUSP terminator
				return name.String(), nil
			case "NM":
				if n >= 5 && e[4]&0x06 == 0 {
					name.Write(e[5:])
				}
			case "CE":
				if n < 28 || next != nil {
					continue
				}
				block := binary.LittleEndian.Uint32(e[4:])
				off := binary.LittleEndian.Uint32(e[12:])
				length := binary.LittleEndian.Uint32(e[20:])
				if length > maxCESize {
					return "", fmt.Errorf("iso: SUSP continuation area of %d bytes, more than %d", length, maxCESize)
				}
				if hop >= maxCEHops { // also stops CE loops
					return "", fmt.Errorf("iso: more than %d chained SUSP continuation areas", maxCEHops)
				}
				var err error
				if next, err = img.read(int64(block)*sectorSize+int64(off), int64(length), "SUSP continuation area"); err != nil {
					return "", err
				}
			}
		}
		if next == nil {
			return name.String(), nil
		}
		su = next
	}
}
