package disk

import (
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// writeESP makes the EFI system partition: FAT32 (reproducible: fixed
// serial and timestamps) holding GRUB as the removable-media loader path,
// /EFI/BOOT/BOOTX64.EFI, which every UEFI firmware tries without NVRAM
// boot entries.
func writeESP(f *os.File, efi []byte) error {
	fs, err := fat32.Create(file.New(f, false), espSize, espStart, sectorSize, "ESP", true)
	if err != nil {
		return fmt.Errorf("disk: ESP: %w", err)
	}
	if err := fs.Mkdir("/EFI/BOOT"); err != nil {
		return fmt.Errorf("disk: ESP: %w", err)
	}
	out, err := fs.OpenFile("/EFI/BOOT/BOOTX64.EFI", os.O_CREATE|os.O_RDWR)
	if err != nil {
		return fmt.Errorf("disk: ESP: %w", err)
	}
	if _, err := out.Write(efi); err != nil {
		out.Close()
		return fmt.Errorf("disk: ESP: %w", err)
	}
	return out.Close()
}
