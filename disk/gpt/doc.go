// Package gpt reads GUID partition tables (UEFI 2.10 chapter 5) on disks
// of 512-byte sectors, in pure Go, and hands tables to go-diskfs's
// partition/gpt to write (Table.ToDiskfs): kiln writes no GPT bytes of its
// own. GUIDs for reproducible disks come from DeriveGUID.
//
// # Layout
//
// All integers little-endian; LBA = 512-byte sector number; "last" is the
// disk's last LBA. As go-diskfs writes it:
//
//	LBA 0        protective MBR. Only bytes 446..511 are written:
//	               446  entry 1: status 0, CHS start 0, type 0xEE, CHS
//	                    end 0, first LBA (4) = 1,
//	                    sectors (4) = min(last, 0xFFFFFFFF)
//	               462  entries 2-4, zero
//	               510  55 AA
//	             Bytes 0..445 are left as they are: boot code (GRUB's
//	             boot.img) lives in 0..439, the disk signature in 440..443.
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
// Read checks both headers and both arrays; when the primary is damaged it
// uses the backup and says so in Table.Warnings.
//
// # Why the reader is kiln's own
//
// go-diskfs v1.9.4's gpt.Read could read through disk/image, given a small
// adapter (it wants a backend.File: an io.ReaderAt that also has Read,
// Seek, Stat and Close). It is not fit for the images kiln reads, which
// `kiln lint` takes from anyone: it allocates the entry array the header
// asks for, so a crafted 512-byte header (2^32-1 entries) ends the process
// with a fatal out-of-memory error rather than an error; it never looks at
// the backup while the primary is sound, so it cannot report a disk grown
// past its backup (qemu-img resize) or a damaged backup; and it refuses
// headers larger than 92 bytes and entries larger than 128, which UEFI
// allows. Read bounds the entry array, checks both halves, reports what
// it worked around, and is fuzzed (FuzzReadGPT).
package gpt
