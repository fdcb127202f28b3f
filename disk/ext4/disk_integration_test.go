package ext4

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-project/kiln/disk/gpt"
	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/testutil"
)

// TestThroughGPTAndQcow2 is kiln's read-back path: a raw disk with a GPT
// written by go-diskfs, an ext4 root filesystem made in place by mkfs.ext4
// -E offset=, converted to a zstd-compressed qcow2, then image.Open ->
// gpt.Read -> ext4.Open on the partition.
func TestThroughGPTAndQcow2(t *testing.T) {
	testutil.Integration(t)
	const (
		diskSize = 80 << 20
		first    = 2048 // 1 MiB
	)
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(diskSize); err != nil {
		t.Fatal(err)
	}
	tab := &gpt.Table{DiskGUID: gpt.DeriveGUID("disk")}
	tab.Partitions = []gpt.Partition{{
		Type: gpt.TypeLinuxRootX86_64, GUID: gpt.DeriveGUID("root"), Name: "root",
		FirstLBA: first, LastLBA: diskSize/512 - 34, // the last usable LBA
	}}
	if err := tab.ToDiskfs().Write(f, diskSize); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// mke2fs takes the filesystem size (not the end) after the device, in
	// KiB here; offset= leaves the bytes before it and after the
	// filesystem alone, GPT included.
	src := buildTree(t, treeOpts{})
	part := tab.Partitions[0]
	kib := part.Size() / 1024
	tool(t, "mkfs.ext4", "-q", "-N", "16384", "-L", treeLabel, "-U", treeUUID,
		"-E", fmt.Sprintf("offset=%d", part.Offset()), "-d", src, raw, fmt.Sprintf("%dk", kib))

	qcow := filepath.Join(dir, "disk.qcow2")
	cmd := exec.Command(testutil.NeedTool(t, "qemu-img"), "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", raw, qcow)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	if err := os.Remove(raw); err != nil { // only the qcow2 may be read from now on
		t.Fatal(err)
	}

	img, err := image.Open(qcow)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != image.QCOW2 || img.Size() != diskSize {
		t.Fatalf("image: %s, %d bytes", img.Format(), img.Size())
	}
	read, err := gpt.Read(img, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	if len(read.Warnings) != 0 || len(read.Partitions) != 1 || read.Partitions[0] != part {
		t.Fatalf("GPT after mkfs: %+v", read)
	}
	p := read.Partitions[0]
	fsys, err := Open(io.NewSectionReader(img, p.Offset(), p.Size()), p.Size())
	if err != nil {
		t.Fatal(err)
	}
	if fsys.Label() != treeLabel || fsys.UUID() != treeUUID {
		t.Errorf("Label %q UUID %q", fsys.Label(), fsys.UUID())
	}
	if _, total := fsys.FreeBlocks(); total*uint64(fsys.BlockSize()) != uint64(kib)*1024 {
		t.Errorf("filesystem of %d blocks of %d, want %d KiB", total, fsys.BlockSize(), kib)
	}
	compareTree(t, fsys, src, treeOpts{})
	checkLinks(t, fsys)
	if b, err := fsys.ReadFile("etc/machine-id"); err != nil || string(b) != "0123456789abcdef0123456789abcdef\n" {
		t.Errorf("etc/machine-id = %q, %v", b, err)
	}
}
