// Package image checks disk image files kiln did not make, and opens
// image files as the flat virtual disk a VM would see: an io.ReaderAt over
// their guest-visible bytes, whatever the container.
//
// kiln reads two containers:
//
//   - raw: the file is the disk.
//   - qcow2 (versions 2 and 3), through github.com/lima-vm/go-qcow2reader,
//     with zlib/deflate and zstd compressed clusters (zstd through the
//     decoder of github.com/klauspost/compress, which this package
//     registers). Unallocated clusters read as zeros, or from the backing
//     file of an overlay kiln made, when the caller names it.
//
// Every other container is recognised by [Detect] only to name it in the
// error: "image: /x/y.vdi is a vdi image; kiln reads qcow2 and raw images:
// convert it first with qemu-img convert -O qcow2 /x/y.vdi /x/y.qcow2".
//
// # Images kiln did not make
//
// An image kiln did not make (a vendor base, the target of kiln lint or
// kiln test) is hostile until checked. A qcow2 header can name a backing
// file or an external data file anywhere on the host, a vmdk descriptor
// names its extents, and QEMU, qemu-img and go-qcow2reader would all open
// them: unallocated clusters would show /etc/shadow to the guest, which a
// bake would then carry into a golden image. [Check] reads the first
// cluster of such an image, follows nothing, and refuses:
//
//   - any format but qcow2 and raw, by name (vmdk descriptors included);
//   - a backing file, any: "x.qcow2 has a backing file "/etc/shadow": kiln
//     does not follow backing files of images it did not make; if you trust
//     it and its backing file, flatten it first with qemu-img convert -O
//     qcow2 x.qcow2 x-flat.qcow2";
//   - an external data file, and encryption;
//   - a virtual size over [MaxVirtualSize] (1 TiB) or the caller's limit;
//   - header fields out of range (below).
//
// It returns the format and virtual size: the caller then states the
// format to QEMU and qemu-img and gives them no backing file (see
// internal/qemu), so that nothing in the header is ever probed or
// followed. [Open] runs the same check before it reads.
//
// kiln's own overlays (a VM bake's work disk, kiln test's throw-away
// overlay) have backing files kiln created and can name: Open(overlay,
// WithBacking(base)) follows exactly that chain, and refuses a header
// naming anything else. go-qcow2reader opens backing files itself, by the
// name in the header; Open hands it a view of each header whose backing
// file offset reads as 0 where the named chain ends, and an opener that
// accepts only the file Check verified at each depth (os.SameFile), so an
// image rewritten between the check and the open still reads nothing
// else.
//
// # Signatures Detect looks for
//
//	offset        bytes                       format
//	0             51 46 49 FB ("QFI\xfb")     qcow2 (qcow if version is 1)
//	0             "QED\0"                     qed
//	0             "vhdxfile"                  vhdx
//	0             "KDMV", "COWD" or
//	              "# Disk DescriptorFile"     vmdk
//	0x40          7F 10 DA BE (LE 0xbeda107f) vdi
//	0 or size-512 "conectix"                  vhd (dynamic / fixed)
//	0             "LUKS\xba\xbe"              luks
//	0             "WithoutFreeSpace" or
//	              "WithouFreSpacExt"          parallels
//	0             "Bochs Virtual HD Image"    bochs
//	0             1F 8B                       gzip
//	0             FD 37 7A 58 5A 00           xz
//	0             28 B5 2F FD                 zstd
//	0             "BZh"                       bzip2
//	0             7F "ELF"                    ELF
//	257           "ustar"                     tar
//	0x8001        "CD001"                     iso9660
//
// A vmdk text descriptor is also recognised as QEMU's probe recognises it
// (in the first 2048 bytes): comment lines ("#...") and lines of spaces,
// then "version=1", "=2" or "=3" ending its line. So no file kiln calls
// raw is a vmdk to QEMU.
//
// Anything else whose size is a multiple of 512 and at least 1 MiB is
// "raw"; a zero-length file is "empty"; the rest is an error.
//
// # qcow2 header fields checked before anything opens the file
//
// All big-endian (go-qcow2reader trusts them; a corrupt value would make
// it allocate without bound or panic). The bounds are QEMU 7.2's own:
//
//	0   magic "QFI\xfb"          4   version (2, 3)
//	8   backing file name offset 16  backing file name length (1..1023),
//	                                 after the header, in the first cluster
//	20  cluster bits (9..21)     24  virtual size (<= 2^62, then the limit)
//	32  crypt method (0 only)    36  L1 entries (enough for the virtual
//	40  L1 table offset              size, <= 4 Mi, inside the file)
//	48  refcount table offset    56  refcount table clusters (<= 8 MiB)
//	    (cluster-aligned, inside the file)
//	60  snapshots (<= 65536)     72  incompatible features (v3; bit 2,
//	                                 external data file, refused)
//	96  refcount order (<= 6)    100 header length (v3; 104..cluster, 8-aligned)
//	104 compression type (0 zlib, 1 zstd)
//
// then the header extensions (type u32, length u32, data padded to 8
// bytes) up to the backing file name or the end of the first cluster, for
// the backing file format (0xe2792aca) and the external data file name
// (0x44415441), which errors quote, cut to 256 bytes.
//
// # Reading
//
// Image.ReadAt follows io.ReaderAt and is safe for concurrent use. For
// qcow2 it keeps a small cache of whole clusters, because go-qcow2reader
// decompresses a compressed cluster again for every read inside it and
// filesystem readers ask for small blocks.
package image
