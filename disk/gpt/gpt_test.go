package gpt

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// disk is an in-memory disk: an io.ReaderAt for Read and, with the
// methods of an open file, the backend.WritableFile go-diskfs writes to.
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
	if off < 0 || off+int64(len(p)) > int64(len(d)) {
		return 0, errors.New("write past the end")
	}
	return copy(d[off:], p), nil
}

func (d disk) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekEnd {
		return 0, errors.New("disk: only seeks to the end")
	}
	return int64(len(d)) + off, nil
}

func (d disk) Stat() (fs.FileInfo, error) { return nil, errors.New("disk: no Stat") }
func (d disk) Read([]byte) (int, error)   { return 0, errors.New("disk: no sequential reads") }
func (d disk) Close() error               { return nil }

// write writes tab on d, a disk of size bytes, with go-diskfs.
func write(t testing.TB, d disk, size int64, tab *Table) {
	t.Helper()
	if err := tab.ToDiskfs().Write(d, size); err != nil {
		t.Fatal(err)
	}
}

const testDiskSize = 64 << 20

// testTable is the layout kiln uses: BIOS boot, ESP, root, the last
// partition up to the last usable LBA.
func testTable() *Table {
	return &Table{
		DiskGUID: DeriveGUID("test", "disk"),
		Partitions: []Partition{
			{Type: TypeBIOSBoot, GUID: DeriveGUID("bios"), Name: "bios", FirstLBA: 2048, LastLBA: 4095},
			{Type: TypeEFISystem, GUID: DeriveGUID("esp"), Name: "EFI system partition", FirstLBA: 4096, LastLBA: 4096 + 40959, Attributes: 1},
			{Type: TypeLinuxRootX86_64, GUID: DeriveGUID("root"), Name: "root-fs é", FirstLBA: 2048 + 2048 + 40960, LastLBA: testDiskSize/512 - 34, Attributes: 1 << 59},
		},
	}
}

// TestRoundTrip reads what go-diskfs writes for kiln's layout.
func TestRoundTrip(t *testing.T) {
	d := make(disk, testDiskSize)
	tab := testTable()
	write(t, d, testDiskSize, tab)
	got, err := Read(d, testDiskSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Warnings) != 0 {
		t.Errorf("warnings: %q", got.Warnings)
	}
	if got.DiskGUID != tab.DiskGUID || !reflect.DeepEqual(got.Partitions, tab.Partitions) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, tab.Partitions)
	}
	// The primary and backup arrays are identical.
	last := int64(testDiskSize/512 - 1)
	if !bytes.Equal(d[2*512:34*512], d[(last-32)*512:last*512]) {
		t.Error("backup entry array differs from the primary")
	}
	if p := got.Partitions[2]; p.Offset() != (2048+2048+40960)*512 || p.Size() != int64(p.LastLBA-p.FirstLBA+1)*512 {
		t.Errorf("Offset/Size = %d/%d", p.Offset(), p.Size())
	}
}

// TestWriteKeepsBootCode: GRUB's boot.img (bytes 0..439) and the disk
// signature may be written before the table; go-diskfs must keep them and
// write a protective MBR that Read accepts.
func TestWriteKeepsBootCode(t *testing.T) {
	d := make(disk, testDiskSize)
	bootCode := bytes.Repeat([]byte{0xEB, 0x63, 0x90}, 200)[:446]
	copy(d, bootCode)
	write(t, d, testDiskSize, testTable())
	if !bytes.Equal(d[:446], bootCode) {
		t.Error("bytes 0..445 changed")
	}
	// One partition of type 0xEE from LBA 1 to the last LBA, 131071;
	// go-diskfs leaves the CHS fields zero.
	wantMBR := []byte{0, 0, 0, 0, 0xEE, 0, 0, 0, 1, 0, 0, 0, 0xFF, 0xFF, 0x01, 0x00}
	if !bytes.Equal(d[446:462], wantMBR) {
		t.Errorf("MBR 446..461 = % X\nwant            % X", d[446:462], wantMBR)
	}
	if !bytes.Equal(d[462:510], make([]byte, 48)) || d[510] != 0x55 || d[511] != 0xAA {
		t.Error("MBR tail wrong")
	}
	if got, err := Read(d, testDiskSize); err != nil || len(got.Warnings) != 0 {
		t.Errorf("Read: %v, warnings %q", err, got.Warnings)
	}
}

func TestReadFallsBackToBackup(t *testing.T) {
	base := make(disk, testDiskSize)
	write(t, base, testDiskSize, testTable())
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
			if !reflect.DeepEqual(got.Partitions, testTable().Partitions) {
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
	write(t, d, testDiskSize, testTable())
	got, err := Read(d, 2*testDiskSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "the disk grew") {
		t.Errorf("warnings %q", got.Warnings)
	}
	// Rewriting repairs it.
	write(t, d, 2*testDiskSize, got)
	if again, err := Read(d, 2*testDiskSize); err != nil || len(again.Warnings) != 0 {
		t.Errorf("after rewrite: %v, warnings %q", err, again.Warnings)
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
