// Package gpt writes and reads GUID partition tables (UEFI 2.10 chapter 5)
// on disks of 512-byte sectors, in pure Go.
//
// # Layout written by Table.Write
//
// All integers little-endian; LBA = 512-byte sector number; "last" is the
// disk's last LBA.
//
//	LBA 0        protective MBR. Only bytes 440..511 are written:
//	               440  disk signature (4) = 0, then 2 zero bytes
//	               446  entry 1: status 0, CHS start 00 02 00, type 0xEE,
//	                    CHS end (FF FF FF past CHS range), first LBA (4) = 1,
//	                    sectors (4) = min(last, 0xFFFFFFFF)
//	               462  entries 2-4, zero
//	               510  55 AA
//	             Bytes 0..439 are left as they are: boot code (GRUB's
//	             boot.img) lives there.
//	LBA 1        primary header (the rest of the sector is zero)
//	LBA 2..33    primary entry array: 128 entries of 128 bytes
//	LBA 34       first usable LBA
//	last-33      last usable LBA
//	last-32..-1  backup entry array (same bytes as the primary)
//	last         backup header: my LBA and alternate LBA swapped, entry
//	             array LBA = last-32
//
// Header (92 bytes):
//
//	0   "EFI PART"           8   revision 0x00010000
//	12  header size (92)     16  CRC32 of the header, this field as zero
//	20  reserved, zero       24  my LBA
//	32  alternate LBA        40  first usable LBA
//	48  last usable LBA      56  disk GUID (16)
//	72  entry array LBA      80  number of entries (128)
//	84  entry size (128)     88  CRC32 of the entry array
//
// Entry (128 bytes):
//
//	0   type GUID (16)       16  unique partition GUID (16)
//	32  first LBA            40  last LBA (inclusive)
//	48  attributes           56  name, UTF-16LE, 36 units, NUL-padded
//
// GUIDs are stored mixed-endian: the first three groups of the canonical
// text form are little-endian, the last two are bytes in order. CRCs are
// IEEE CRC32 (hash/crc32.ChecksumIEEE).
//
// Write sorts partitions by first LBA into entries 1..n. Read checks both
// headers and both arrays; when the primary is damaged it uses the backup
// and says so in Table.Warnings.
package gpt
