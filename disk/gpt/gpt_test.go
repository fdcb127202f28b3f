package gpt

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// disk is an in-memory io.ReaderAt/io.WriterAt.
type disk []byte

func (d disk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(d)) {
		return 0, errors.New("read past the end")
	}
	n := copy(p, d[off:])
	if n < len(p) {
		return n, errors.New("short read")
	}
	return n, nil
}

func (d disk) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(d)) {
		return 0, errors.New("write past the end")
	}
	return copy(d[off:], p), nil
}

const testDiskSize = 64 << 20

// testTable is the layout kiln uses: BIOS boot, ESP, root, in a scrambled
// order to check that Write sorts.
func testTable() *Table {
	return &Table{
		DiskGUID: DeriveGUID("test", "disk"),
		Partitions: []Partition{
			{Type: TypeLinuxRootX86_64, GUID: DeriveGUID("root"), Name: "root-fs é", FirstLBA: 2048 + 2048 + 40960, LastLBA: testDiskSize/512 - 34, Attributes: 1 << 59},
			{Type: TypeBIOSBoot, GUID: DeriveGUID("bios"), Name: "bios", FirstLBA: 2048, LastLBA: 4095},
			{Type: TypeEFISystem, GUID: DeriveGUID("esp"), Name: "EFI system partition", FirstLBA: 4096, LastLBA: 4096 + 40959, Attributes: 1},
		},
	}
}

func sortedParts(t *Table) []Partition {
	return []Partition{t.Partitions[1], t.Partitions[2], t.Partitions[0]}
}

func TestRoundTrip(t *testing.T) {
	d := make(disk, testDiskSize)
	tab := testTable()
	if err := tab.Write(d, testDiskSize); err != nil {
		t.Fatal(err)
	}
	got, err := Read(d, testDiskSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Warnings) != 0 {
		t.Errorf("warnings: %q", got.Warnings)
	}
	if got.DiskGUID != tab.DiskGUID || !reflect.DeepEqual(got.Partitions, sortedParts(tab)) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, sortedParts(tab))
	}
	// The primary and backup arrays are identical, header fields mirrored.
	last := int64(testDiskSize/512 - 1)
	if !bytes.Equal(d[2*512:34*512], d[(last-32)*512:last*512]) {
		t.Error("backup entry array differs from the primary")
	}
	if p := got.Partitions[2]; p.Offset() != (2048+2048+40960)*512 || p.Size() != int64(p.LastLBA-p.FirstLBA+1)*512 {
		t.Errorf("Offset/Size = %d/%d", p.Offset(), p.Size())
	}
	if tab.FirstUsable() != 34 || tab.LastUsable(testDiskSize) != uint64(last-33) {
		t.Errorf("usable %d..%d", tab.FirstUsable(), tab.LastUsable(testDiskSize))
	}
}

func TestWriteKeepsBootCode(t *testing.T) {
	d := make(disk, testDiskSize)
	bootCode := bytes.Repeat([]byte{0xEB, 0x63, 0x90}, 200)[:440]
	copy(d, bootCode)
	if err := testTable().Write(d, testDiskSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d[:440], bootCode) {
		t.Error("bytes 0..439 changed")
	}
	// Same bytes as `sgdisk -o` on a 64 MiB disk: the end CHS of LBA
	// 131071 is head 40, sector 32, cylinder 8.
	wantMBR := []byte{0, 0, 0, 0, 0, 0, // disk signature, reserved
		0, 0, 2, 0, 0xEE, 0x28, 0x20, 0x08, 1, 0, 0, 0, 0xFF, 0xFF, 0x01, 0x00} // 131071 sectors
	if !bytes.Equal(d[440:462], wantMBR) {
		t.Errorf("MBR 440..461 = % X\nwant            % X", d[440:462], wantMBR)
	}
	if !bytes.Equal(d[462:510], make([]byte, 48)) || d[510] != 0x55 || d[511] != 0xAA {
		t.Error("MBR tail wrong")
	}
}

func TestCHS(t *testing.T) {
	for _, c := range []struct {
		lba  uint64
		want []byte
	}{
		{1, []byte{0, 2, 0}},
		{16064, []byte{254, 63, 0}}, // last sector of cylinder 0
		{16065, []byte{0, 1, 1}},    // cylinder 1
		{1023*16065 + 5, []byte{0, 6 | 3<<6, 0xFF}},
		{1024 * 16065, []byte{0xFF, 0xFF, 0xFF}},
	} {
		if got := chs(c.lba); !bytes.Equal(got, c.want) {
			t.Errorf("chs(%d) = % X, want % X", c.lba, got, c.want)
		}
	}
}

func TestReadFallsBackToBackup(t *testing.T) {
	base := make(disk, testDiskSize)
	if err := testTable().Write(base, testDiskSize); err != nil {
		t.Fatal(err)
	}
	last := int64(testDiskSize/512 - 1)
	for _, c := range []struct {
		name    string
		corrupt func(d disk)
		warning string
	}{
		{"primary header CRC", func(d disk) { d[512+60] ^= 0xFF }, "primary GPT damaged (header at LBA 1: header CRC"},
		{"primary signature", func(d disk) { copy(d[512:], "NOT PART") }, "primary GPT damaged (header at LBA 1: no \"EFI PART\""},
		{"primary entries", func(d disk) { d[2*512+40] ^= 1 }, "primary GPT damaged (entry array at LBA 2: CRC"},
		{"backup header", func(d disk) { d[last*512+100] = 0; d[last*512] = 'X' }, "backup GPT damaged"},
		{"backup entries", func(d disk) { d[(last-32)*512] ^= 1 }, "backup GPT damaged"},
		{"no MBR", func(d disk) { d[510] = 0 }, "no MBR boot signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := disk(bytes.Clone(base))
			c.corrupt(d)
			got, err := Read(d, testDiskSize)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Partitions, sortedParts(testTable())) {
				t.Errorf("partitions differ: %+v", got.Partitions)
			}
			if len(got.Warnings) != 1 || !strings.HasPrefix(got.Warnings[0], c.warning) {
				t.Errorf("warnings %q, want one starting %q", got.Warnings, c.warning)
			}
		})
	}
	d := disk(bytes.Clone(base))
	d[512] ^= 1
	d[last*512] ^= 1
	if _, err := Read(d, testDiskSize); err == nil || !strings.HasPrefix(err.Error(), "gpt: no valid GPT") {
		t.Errorf("both damaged: error %v", err)
	}
}

// A disk that grew (qemu-img resize) keeps its backup at the old end;
// Read finds it through the primary and says so.
func TestReadGrownDisk(t *testing.T) {
	d := make(disk, 2*testDiskSize)
	if err := testTable().Write(d, testDiskSize); err != nil {
		t.Fatal(err)
	}
	got, err := Read(d, 2*testDiskSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "the disk grew") {
		t.Errorf("warnings %q", got.Warnings)
	}
	// Rewriting repairs it.
	if err := got.Write(d, 2*testDiskSize); err != nil {
		t.Fatal(err)
	}
	if again, err := Read(d, 2*testDiskSize); err != nil || len(again.Warnings) != 0 {
		t.Errorf("after rewrite: %v, warnings %q", err, again.Warnings)
	}
}

func TestWriteRefuses(t *testing.T) {
	last := uint64(testDiskSize/512 - 1)
	p := func(name string, first, lastLBA uint64) Partition {
		return Partition{Type: TypeLinuxFilesystem, GUID: DeriveGUID(name), Name: name, FirstLBA: first, LastLBA: lastLBA}
	}
	for _, c := range []struct {
		name  string
		tab   Table
		size  int64
		wants []string
	}{
		{"overlap", Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p("a", 2048, 4096), p("b", 4096, 8191)}}, testDiskSize,
			[]string{`gpt: partitions "a" (2048..4096) and "b" (4096..8191) overlap`}},
		{"before first usable", Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p("a", 33, 100)}}, testDiskSize,
			[]string{"outside the usable area 34.."}},
		{"into backup array", Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p("a", 2048, last-32)}}, testDiskSize,
			[]string{"outside the usable area"}},
		{"past the disk", Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p("a", 2048, last+100)}}, testDiskSize,
			[]string{"outside the usable area"}},
		{"reversed", Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p("a", 5000, 4000)}}, testDiskSize,
			[]string{"first LBA 5000 after last LBA 4000"}},
		{"long name", Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p(strings.Repeat("n", 37), 2048, 4095)}}, testDiskSize,
			[]string{"name is 37 UTF-16 units, at most 36"}},
		{"zero GUIDs and type", Table{Partitions: []Partition{{Name: "z", FirstLBA: 2048, LastLBA: 4095}}}, testDiskSize,
			[]string{"disk GUID is zero", "type GUID is zero", "partition 1 (\"z\"): GUID is zero"}},
		{"duplicate GUID", Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p("a", 2048, 4095), {Type: TypeLinuxFilesystem, GUID: DeriveGUID("a"), FirstLBA: 5000, LastLBA: 6000}}}, testDiskSize,
			[]string{"already used by partition 1"}},
		{"odd disk size", Table{DiskGUID: DeriveGUID("d")}, testDiskSize + 100, []string{"not a multiple of 512"}},
		{"tiny disk", Table{DiskGUID: DeriveGUID("d")}, 20 * 512, []string{"too small"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := make(disk, c.size+512)
			err := c.tab.Write(d, c.size)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "gpt: ") {
					t.Errorf("error line %q lacks the prefix", line)
				}
			}
			if !bytes.Equal(d, make(disk, len(d))) {
				t.Error("Write wrote despite the error")
			}
		})
	}
	// Surrogate pairs count twice: 18 emoji are 36 units and fit, 19 not.
	ok := Table{DiskGUID: DeriveGUID("d"), Partitions: []Partition{p(strings.Repeat("🔥", 18), 2048, 4095)}}
	if err := ok.Write(make(disk, testDiskSize), testDiskSize); err != nil {
		t.Errorf("36-unit name refused: %v", err)
	}
	ok.Partitions[0].Name += "🔥"
	if err := ok.Write(make(disk, testDiskSize), testDiskSize); err == nil {
		t.Error("38-unit name accepted")
	}
}

func TestReadErrorsArePrefixed(t *testing.T) {
	for _, size := range []int64{0, 512, 4096, 1 << 20} {
		_, err := Read(make(disk, size), size)
		if err == nil || !strings.HasPrefix(err.Error(), "gpt: ") {
			t.Errorf("Read(%d zero bytes) error = %v", size, err)
		}
	}
}
