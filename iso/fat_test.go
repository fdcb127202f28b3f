package iso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

func TestFATShortNames(t *testing.T) {
	in := []string{"README", "USER-D~1", "a b.txt", "meta-data", "meta", "network-config", "user-data", "user-data2", "vendor-data", "x.tar.gz"}
	want := []struct {
		short string
		lfn   bool
	}{
		{"README     ", false},
		{"USER-D~1   ", false}, // already 8.3: kept, and reserved
		{"AB~1    TXT", true},  // space dropped: lossy
		{"META-D~1   ", true},
		{"META       ", true}, // lossless apart from case: no tail
		{"NETWOR~1   ", true},
		{"USER-D~2   ", true}, // ~1 is taken by the real USER-D~1
		{"USER-D~3   ", true},
		{"VENDOR~1   ", true},
		{"X_TAR~1 GZ ", true}, // inner dot becomes '_'
	}
	shorts, lfn := fatShortNames(in)
	for i := range in {
		if shorts[i] != want[i].short || lfn[i] != want[i].lfn {
			t.Errorf("%q: short %q lfn %v, want %q %v", in[i], shorts[i], lfn[i], want[i].short, want[i].lfn)
		}
	}
}

func TestLFNChecksum(t *testing.T) {
	// Reference values computed with the fatgen103 algorithm by hand:
	// sum = ((sum & 1) << 7) + (sum >> 1) + c over the 11 bytes.
	ref := func(s string) byte {
		var sum int
		for i := 0; i < 11; i++ {
			sum = ((sum&1)<<7 + sum>>1 + int(s[i])) & 0xff
		}
		return byte(sum)
	}
	for _, s := range []string{"USER-D~1   ", "NETWOR~1   ", "README     ", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"} {
		if got, want := lfnChecksum(s), ref(s); got != want {
			t.Errorf("lfnChecksum(%q) = %#x, want %#x", s, got, want)
		}
	}
}

// fatImage is a parsed view of the fields the structure tests check.
type fatImage struct {
	b                        []byte
	spc, fatSectors, total   int
	fat1, fat2, root, serial []byte
	dataStart                int
}

func parseFAT(t *testing.T, b []byte) fatImage {
	t.Helper()
	le := binary.LittleEndian
	f := fatImage{b: b, spc: int(b[13]), fatSectors: int(le.Uint16(b[22:]))}
	f.total = int(le.Uint16(b[19:]))
	if f.total == 0 {
		f.total = int(le.Uint32(b[32:]))
	}
	fatBytes := f.fatSectors * 512
	f.fat1 = b[512 : 512+fatBytes]
	f.fat2 = b[512+fatBytes : 512+2*fatBytes]
	f.root = b[512+2*fatBytes : 512+2*fatBytes+32*512]
	f.dataStart = 512 + 2*fatBytes + 32*512
	f.serial = b[39:43]
	return f
}

func TestFATStructure(t *testing.T) {
	img := write(t, Options{Format: VFAT, ModTime: testTime}, seedEntries())
	f := parseFAT(t, img)
	le := binary.LittleEndian
	checks := []struct {
		what      string
		got, want any
	}{
		{"image size", len(img), 1 << 20},
		{"total sectors", f.total, len(img) / 512},
		{"jump", img[0], byte(0xeb)},
		{"bytes/sector", le.Uint16(img[11:]), uint16(512)},
		{"FAT count", img[16], byte(2)},
		{"root entries", le.Uint16(img[17:]), uint16(512)},
		{"media (BPB)", img[21], byte(0xf8)},
		{"media (FAT[0])", f.fat1[0], byte(0xf8)},
		{"boot signature", img[38], byte(0x29)},
		{"BPB label", string(img[43:54]), "CIDATA     "},
		{"fs type", string(img[54:62]), "FAT12   "},
		{"0x55AA", [2]byte(img[510:512]), [2]byte{0x55, 0xaa}},
		{"FATs identical", bytes.Equal(f.fat1, f.fat2), true},
		{"label entry name", string(f.root[:11]), "CIDATA     "},
		{"label entry attr", f.root[11], byte(0x08)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	// The first file in name order is meta-data: one LFN entry (9 chars),
	// then its 8.3 entry, whose data starts at cluster 2.
	lfn, short := f.root[32:64], f.root[64:96]
	if lfn[0] != 0x41 || lfn[11] != 0x0f || lfn[13] != lfnChecksum(string(short[:11])) {
		t.Errorf("LFN entry % x does not announce %q with its checksum", lfn[:14], short[:11])
	}
	if string(short[:11]) != "META-D~1   " || le.Uint16(short[26:]) != 2 {
		t.Errorf("first short entry %q at cluster %d, want META-D~1 at 2", short[:11], le.Uint16(short[26:]))
	}
	if !bytes.HasPrefix(img[f.dataStart:], seedEntries()[2].Data) {
		t.Error("cluster 2 does not hold meta-data")
	}
	// Timestamps: 2024-05-06 07:08:09 is date (44<<9|5<<5|6), time
	// (7<<11|8<<5|4) plus 100 x 10 ms for the odd second.
	wantDate, wantTime := uint16(44<<9|5<<5|6), uint16(7<<11|8<<5|4)
	if d, tm := le.Uint16(short[24:]), le.Uint16(short[22:]); d != wantDate || tm != wantTime || short[13] != 100 {
		t.Errorf("write date/time %#x/%#x tenths %d, want %#x/%#x 100", d, tm, short[13], wantDate, wantTime)
	}
}

func TestFATSerial(t *testing.T) {
	serial := func(opts Options, entries []Entry) string {
		return fmt.Sprintf("% x", parseFAT(t, write(t, opts, entries)).serial)
	}
	opts := Options{Format: VFAT, ModTime: testTime}
	a := serial(opts, seedEntries())
	if a == "00 00 00 00" {
		t.Error("serial is zero")
	}
	if b := serial(opts, seedEntries()); a != b {
		t.Errorf("serial not deterministic: %s vs %s", a, b)
	}
	other := seedEntries()
	other[1].Data = []byte("version: 2\n")
	if b := serial(opts, other); a == b {
		t.Error("serial does not depend on the content")
	}
	opts.Label = "OTHER"
	if b := serial(opts, seedEntries()); a == b {
		t.Error("serial does not depend on the label")
	}
}

// TestFATGeometry: the FAT type and size must follow the data, and the
// cluster chains must be right when files span many clusters.
func TestFATGeometry(t *testing.T) {
	cases := []struct {
		size    int
		fatType string
		spc     byte
	}{
		{1 << 10, "FAT12   ", 1},
		{1 << 20, "FAT12   ", 1},      // 2048 clusters of 512 bytes
		{3 << 20, "FAT16   ", 1},      // 6144 clusters: past FAT12's 4084
		{MaxTotalSize, "FAT16   ", 4}, // 2 KiB clusters keep FAT16 < 65525
	}
	for _, c := range cases {
		entries := []Entry{{Name: "big", Data: pattern(c.size-100, 9)}, {Name: "small", Data: pattern(100, 8)}}
		img := write(t, Options{Format: VFAT, ModTime: testTime}, entries)
		f := parseFAT(t, img)
		if got := string(img[54:62]); got != c.fatType || img[13] != c.spc {
			t.Errorf("%d bytes: %q with %d sectors/cluster, want %q with %d", c.size, got, img[13], c.fatType, c.spc)
		}
		if len(img)%(1<<20) != 0 || f.total*512 != len(img) {
			t.Errorf("%d bytes: image of %d bytes, BPB says %d sectors; want whole MiB", c.size, len(img), f.total)
		}
		clusters := (f.total - f.dataStart/512) / f.spc
		if (clusters < 4085) != (c.fatType == "FAT12   ") {
			t.Errorf("%d bytes: %d clusters contradict %q", c.size, clusters, c.fatType)
		}
		if _, got := read(t, img); diffEntries(got, entries) != "" {
			t.Errorf("%d bytes: %s", c.size, diffEntries(got, entries))
		}
	}
}

// TestFATTimeClamp: FAT cannot store dates before 1980, so earlier
// ModTimes (SOURCE_DATE_EPOCH=0 is common) become 1980-01-01.
func TestFATTimeClamp(t *testing.T) {
	img := write(t, Options{Format: VFAT, ModTime: time.Unix(0, 0)}, seedEntries())
	root := parseFAT(t, img).root
	if d := binary.LittleEndian.Uint16(root[32*2+24:]); d != 0<<9|1<<5|1 {
		t.Errorf("date %#x, want 1980-01-01 (%#x)", d, 1<<5|1)
	}
}
