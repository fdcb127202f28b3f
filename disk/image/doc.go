// Package image opens a disk image file as the flat virtual disk a VM would
// see: an io.ReaderAt over its guest-visible bytes, whatever the container.
//
// kiln reads two containers:
//
//   - raw: the file is the disk.
//   - qcow2 (versions 2 and 3), through github.com/lima-vm/go-qcow2reader,
//     with zlib/deflate and zstd compressed clusters (zstd through the
//     decoder of github.com/klauspost/compress, which this package registers)
//     and backing
//     files, which are resolved relative to the image that names them.
//     Unallocated clusters read as zeros (or from the backing file).
//
// Every other container is recognised by [Detect] only to name it in the
// error: "image: /x/y.vmdk is a vmdk image; kiln reads qcow2 and raw images".
//
// # Signatures Detect looks for
//
//	offset        bytes                       format
//	0             51 46 49 FB ("QFI\xfb")     qcow2
//	0             "vhdxfile"                  vhdx
//	0             "KDMV", "COWD" or
//	              "# Disk DescriptorFile"     vmdk
//	0x40          7F 10 DA BE (LE 0xbeda107f) vdi
//	0 or size-512 "conectix"                  vhd (dynamic / fixed)
//	0             1F 8B                       gzip
//	0             FD 37 7A 58 5A 00           xz
//	0             28 B5 2F FD                 zstd
//	0             "BZh"                       bzip2
//	0             7F "ELF"                    ELF
//	257           "ustar"                     tar
//	0x8001        "CD001"                     iso9660
//
// Anything else whose size is a multiple of 512 and at least 1 MiB is
// "raw"; a zero-length file is "empty"; the rest is an error.
//
// # qcow2 header fields checked before go-qcow2reader sees the file
//
// All big-endian (the library trusts them; a corrupt value would make it
// allocate without bound, recurse forever through backing files or panic):
//
//	0   magic "QFI\xfb"          4   version (2, 3)
//	8   backing file name offset 16  backing file name length (<= 1023)
//	20  cluster bits (9..21)     24  virtual size
//	32  crypt method (0 only)    36  L1 entries
//	40  L1 table offset          72  incompatible features (v3)
//	100 header length (v3)       104 compression type (0 zlib, 1 zstd)
//
// then the header extensions (type u32, length u32, data padded to 8 bytes)
// for the backing file format name (0xe2792aca). Backing chains may be at
// most 16 deep and may not loop.
//
// # Reading
//
// Image.ReadAt follows io.ReaderAt and is safe for concurrent use. For
// qcow2 it keeps a small cache of whole clusters, because go-qcow2reader
// decompresses a compressed cluster again for every read inside it and
// filesystem readers ask for small blocks.
package image
