package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/disk/gpt"
	"github.com/kiln-project/kiln/internal/progress"
)

// Spec describes a disk to assemble.
type Spec struct {
	Path     string // raw disk file to create (it must not exist)
	Size     int64  // virtual size in bytes
	RootTree string // directory that becomes the root filesystem
	// Seed makes every identifier of the disk (disk GUID, partition GUIDs,
	// root filesystem UUID) deterministic: the same seed and tree give the
	// same disk.
	Seed    string
	Cmdline string    // kernel command line after root=; default DefaultCmdline
	Epoch   time.Time // timestamps; zero means the Unix epoch
}

// Result describes an assembled disk.
type Result struct {
	RootUUID   string
	RootLabel  string
	Partitions []gpt.Partition
}

// RootLabel is the filesystem label of kiln root filesystems.
const RootLabel = "kiln-root"

// RootUUID is the root filesystem UUID Assemble derives from a seed, in the
// lower-case form udev uses for /dev/disk/by-uuid (root=UUID= is matched
// against it case-sensitively).
func RootUUID(seed string) string { return strings.ToLower(gpt.DeriveGUID(seed, "root-fs").String()) }

// espSerial is the volume serial of the EFI system partition Assemble
// derives from a seed; Linux shows it as the filesystem UUID, "XXXX-XXXX".
func espSerial(seed string) uint32 {
	g := gpt.DeriveGUID(seed, "esp-fs")
	return binary.LittleEndian.Uint32(g[:4])
}

// Assemble builds a bootable raw disk from a root tree (see the package
// comment for the layout). It writes /boot/grub/grub.cfg into the tree.
// On failure the disk file is removed.
func Assemble(ctx context.Context, spec Spec, sink progress.Sink) (res *Result, err error) {
	l, err := newLayout(spec.Size)
	if err != nil {
		return nil, err
	}
	step := progress.Begin(sink, "assemble", 0, fmt.Sprintf("GPT disk of %d MiB: BIOS + UEFI GRUB, ext4 root", spec.Size/mib))
	rootUUID := RootUUID(spec.Seed)
	cmdline := spec.Cmdline
	if cmdline == "" {
		cmdline = DefaultCmdline
	}
	grubDir := filepath.Join(spec.RootTree, "boot", "grub")
	if err := os.MkdirAll(grubDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(grubDir, "grub.cfg"), []byte(GRUBConfig(rootUUID, cmdline)), 0o644); err != nil {
		return nil, err
	}

	work, err := os.MkdirTemp(filepath.Dir(spec.Path), ".grub-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	step.Note("building GRUB for BIOS and UEFI")
	core, err := mkimage(ctx, work, "i386-pc", rootUUID)
	if err != nil {
		return nil, err
	}
	efi, err := mkimage(ctx, work, "x86_64-efi", rootUUID)
	if err != nil {
		return nil, err
	}
	bootImg, err := bootImage()
	if err != nil {
		return nil, err
	}

	f, err := os.OpenFile(spec.Path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(spec.Path)
			res = nil
		}
	}()
	if err := f.Truncate(spec.Size); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	table := &gpt.Table{
		DiskGUID: gpt.DeriveGUID(spec.Seed, "disk"),
		Partitions: []gpt.Partition{
			{Type: gpt.TypeBIOSBoot, GUID: gpt.DeriveGUID(spec.Seed, "bios-boot"), Name: "bios-boot",
				FirstLBA: lba(biosBootStart), LastLBA: lba(biosBootStart+biosBootSize) - 1},
			{Type: gpt.TypeEFISystem, GUID: gpt.DeriveGUID(spec.Seed, "esp"), Name: "esp",
				FirstLBA: lba(espStart), LastLBA: lba(espStart+espSize) - 1},
			{Type: gpt.TypeLinuxRootX86_64, GUID: gpt.DeriveGUID(spec.Seed, "root"), Name: "root",
				FirstLBA: lba(l.rootOffset), LastLBA: lba(l.rootOffset+l.rootSize) - 1},
		},
	}
	// Of LBA 0, go-diskfs writes the protective MBR (bytes 446..511) and
	// installBIOS then GRUB's boot.img (bytes 0..439), keeping the rest.
	if err := table.ToDiskfs().Write(f, spec.Size); err != nil {
		return nil, fmt.Errorf("disk: writing the partition table: %w", err)
	}
	if err := installBIOS(f, f, bootImg, core); err != nil {
		return nil, err
	}
	if err := writeESP(f, efi, espSerial(spec.Seed), spec.Epoch); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	step.Note("making the ext4 root filesystem from the tree")
	if err := makeRootFS(ctx, spec.Path, l, spec.RootTree, RootLabel, rootUUID, spec.Epoch); err != nil {
		return nil, err
	}
	step.End("")
	return &Result{RootUUID: rootUUID, RootLabel: RootLabel, Partitions: table.Partitions}, nil
}
