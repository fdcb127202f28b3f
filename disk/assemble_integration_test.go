package disk

// Integration tests of Assemble: the disk it makes is checked by the tools
// a booting system and an administrator use (sgdisk, fsck.fat, mtools).
// They need grub-mkimage with GRUB's i386-pc and x86_64-efi modules and
// mkfs.ext4; nothing is booted.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/disk/gpt"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/testutil"
)

// tool runs an external tool and returns its combined output and error.
func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testutil.NeedTool(t, name), args...).CombinedOutput()
	return string(out), err
}

// assembleTestDisk assembles a MinSize disk from a tree of a few files.
func assembleTestDisk(t *testing.T, seed string) (string, *Result) {
	t.Helper()
	testutil.Integration(t)
	for _, name := range []string{"grub-mkimage", "mkfs.ext4"} {
		testutil.NeedTool(t, name)
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for name, data := range map[string]string{
		"etc/os-release": "PRETTY_NAME=\"kiln test\"\n",
		"etc/hostname":   "kiln-test\n",
		"vmlinuz":        "not a kernel\n",
	} {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "disk.raw")
	res, err := Assemble(context.Background(), Spec{Path: path, Size: MinSize, RootTree: tree, Seed: seed,
		Epoch: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}, progress.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return path, res
}

// extract copies partition n (1-based) of the disk at path into a file.
func extract(t *testing.T, path string, p gpt.Partition) string {
	t.Helper()
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "part.img")
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, io.NewSectionReader(src, p.Offset(), p.Size())); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAssembleESP checks the EFI system partition the way a booting Linux
// does (fsck.fat at boot, then the vfat driver): the filesystem must be
// clean, and GRUB must sit at the removable-media path every UEFI firmware
// tries.
func TestAssembleESP(t *testing.T) {
	path, res := assembleTestDisk(t, "esp")
	esp := extract(t, path, res.Partitions[PartESP-1])
	if out, err := tool(t, "fsck.fat", "-n", "-v", esp); err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, out)
	}
	out, err := tool(t, "mdir", "-i", esp, "-b", "::/EFI/BOOT")
	if err != nil || strings.TrimSpace(out) != "::/EFI/BOOT/BOOTX64.EFI" {
		t.Errorf("mdir -b ::/EFI/BOOT: %v\n%s", err, out)
	}
	// Every entry carries the epoch, not the time of the build.
	out, err = tool(t, "mdir", "-i", esp, "-/", "::")
	if n := strings.Count(out, "<DIR>"); err != nil || n != 6 || strings.Count(out, "2024-05-06   7:08") != n+1 {
		t.Errorf("mdir -/: %v: want 6 directory entries and a file, all 2024-05-06 7:08\n%s", err, out)
	}
	serial := espSerial("esp")
	want := map[string]string{"TYPE": "vfat", "VERSION": "FAT32", "LABEL": "ESP", "UUID": fmt.Sprintf("%04X-%04X", serial>>16, serial&0xFFFF)}
	out, err = tool(t, "blkid", "-p", "-o", "export", esp)
	for k, v := range want {
		if !strings.Contains(out, "\n"+k+"="+v+"\n") {
			t.Errorf("blkid -p: %v: want %s=%s\n%s", err, k, v, out)
		}
	}
	loader := filepath.Join(t.TempDir(), "BOOTX64.EFI")
	if out, err := tool(t, "mcopy", "-i", esp, "::/EFI/BOOT/BOOTX64.EFI", loader); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(loader); err != nil || !bytes.HasPrefix(b, []byte("MZ")) {
		t.Errorf("BOOTX64.EFI is not a PE image: %v, % X", err, b[:min(len(b), 16)])
	}
}

// TestAssembleGPT has sgdisk verify the whole assembled disk.
func TestAssembleGPT(t *testing.T) {
	path, _ := assembleTestDisk(t, "gpt")
	out, err := tool(t, "sgdisk", "-v", path)
	if err != nil || !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
}

// TestAssembleReproducible assembles the same tree twice, from two copies
// made more than FAT's two-second timestamp resolution apart: the disks
// must be the same bytes, whatever the clock, the trees' change and access
// times, or the files' times after the epoch.
func TestAssembleReproducible(t *testing.T) {
	t.Setenv("TZ", "UTC") // for the dates dumpe2fs prints
	first, res := assembleTestDisk(t, "same")
	time.Sleep(2100 * time.Millisecond)
	second, _ := assembleTestDisk(t, "same")
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if i := firstDiff(a, b); i >= 0 {
		part := "outside the partitions"
		for n, p := range res.Partitions {
			if int64(i) >= p.Offset() && int64(i) < p.Offset()+p.Size() {
				part = fmt.Sprintf("partition %d (%s), byte %d", n+1, p.Name, int64(i)-p.Offset())
			}
		}
		t.Errorf("the disks differ from byte %d: %s", i, part)
	}
	// Every time of every inode is pinned: what the tree's files had after
	// the epoch, and what mkfs took from the clock, is the epoch.
	root := extract(t, first, res.Partitions[PartRoot-1])
	for _, name := range []string{"/", "/etc", "/etc/hostname", "/boot/grub/grub.cfg"} {
		out, err := tool(t, "debugfs", "-R", "stat "+name, root)
		if err != nil {
			t.Fatalf("debugfs stat %s: %v\n%s", name, err, out)
		}
		for _, field := range []string{"ctime", "atime", "mtime", "crtime"} {
			if !regexp.MustCompile(`(?m)^ *` + field + `: 0x663881d9:00000000 `).MatchString(out) {
				t.Errorf("%s: %s is not the epoch (0x663881d9, 2024-05-06 07:08:09):\n%s", name, field, out)
			}
		}
	}
	out, err := tool(t, "dumpe2fs", "-h", root)
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	for _, field := range []string{"Filesystem created", "Last write time", "Last checked"} {
		if !regexp.MustCompile(`(?m)^` + field + `: +Mon May  6 07:08:09 2024$`).MatchString(out) {
			t.Errorf("superblock %q is not the epoch:\n%s", field, out)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestAssembleTable reads the partition table of an assembled disk back
// with sfdisk and with gpt.Read: every GUID derives from the seed, and
// LBA 0 holds both GRUB's boot code and the protective MBR partition.
func TestAssembleTable(t *testing.T) {
	const seed = "table"
	path, res := assembleTestDisk(t, seed)
	const last = MinSize/sectorSize - 1 // 661503
	want := []gpt.Partition{
		{Type: gpt.TypeBIOSBoot, GUID: gpt.DeriveGUID(seed, "bios-boot"), Name: "bios-boot", FirstLBA: 2048, LastLBA: 4095},
		{Type: gpt.TypeEFISystem, GUID: gpt.DeriveGUID(seed, "esp"), Name: "esp", FirstLBA: 4096, LastLBA: 137215},
		// Root ends on a 4 KiB boundary before the backup GPT (33 sectors).
		{Type: gpt.TypeLinuxRootX86_64, GUID: gpt.DeriveGUID(seed, "root"), Name: "root", FirstLBA: 137216, LastLBA: 661463},
	}
	if !slices.Equal(res.Partitions, want) {
		t.Errorf("Result.Partitions:\n got %+v\nwant %+v", res.Partitions, want)
	}

	out, err := tool(t, "sfdisk", "--json", path)
	if err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	var dump struct {
		PartitionTable struct {
			Label, ID  string
			FirstLBA   uint64 `json:"firstlba"`
			LastLBA    uint64 `json:"lastlba"`
			Partitions []struct {
				Start, Size      uint64
				Type, UUID, Name string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &dump); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	pt := dump.PartitionTable
	if pt.Label != "gpt" || pt.ID != gpt.DeriveGUID(seed, "disk").String() || pt.FirstLBA != 34 || pt.LastLBA != last-33 {
		t.Errorf("sfdisk: label %s, id %s, usable LBAs %d..%d", pt.Label, pt.ID, pt.FirstLBA, pt.LastLBA)
	}
	var got []gpt.Partition
	for _, p := range pt.Partitions {
		got = append(got, gpt.Partition{Type: gpt.MustParseGUID(p.Type), GUID: gpt.MustParseGUID(p.UUID), Name: p.Name,
			FirstLBA: p.Start, LastLBA: p.Start + p.Size - 1})
	}
	if !slices.Equal(got, want) {
		t.Errorf("sfdisk:\n got %+v\nwant %+v", got, want)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, MinSize)
	if err != nil || len(tab.Warnings) != 0 || tab.DiskGUID != gpt.DeriveGUID(seed, "disk") || !slices.Equal(tab.Partitions, want) {
		t.Errorf("gpt.Read: %v, warnings %q\n got %+v\nwant %+v", err, tab.Warnings, tab, want)
	}

	// LBA 0: GRUB's boot.img pointing at core.img in the BIOS boot
	// partition, then the protective MBR: no disk signature, one 0xEE
	// partition from LBA 1 to the end of the disk, 55 AA.
	mbr := make([]byte, sectorSize)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	bootImg, err := os.ReadFile(filepath.Join(GRUBDir, "i386-pc", "boot.img"))
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(bootImg[0x5c:], 2048)
	if i := firstDiff(mbr[:440], bootImg[:440]); i >= 0 {
		t.Errorf("MBR byte %d differs from GRUB's boot.img with the core.img LBA", i)
	}
	le := binary.LittleEndian
	entry := mbr[446:462]
	if !bytes.Equal(mbr[440:446], make([]byte, 6)) || entry[0] != 0 || entry[4] != 0xEE ||
		le.Uint32(entry[8:]) != 1 || le.Uint32(entry[12:]) != last ||
		!bytes.Equal(mbr[462:510], make([]byte, 48)) || mbr[510] != 0x55 || mbr[511] != 0xAA {
		t.Errorf("protective MBR, bytes 440..511:\n% X", mbr[440:])
	}
	core := make([]byte, sectorSize)
	if _, err := f.ReadAt(core, 2048*sectorSize); err != nil {
		t.Fatal(err)
	}
	if start, n, seg := le.Uint64(core[0x1f4:]), le.Uint16(core[0x1fc:]), le.Uint16(core[0x1fe:]); start != 2049 || n == 0 || seg != 0x820 {
		t.Errorf("core.img blocklist: start %d, %d sectors, segment %#x", start, n, seg)
	}
}
