// Package disk builds bootable disk images in user space — no loop devices,
// no device-mapper, no mounts — and its subpackages read them back:
//
//	disk/gpt    GUID partition tables: read, and written through go-diskfs
//	disk/ext4   read-only ext4 as an io/fs.FS, for offline inspection
//	disk/image  qcow2 and raw images as flat virtual disks; checks of images kiln did not make
//
// Assemble lays out a GPT disk that boots under both SeaBIOS and OVMF:
//
//	LBA 0            protective MBR; bytes 0..439 hold GRUB's boot.img
//	LBA 1..33        primary GPT header and entries
//	1 MiB   (p1)     BIOS boot partition: GRUB's core.img, found by boot.img
//	2 MiB   (p2)     EFI system partition, 65 MiB of FAT32 made with go-diskfs
//	                 (serial and timestamps pinned): /EFI/BOOT/BOOTX64.EFI (GRUB)
//	67 MiB  (p3)     root, ext4 made by mkfs.ext4 -d from a directory tree,
//	                 to the end of the disk
//	last 33 sectors  backup GPT
//
// Both GRUBs carry an embedded config that finds the root filesystem by UUID
// and reads /boot/grub/grub.cfg there, so one boot config serves both
// firmwares; it boots /vmlinuz and /initrd.img, the links Debian's kernel
// packages keep pointing at the newest kernel.
package disk
