package iso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func readErr(t *testing.T, img []byte, want string) {
	t.Helper()
	_, entries, err := Read(bytes.NewReader(img), int64(len(img)))
	if err == nil {
		t.Fatalf("Read succeeded with %q, want error containing %q", names(entries), want)
	}
	if !strings.HasPrefix(err.Error(), "iso: ") || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want it to contain %q", err, want)
	}
}

func TestReadRejects(t *testing.T) {
	iso := write(t, Options{ModTime: testTime}, seedEntries())
	fat := write(t, Options{Format: VFAT, ModTime: testTime}, seedEntries())
	// Offsets into the planned images (see TestISOStructure/TestFATStructure).
	rootLBA := int(binary.LittleEndian.Uint32(iso[16*sectorSize+158:]))
	firstFile := rootLBA*sectorSize + 136 + 102 // after "." (136) and ".." (102)
	if got := string(iso[firstFile+33 : firstFile+44]); got != "META_DAT.;1" {
		t.Fatalf("test assumption: first record is %q", got)
	}
	mutate := func(img []byte, f func(b []byte)) []byte {
		b := bytes.Clone(img)
		f(b)
		return b
	}
	cases := []struct {
		name string
		img  []byte
		want string
	}{
		{"empty", nil, "not an ISO9660 or FAT image"},
		{"zeros", make([]byte, 64<<10), "not an ISO9660 or FAT image"},
		{"truncated ISO", iso[:len(iso)-sectorSize], `data of "user-data"`},
		{"no terminator, no PVD", mutate(iso[:18*sectorSize], func(b []byte) { b[16*sectorSize] = 2 }), "volume descriptor"},
		{"block size", mutate(iso, func(b []byte) { b[16*sectorSize+129] = 0 }), "logical block size 0 not supported"},
		{"huge root", mutate(iso, func(b []byte) { put733(b[16*sectorSize+166:], 1<<30) }), "root directory of 1073741824 bytes"},
		{"bad record", mutate(iso, func(b []byte) { b[firstFile] = 20 }), "malformed directory record"},
		{"subdirectory", mutate(iso, func(b []byte) { b[firstFile+25] = flagDir }), `iso: entry "meta-data" is a directory`},
		{"extent outside", mutate(iso, func(b []byte) { put733(b[firstFile+2:], 1<<24) }), `data of "meta-data"`},
		{"huge file", mutate(iso, func(b []byte) { put733(b[firstFile+10:], 1<<31) }), `iso: entry "meta-data": total data exceeds`},
		{"bad NM", mutate(iso, func(b []byte) {
			i := bytes.Index(b, []byte("NM\x0e\x01\x00meta-data"))
			copy(b[i+5:], "meta/data")
		}), `iso: entry "meta/data": name contains '/'`},
		{"truncated FAT", fat[:20000], "root directory"},
		{"FAT32", mutate(fat, func(b []byte) { b[22], b[23] = 0, 0 }), "FAT32 not supported"},
		{"sector size", mutate(fat, func(b []byte) { b[11] = 1 }), "bytes per sector not supported"},
		{"spc", mutate(fat, func(b []byte) { b[13] = 3 }), "bad sectors per cluster 3"},
		{"subdirectory", mutate(fat, func(b []byte) { b[512+2*6*512+32*2+11] = 0x10 }), `iso: entry "meta-data" is a directory`},
		{"broken chain", mutate(fat, func(b []byte) {
			// Give meta-data 2000 bytes (4 clusters) while its chain ends
			// after one.
			binary.LittleEndian.PutUint32(b[512+2*6*512+32*2+28:], 2000)
		}), `iso: entry "meta-data": broken cluster chain`},
		{"looping chain", mutate(fat, func(b []byte) {
			b[512+3], b[512+4] = 0x02, b[512+4]&0xf0 // FAT12 entry 2 -> 2
			binary.LittleEndian.PutUint32(b[512+2*6*512+32*2+28:], 2000)
		}), `iso: entry "meta-data": cluster 2 used twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { readErr(t, c.img, c.want) })
	}
}

func TestReadArguments(t *testing.T) {
	if _, _, err := Read(nil, 10); err == nil || !strings.HasPrefix(err.Error(), "iso: ") {
		t.Errorf("nil reader: %v", err)
	}
	if _, _, err := Read(bytes.NewReader(nil), -1); err == nil || !strings.HasPrefix(err.Error(), "iso: ") {
		t.Errorf("negative size: %v", err)
	}
	// A size larger than the data must fail cleanly, not allocate or panic.
	img := write(t, Options{}, seedEntries())
	if _, _, err := Read(bytes.NewReader(img[:40000]), int64(len(img))); err == nil || !strings.HasPrefix(err.Error(), "iso: ") {
		t.Errorf("short reader: %v", err)
	}
	if _, _, err := Read(errReader{}, 1<<20); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failing reader: %v", err)
	}
}

type errReader struct{}

func (errReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("boom") }

// TestReadPrefersLongNames: a FAT entry whose LFN checksum no longer
// matches must fall back to its 8.3 name, as Linux does.
func TestReadLFNChecksumMismatch(t *testing.T) {
	img := write(t, Options{Format: VFAT, ModTime: testTime}, []Entry{{Name: "user-data", Data: []byte("x")}})
	root := 512 + 2*6*512
	img[root+32+13] ^= 0xff // checksum byte of the only LFN entry
	_, got := read(t, img)
	if len(got) != 1 || got[0].Name != "USER-D~1" {
		t.Errorf("names %q, want the short name USER-D~1", names(got))
	}
}

// TestReadFallbackTrees: without Rock Ridge Read must use Joliet names,
// and without Joliet too the primary identifiers.
func TestReadFallbackTrees(t *testing.T) {
	img := write(t, Options{ModTime: testTime}, seedEntries())
	sp := bytes.Index(img, []byte{'S', 'P', 7, 1, 0xbe, 0xef})
	if sp < 0 {
		t.Fatal("no SP entry")
	}
	img[sp] = 'X' // Rock Ridge gone
	if _, got := read(t, img); diffEntries(got, sortedEntries(seedEntries())) != "" {
		t.Errorf("Joliet fallback: %s", diffEntries(got, sortedEntries(seedEntries())))
	}
	img[17*sectorSize+88] = 0 // Joliet escape gone
	_, got := read(t, img)
	if want := []string{"META_DAT", "NETWORK_", "USER_DAT"}; strings.Join(names(got), " ") != strings.Join(want, " ") {
		t.Errorf("primary fallback names %q, want %q", names(got), want)
	}
}

// TestRockRidgeNameContinuation: NM entries split with the CONTINUE flag
// and spread over a CE continuation area, as other writers may produce.
func TestRockRidgeNameContinuation(t *testing.T) {
	area := concat([]byte{'N', 'M', 9, 1, 0}, []byte("data"), []byte{'S', 'T', 4, 1}, rripNM("ignored after ST"))
	img := make([]byte, 3*sectorSize)
	copy(img[2*sectorSize+100:], area)
	su := concat(
		[]byte{'N', 'M', 5, 1, 0x02},                           // CURRENT ("."): carries no name
		[]byte{'N', 'M', 10, 1, 0x01, 'u', 's', 'e', 'r', '-'}, // CONTINUE
		suspCE(2, 100, uint32(len(area))),
		rripPX(modeFile, 1),
	)
	m := &image{r: bytes.NewReader(img), size: int64(len(img))}
	name, err := rockRidgeName(m, su)
	if err != nil || name != "user-data" {
		t.Errorf("got %q, %v; want user-data", name, err)
	}
	// A CE pointing at itself must not loop forever.
	loop := suspCE(2, 0, 28)
	copy(img[2*sectorSize:], loop)
	if _, err := rockRidgeName(m, loop); err == nil || !strings.Contains(err.Error(), "iso: more than 8 chained SUSP continuation areas") {
		t.Errorf("self-referencing CE: %v", err)
	}
}
