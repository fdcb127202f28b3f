package builder

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// initramfsPaths lists the paths in an initramfs as Linux unpacks it: cpio
// archives (newc) one after another, the first ones uncompressed (microcode,
// and initramfs-tools' already compressed modules), the last gzip-compressed.
func initramfsPaths(b []byte) ([]string, error) {
	var paths []string
	r := bytes.NewReader(b)
	for {
		// Archives are padded with zeros to a 4-byte boundary.
		c, err := r.ReadByte()
		for err == nil && c == 0 {
			c, err = r.ReadByte()
		}
		if err == io.EOF {
			return paths, nil
		}
		r.UnreadByte()
		magic := make([]byte, 2)
		if _, err := io.ReadFull(r, magic); err != nil {
			return nil, err
		}
		r.Seek(-2, io.SeekCurrent)
		if magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return nil, err
			}
			rest, err := io.ReadAll(zr)
			if err != nil {
				return nil, err
			}
			more, err := initramfsPaths(rest)
			return append(paths, more...), err
		}
		if err := readCpio(r, func(name string) { paths = append(paths, name) }); err != nil {
			return nil, err
		}
	}
}

// readCpio reads one newc archive up to its trailer.
func readCpio(r io.ReadSeeker, entry func(string)) error {
	hdr := make([]byte, 110)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return err
		}
		if string(hdr[:6]) != "070701" {
			return fmt.Errorf("not a newc cpio header: %q", hdr[:6])
		}
		field := func(i int) int64 {
			n, _ := strconv.ParseInt(string(hdr[6+8*i:14+8*i]), 16, 64)
			return n
		}
		size, nameSize := field(6), field(11)
		name := make([]byte, nameSize)
		if _, err := io.ReadFull(r, name); err != nil {
			return err
		}
		pad := func(n int64) int64 { return (4 - n%4) % 4 }
		if _, err := r.Seek(pad(110+nameSize)+size+pad(size), io.SeekCurrent); err != nil {
			return err
		}
		s := strings.TrimRight(string(name), "\x00")
		if s == "TRAILER!!!" {
			return nil
		}
		entry(s)
	}
}

// TestRebuildInitramfsNeedsItsHook: the tuning's MODULES=list without the
// hook that adds the disk drivers would build an initramfs that cannot find
// the root; the bake stops and says so. Without either file (a recipe that
// removed both), or without initramfs-tools, nothing is rebuilt.
func TestRebuildInitramfsNeedsItsHook(t *testing.T) {
	r := root{dir: t.TempDir()}
	c := &chroot{dir: r.dir}
	if err := rebuildInitramfs(context.Background(), c); err != nil {
		t.Fatalf("a tree without initramfs-tools: %v", err)
	}
	for _, f := range initramfsFiles() {
		if err := r.writeFile(f.path, []byte(f.content), osMode(f.mode), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := rebuildInitramfs(context.Background(), c); err != nil {
		t.Fatalf("the tuning's files without update-initramfs: %v", err)
	}
	os.Remove(filepath.Join(r.dir, initramfsHook))
	err := rebuildInitramfs(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), initramfsConf) || !strings.Contains(err.Error(), "remove both files") {
		t.Fatalf("MODULES=list without the hook: %v", err)
	}
}

// TestInitramfsCheck runs the check rebuildInitramfs makes after
// update-initramfs, with lsinitramfs and modinfo standing in: an initramfs
// without a driver its kernel has as a module fails the bake, naming it;
// drivers the kernel lacks or has built in are not looked for.
func TestInitramfsCheck(t *testing.T) {
	dir := t.TempDir()
	bin, boot := filepath.Join(dir, "bin"), filepath.Join(dir, "boot")
	for _, d := range []string{bin, boot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub := func(name, script string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel 6.12-test: virtio_blk and ahci are modules, nvme is built
	// in, xen_blkfront does not exist.
	stub("modinfo", `case "$5" in
virtio_blk) echo /lib/modules/$2/kernel/drivers/block/virtio_blk.ko.xz ;;
ahci) echo /lib/modules/$2/kernel/drivers/ata/ahci.ko.xz ;;
nvme) echo "(builtin)" ;;
*) exit 1 ;;
esac
`)
	if err := os.WriteFile(filepath.Join(boot, "initrd.img-6.12-test"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(listing string) error {
		stub("lsinitramfs", "printf '%s\\n' "+strconv.Quote(listing)+"\n")
		cmd := exec.Command("sh", "-c", initramfsCheck, "check", "virtio_blk", "ahci", "nvme", "xen_blkfront")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "KILN_BOOT_DIR="+boot)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	full := "init\nusr/lib/modules/6.12-test/kernel/drivers/block/virtio_blk.ko.xz\nusr/lib/modules/6.12-test/kernel/drivers/ata/ahci.ko.xz"
	if err := check(full); err != nil {
		t.Errorf("an initramfs with every driver its kernel has as a module: %v", err)
	}
	err := check("init\nusr/lib/modules/6.12-test/kernel/drivers/ata/ahci.ko.xz")
	if err == nil || !strings.Contains(err.Error(), "initrd.img-6.12-test lacks virtio_blk (virtio_blk.ko.xz)") {
		t.Errorf("an initramfs without virtio_blk: %v", err)
	}
}
