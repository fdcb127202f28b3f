package iso

import (
	"bytes"
	"encoding/binary"
	"regexp"
	"testing"
	"time"
)

// TestISOStructure checks the on-disk fields that the integration tools
// do not all look at: both-endian numbers, M path tables, dates.
func TestISOStructure(t *testing.T) {
	img := write(t, Options{ModTime: testTime}, seedEntries())
	if len(img)%sectorSize != 0 {
		t.Fatalf("image is %d bytes, not whole sectors", len(img))
	}
	if !bytes.Equal(img[:16*sectorSize], make([]byte, 16*sectorSize)) {
		t.Error("system area (sectors 0-15) is not zero")
	}
	sec := func(n int) []byte { return img[n*sectorSize : (n+1)*sectorSize] }
	pvd, svd, term := sec(16), sec(17), sec(18)
	for i, vd := range [][]byte{pvd, svd, term} {
		if want := []byte{1, 2, 255}[i]; vd[0] != want || string(vd[1:6]) != "CD001" || vd[6] != 1 {
			t.Errorf("sector %d: descriptor header % x, want type %d CD001 v1", 16+i, vd[:7], want)
		}
	}
	both32 := func(b []byte) uint32 {
		le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
		if le != be {
			t.Errorf("both-endian field disagrees: LE %d, BE %d", le, be)
		}
		return le
	}
	sectors := uint32(len(img) / sectorSize)
	for _, vd := range [][]byte{pvd, svd} {
		if got := both32(vd[80:]); got != sectors {
			t.Errorf("volume space size %d, image has %d sectors", got, sectors)
		}
		if binary.LittleEndian.Uint16(vd[128:]) != sectorSize || binary.BigEndian.Uint16(vd[130:]) != sectorSize {
			t.Errorf("logical block size % x", vd[128:132])
		}
		if both32(vd[132:]) != pathTableSize {
			t.Error("path table size")
		}
		// L and M path tables must both point at this tree's root.
		root := both32(vd[156+2:])
		l := sec(int(binary.LittleEndian.Uint32(vd[140:])))
		m := sec(int(binary.BigEndian.Uint32(vd[148:])))
		if l[0] != 1 || binary.LittleEndian.Uint32(l[2:]) != root || binary.LittleEndian.Uint16(l[6:]) != 1 {
			t.Errorf("L path table % x does not point at root %d", l[:10], root)
		}
		if m[0] != 1 || binary.BigEndian.Uint32(m[2:]) != root || binary.BigEndian.Uint16(m[6:]) != 1 {
			t.Errorf("M path table % x does not point at root %d", m[:10], root)
		}
		if want := "20240506070809000"; string(vd[813:829]) != want[:16] || vd[829] != 0 || string(vd[830:846]) != want[:16] {
			t.Errorf("creation/modification dates %q / %q, want %q GMT", vd[813:830], vd[830:847], want[:16])
		}
	}
	if got := string(pvd[40:72]); got != "cidata"+string(bytes.Repeat([]byte(" "), 26)) {
		t.Errorf("PVD volume id %q", got)
	}
	if got := svd[40:52]; !bytes.Equal(got, []byte("\x00c\x00i\x00d\x00a\x00t\x00a")) {
		t.Errorf("Joliet volume id % x, want UCS-2 cidata", got)
	}
	if !bytes.Equal(svd[88:91], []byte("%/E")) {
		t.Errorf("Joliet escape %q, want %%/E", svd[88:91])
	}
	// Root "." record: 7-byte date, directory flag, then SUSP SP first.
	root := sec(int(both32(pvd[158:])))
	if !bytes.Equal(root[18:25], []byte{124, 5, 6, 7, 8, 9, 0}) || root[25] != flagDir {
		t.Errorf("root record date/flags % x", root[18:26])
	}
	if su := root[34:]; !bytes.HasPrefix(su, []byte{'S', 'P', 7, 1, 0xbe, 0xef, 0}) {
		t.Errorf("root \".\" System Use does not start with SP: % x", su[:7])
	}
	// The CE in "." must lead to the ER naming RRIP_1991A.
	ce := bytes.Index(root[:root[0]], []byte{'C', 'E', 28, 1})
	if ce < 0 {
		t.Fatal("no CE entry in root \".\"")
	}
	block, length := both32(root[ce+4:]), both32(root[ce+20:])
	er := sec(int(block))[:length]
	if !bytes.HasPrefix(er, []byte{'E', 'R', byte(length), 1, 10}) || !bytes.Contains(er, []byte("RRIP_1991A")) {
		t.Errorf("continuation area %q is not the RRIP_1991A ER", er)
	}
	// Each file record carries NM with its real name and PX 0100644.
	for _, e := range seedEntries() {
		i := bytes.Index(root, append([]byte{'N', 'M', byte(5 + len(e.Name)), 1, 0}, e.Name...))
		if i < 0 {
			t.Errorf("no NM entry for %q", e.Name)
			continue
		}
		px := bytes.Index(root[i:], []byte{'P', 'X', 36, 1})
		if px < 0 || binary.LittleEndian.Uint32(root[i+px+4:]) != 0o100644 {
			t.Errorf("%q: no PX with mode 0100644 after NM", e.Name)
		}
	}
}

// TestISOIdentifiers checks the primary-tree mangling: valid level-1
// identifiers, unique, and the genisoimage-style names for seed files.
func TestISOIdentifiers(t *testing.T) {
	in := []string{".hidden", "a.b.c", "meta-data", "network-config", "user-data", "user-data.yaml", "x.tar.gz"}
	want := []string{".HID;1", "A_B.C;1", "META_DAT.;1", "NETWORK_.;1", "USER_DAT.;1", "USER_DAT.YAM;1", "X_TAR.GZ;1"}
	got := isoIdentifiers(in)
	valid := regexp.MustCompile(`^[A-Z0-9_]{0,8}\.[A-Z0-9_]{0,3};1$`)
	for i := range in {
		if got[i] != want[i] {
			t.Errorf("%q -> %q, want %q", in[i], got[i], want[i])
		}
		if !valid.MatchString(got[i]) {
			t.Errorf("%q is not a level-1 identifier", got[i])
		}
	}
}

func TestCompareISOIDs(t *testing.T) {
	// ECMA-119 §9.3: names compared space-padded, then extensions.
	ordered := []string{"A.;1", "A.B;1", "A0.;1", "AB.;1", "AB.A;1", "B.;1"}
	for i := 1; i < len(ordered); i++ {
		if compareISOIDs(ordered[i-1], ordered[i]) >= 0 || compareISOIDs(ordered[i], ordered[i-1]) <= 0 {
			t.Errorf("%q should sort before %q", ordered[i-1], ordered[i])
		}
	}
}

// TestISOTimeClamp: 7-byte dates hold years 1900-2155 only.
func TestISOTimeClamp(t *testing.T) {
	img := write(t, Options{ModTime: time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)}, seedEntries())
	if got := string(img[16*sectorSize+813:][:8]); got != "19000101" {
		t.Errorf("creation date %q, want clamped to 19000101", got)
	}
	img = write(t, Options{ModTime: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, seedEntries())
	if got := string(img[16*sectorSize+813:][:8]); got != "21551231" {
		t.Errorf("creation date %q, want clamped to 21551231", got)
	}
}
