package disk

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fill returns n bytes of a pattern in which sectors differ from each
// other (up to 256 sectors apart) and from other seeds.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + byte(i/sectorSize)*13 + seed
	}
	return b
}

// TestInstallBIOS installs a synthetic boot.img and core.img (patterns,
// not GRUB's) on a disk whose LBA 0 already holds a partition table.
func TestInstallBIOS(t *testing.T) {
	le := binary.LittleEndian
	for _, c := range []struct {
		name       string
		boot, core int // sizes in bytes
		sectors    int // of core.img, padded
		err        string
	}{
		{"one sector", 512, 512, 1, ""},
		{"partial last sector", 512, 3*512 + 100, 4, ""},
		{"fills the partition", 512, biosBootSize, 2048, ""},
		{"core too big", 512, biosBootSize + 1, 0, "disk: core.img is 1048577 bytes, want 1 to 1048576"},
		{"empty core", 512, 0, 0, "disk: core.img is 0 bytes"},
		{"short boot.img", 511, 512, 0, "disk: boot.img is 511 bytes, want 512"},
		{"long boot.img", 1024, 512, 0, "disk: boot.img is 1024 bytes, want 512"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "disk.raw"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(4 * mib); err != nil {
				t.Fatal(err)
			}
			lba0 := fill(sectorSize, 1) // old boot code, signature, table, 55 AA
			if _, err := f.WriteAt(lba0, 0); err != nil {
				t.Fatal(err)
			}
			bootImg, core := fill(c.boot, 2), fill(c.core, 3)
			err = installBIOS(f, f, bootImg, core)
			disk, rerr := os.ReadFile(f.Name())
			if rerr != nil {
				t.Fatal(rerr)
			}
			if c.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.err) {
					t.Errorf("error %v, want %q", err, c.err)
				}
				if !bytes.Equal(disk[:sectorSize], lba0) || !bytes.Equal(disk[sectorSize:], make([]byte, len(disk)-sectorSize)) {
					t.Error("the disk changed despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bootImg, fill(c.boot, 2)) || !bytes.Equal(core, fill(c.core, 3)) {
				t.Error("installBIOS changed its inputs")
			}

			// LBA 0: boot.img's first 440 bytes pointing at LBA 2048, the
			// rest as it was.
			mbr := disk[:sectorSize]
			if got := le.Uint64(mbr[0x5c:]); got != 2048 {
				t.Errorf("core LBA at 0x5c = %d, want 2048", got)
			}
			want := bytes.Clone(bootImg[:440])
			le.PutUint64(want[0x5c:], 2048)
			if !bytes.Equal(mbr[:440], want) {
				t.Error("MBR bytes 0..439 are not boot.img with the core LBA")
			}
			if !bytes.Equal(mbr[440:], lba0[440:]) {
				t.Errorf("MBR bytes 440..511 changed:\n% X\nwant\n% X", mbr[440:], lba0[440:])
			}

			// core.img at 1 MiB, its blocklist pointing at its other
			// sectors, zero padded, and nothing written past it.
			got := disk[biosBootStart : biosBootStart+c.sectors*sectorSize]
			if start, n, seg := le.Uint64(got[0x1f4:]), le.Uint16(got[0x1fc:]), le.Uint16(got[0x1fe:]); start != 2049 || int(n) != c.sectors-1 || seg != 0x820 {
				t.Errorf("blocklist: start %d, %d sectors, segment %#x; want 2049, %d, 0x820", start, n, seg, c.sectors-1)
			}
			wantCore := make([]byte, c.sectors*sectorSize)
			copy(wantCore, core)
			copy(wantCore[0x1f4:0x200], got[0x1f4:0x200])
			if !bytes.Equal(got, wantCore) {
				t.Error("core.img differs beyond its blocklist, or is not zero padded")
			}
			if !bytes.Equal(disk[sectorSize:biosBootStart], make([]byte, biosBootStart-sectorSize)) ||
				!bytes.Equal(disk[biosBootStart+len(got):], make([]byte, len(disk)-biosBootStart-len(got))) {
				t.Error("installBIOS wrote outside LBA 0 and core.img's sectors")
			}
		})
	}
}
