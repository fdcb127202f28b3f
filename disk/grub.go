package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GRUBDir is where Debian's grub-pc-bin and grub-efi-amd64-bin put their
// modules and images.
var GRUBDir = "/usr/lib/grub"

// grubModules are built into both GRUB images, so nothing is loaded from the
// disk before grub.cfg: what is needed to find the root by UUID on GPT/ext4,
// read the config, talk on the serial console, and load a Linux kernel.
var grubModules = []string{
	"part_gpt", "part_msdos", "ext2", "fat", "normal", "linux", "search", "search_fs_uuid", "search_label",
	"configfile", "serial", "terminal", "echo", "test", "gzio", "xzio", "zstd", "minicmd", "sleep",
}

// earlyConfig is embedded in the GRUB images.
func earlyConfig(rootUUID string) string {
	return fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n", rootUUID)
}

// GRUBConfig is /boot/grub/grub.cfg: no menu, straight to the kernel, with
// the console on the serial port as well.
func GRUBConfig(rootUUID, cmdline string) string {
	return fmt.Sprintf(`# Written by kiln. Boots /vmlinuz and /initrd.img, which Debian's kernel
# packages keep pointing at the newest kernel.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
search --no-floppy --fs-uuid --set=root %s
linux /vmlinuz root=UUID=%s ro %s
initrd /initrd.img
boot
`, rootUUID, rootUUID, cmdline)
}

// DefaultCmdline is the kernel command line of kiln images: the console on
// the serial port (where kiln reads boot progress), stable interface names
// eth0, eth1, ... in PCI order.
const DefaultCmdline = "console=tty0 console=ttyS0,115200n8 net.ifnames=0 biosdevname=0"

// mkimage builds a GRUB image for format (i386-pc or x86_64-efi).
func mkimage(ctx context.Context, dir, format, rootUUID string) ([]byte, error) {
	modDir := filepath.Join(GRUBDir, format)
	if _, err := os.Stat(modDir); err != nil {
		pkg := map[string]string{"i386-pc": "grub-pc-bin", "x86_64-efi": "grub-efi-amd64-bin"}[format]
		return nil, fmt.Errorf("disk: GRUB modules for %s not found in %s (install %s)", format, modDir, pkg)
	}
	cfg := filepath.Join(dir, "early-"+format+".cfg")
	if err := os.WriteFile(cfg, []byte(earlyConfig(rootUUID)), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, "grub-"+format+".img")
	mods := grubModules
	if format == "i386-pc" {
		mods = append([]string{"biosdisk"}, mods...)
	}
	args := append([]string{"-O", format, "-d", modDir, "-o", out, "-c", cfg, "-p", "/boot/grub"}, mods...)
	cmd := exec.CommandContext(ctx, "grub-mkimage", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("disk: grub-mkimage -O %s: %v: %s", format, err, strings.TrimSpace(string(b)))
	}
	return os.ReadFile(out)
}

// bootImage reads GRUB's boot.img, the boot code installBIOS puts into
// the MBR.
func bootImage() ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(GRUBDir, "i386-pc", "boot.img"))
	if err != nil {
		return nil, fmt.Errorf("disk: %w (install grub-pc-bin)", err)
	}
	return b, nil
}

// installBIOS writes GRUB's core.img into the BIOS boot partition and its
// boot.img (bootImg, one sector) into the MBR, then links them: boot.img's
// core-LBA field (offset 0x5c, u64 LE) points at core.img's first sector,
// whose blocklist (offset 0x1f4: u64 start LBA, u16 sector count, u16 load
// segment) points at the rest of core.img. This is what grub-bios-setup
// does for a device, done on an image file. Of the MBR it replaces bytes
// 0..439 only: the disk signature and partition table stay.
func installBIOS(w io.WriterAt, r io.ReaderAt, bootImg, core []byte) error {
	if len(bootImg) != sectorSize {
		return fmt.Errorf("disk: boot.img is %d bytes, want %d", len(bootImg), sectorSize)
	}
	sectors := (len(core) + sectorSize - 1) / sectorSize
	if sectors == 0 || int64(sectors)*sectorSize > biosBootSize {
		return fmt.Errorf("disk: core.img is %d bytes, want 1 to %d (the BIOS boot partition)", len(core), biosBootSize)
	}
	coreLBA := lba(biosBootStart)
	padded := make([]byte, sectors*sectorSize)
	copy(padded, core)
	binary.LittleEndian.PutUint64(padded[0x1f4:], coreLBA+1)
	binary.LittleEndian.PutUint16(padded[0x1fc:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(padded[0x1fe:], 0x820)
	if _, err := w.WriteAt(padded, biosBootStart); err != nil {
		return err
	}
	mbr := make([]byte, sectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return err
	}
	copy(mbr[:440], bootImg)
	binary.LittleEndian.PutUint64(mbr[0x5c:], coreLBA)
	_, err := w.WriteAt(mbr, 0)
	return err
}
