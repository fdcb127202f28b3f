package gpt

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/testutil"
)

func run(t *testing.T, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testutil.NeedTool(t, tool), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", tool, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// sparseDisk creates a sparse file of size bytes.
func sparseDisk(t *testing.T, size int64) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path, f
}

// sgdiskInfo parses `sgdisk -i n` into a Partition.
func sgdiskInfo(t *testing.T, path string, n int) Partition {
	t.Helper()
	out := run(t, "sgdisk", "-i", strconv.Itoa(n), path)
	field := func(re string) string {
		m := regexp.MustCompile(`(?m)^` + re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("sgdisk -i %d: no %q in\n%s", n, re, out)
		}
		return m[1]
	}
	num := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	attrs, err := strconv.ParseUint(field(`Attribute flags: ([0-9A-F]{16})`), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return Partition{
		Type:       MustParseGUID(field(`Partition GUID code: (\S+)`)),
		GUID:       MustParseGUID(field(`Partition unique GUID: (\S+)`)),
		FirstLBA:   num(field(`First sector: (\d+)`)),
		LastLBA:    num(field(`Last sector: (\d+)`)),
		Attributes: attrs,
		Name:       field(`Partition name: '(.*)'`),
	}
}

// sfdiskDump parses `sfdisk --dump`: the label-id and one line per partition.
func sfdiskDump(t *testing.T, path string) (GUID, []Partition) {
	t.Helper()
	out := run(t, "sfdisk", "--dump", path)
	var id GUID
	var parts []Partition
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "label-id: "); ok {
			id = MustParseGUID(v)
		}
		_, spec, ok := strings.Cut(line, " : ")
		if !ok {
			continue
		}
		var p Partition
		var start, size uint64
		for _, kv := range regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|[^,]+)`).FindAllStringSubmatch(spec, -1) {
			v := strings.TrimSpace(kv[2])
			switch kv[1] {
			case "start":
				start, _ = strconv.ParseUint(v, 10, 64)
			case "size":
				size, _ = strconv.ParseUint(v, 10, 64)
			case "type":
				p.Type = MustParseGUID(v)
			case "uuid":
				p.GUID = MustParseGUID(v)
			case "name":
				p.Name = unescapeSfdisk(t, v)
			}
		}
		p.FirstLBA, p.LastLBA = start, start+size-1
		parts = append(parts, p)
	}
	return id, parts
}

// unescapeSfdisk undoes sfdisk's quoting of names ("root \xc3\xa9").
func unescapeSfdisk(t *testing.T, s string) string {
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("unquoting %s: %v", s, err)
	}
	return u
}

func withoutAttrs(ps []Partition) []Partition {
	out := make([]Partition, len(ps))
	for i, p := range ps {
		p.Attributes = 0
		out[i] = p
	}
	return out
}

// TestToolsAcceptWrittenTable has sgdisk, sfdisk and fdisk read what
// go-diskfs wrote from ToDiskfs and report the same disk GUID, partitions,
// types, names and GUIDs.
func TestToolsAcceptWrittenTable(t *testing.T) {
	testutil.Integration(t)
	path, f := sparseDisk(t, testDiskSize)
	tab := testTable()
	if err := tab.ToDiskfs().Write(f, testDiskSize); err != nil {
		t.Fatal(err)
	}
	want := tab.Partitions

	if out := run(t, "sgdisk", "-v", path); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk -v:\n%s", out)
	}
	out := run(t, "sgdisk", "-p", path)
	if !strings.Contains(out, "Disk identifier (GUID): "+tab.DiskGUID.String()) {
		t.Errorf("sgdisk -p lacks the disk GUID %s:\n%s", tab.DiskGUID, out)
	}
	for i, code := range []string{"EF02", "EF00", "8304"} {
		p := want[i]
		row := fmt.Sprintf(`(?m)^\s+%d\s+%d\s+%d\s+.*%s\s+%s$`, i+1, p.FirstLBA, p.LastLBA, code, regexp.QuoteMeta(p.Name))
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("sgdisk -p has no row %q:\n%s", row, out)
		}
		if got := sgdiskInfo(t, path, i+1); got != p {
			t.Errorf("sgdisk -i %d:\n got %+v\nwant %+v", i+1, got, p)
		}
	}

	id, parts := sfdiskDump(t, path)
	if id != tab.DiskGUID || fmt.Sprint(parts) != fmt.Sprint(withoutAttrs(want)) {
		t.Errorf("sfdisk --dump: %s %+v\nwant %s %+v", id, parts, tab.DiskGUID, withoutAttrs(want))
	}
	dump := run(t, "sfdisk", "--dump", path)
	for _, s := range []string{"label: gpt", "first-lba: 34", fmt.Sprintf("last-lba: %d", testDiskSize/512-34), `attrs="RequiredPartition"`, `attrs="GUID:59"`} {
		if !strings.Contains(dump, s) {
			t.Errorf("sfdisk --dump lacks %q:\n%s", s, dump)
		}
	}

	fd := run(t, "fdisk", "-l", path)
	for _, s := range []string{"Disklabel type: gpt", "Disk identifier: " + tab.DiskGUID.String()} {
		if !strings.Contains(fd, s) {
			t.Errorf("fdisk -l lacks %q:\n%s", s, fd)
		}
	}
	for i, typ := range []string{"BIOS boot", "EFI System", `Linux root \(x86-64\)`} {
		p := want[i]
		row := fmt.Sprintf(`(?m)^%s%d\s+%d\s+%d\s+%d\s+\S+\s+%s$`, regexp.QuoteMeta(path), i+1, p.FirstLBA, p.LastLBA, p.LastLBA-p.FirstLBA+1, typ)
		if !regexp.MustCompile(row).MatchString(fd) {
			t.Errorf("fdisk -l has no row %q:\n%s", row, fd)
		}
	}

	// The protective MBR matches what sgdisk writes for the same disk but
	// for the CHS fields, which go-diskfs leaves zero (UEFI says to ignore
	// them in a protective MBR).
	ref, _ := sparseDisk(t, testDiskSize)
	run(t, "sgdisk", "-o", ref)
	mine, _ := os.ReadFile(path)
	theirs, _ := os.ReadFile(ref)
	for _, chs := range []int{447, 448, 449, 451, 452, 453} {
		mine[chs], theirs[chs] = 0, 0
	}
	if !bytes.Equal(mine[440:512], theirs[440:512]) {
		t.Errorf("MBR 440..511 without CHS:\n% X\nsgdisk writes\n% X", mine[440:512], theirs[440:512])
	}
}

// TestReadToolTables reads tables made by sgdisk and sfdisk and compares
// them with what sgdisk reports.
func TestReadToolTables(t *testing.T) {
	testutil.Integration(t)
	path, f := sparseDisk(t, testDiskSize)
	run(t, "sgdisk", "-o", "-U", "11111111-2222-4333-8444-555555555555",
		"-n", "1:2048:+1M", "-t", "1:ef02", "-c", "1:bios", "-u", "1:AAAAAAAA-2222-4333-8444-555555555555",
		"-n", "2:0:+20M", "-t", "2:ef00", "-c", "2:EFI system", "-A", "2:set:0",
		"-n", "3:0:0", "-t", "3:8304", "-c", "3:root é", "-A", "3:set:60", path)
	tab, err := Read(f, testDiskSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Warnings) != 0 {
		t.Errorf("warnings: %q", tab.Warnings)
	}
	if tab.DiskGUID.String() != "11111111-2222-4333-8444-555555555555" {
		t.Errorf("disk GUID %s", tab.DiskGUID)
	}
	if len(tab.Partitions) != 3 {
		t.Fatalf("%d partitions", len(tab.Partitions))
	}
	for i, p := range tab.Partitions {
		if want := sgdiskInfo(t, path, i+1); p != want {
			t.Errorf("partition %d:\n got %+v\nwant %+v", i+1, p, want)
		}
	}
	if tab.Partitions[0].GUID.String() != "AAAAAAAA-2222-4333-8444-555555555555" || tab.Partitions[2].Name != "root é" ||
		tab.Partitions[2].Type != TypeLinuxRootX86_64 || tab.Partitions[2].Attributes != 1<<60 {
		t.Errorf("partitions: %+v", tab.Partitions)
	}

	// Growing the disk leaves the backup behind; sgdisk -e moves it.
	if err := f.Truncate(2 * testDiskSize); err != nil {
		t.Fatal(err)
	}
	if tab, err = Read(f, 2*testDiskSize); err != nil || len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "disk grew") {
		t.Errorf("grown disk: %v, warnings %q", err, tab.Warnings)
	}
	run(t, "sgdisk", "-e", path)
	if tab, err = Read(f, 2*testDiskSize); err != nil || len(tab.Warnings) != 0 || len(tab.Partitions) != 3 {
		t.Errorf("after sgdisk -e: %v, warnings %q", err, tab.Warnings)
	}

	// sfdisk writes its own tables.
	spath, sf := sparseDisk(t, testDiskSize)
	cmd := exec.Command(testutil.NeedTool(t, "sfdisk"), "-q", spath)
	cmd.Stdin = strings.NewReader("label: gpt\nlabel-id: 01234567-89AB-4CDE-8F01-23456789ABCD\n" +
		"start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"esp\"\n" +
		"type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"data\"\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	if tab, err = Read(sf, testDiskSize); err != nil || len(tab.Warnings) != 0 {
		t.Fatalf("sfdisk table: %v, warnings %q", err, tab.Warnings)
	}
	id, parts := sfdiskDump(t, spath)
	if tab.DiskGUID != id || fmt.Sprint(withoutAttrs(tab.Partitions)) != fmt.Sprint(parts) {
		t.Errorf("read %s %+v\nsfdisk says %s %+v", tab.DiskGUID, tab.Partitions, id, parts)
	}
}
