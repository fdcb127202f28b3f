// Package iso writes and reads NoCloud seed images: the small filesystems
// cloud-init's NoCloud datasource finds by their label ("cidata" /
// "CIDATA") and mounts to read user-data, meta-data, network-config and
// vendor-data.
//
// The writer is self-contained (standard library only), plans the whole
// layout before it writes a byte, and is reproducible: identical entries,
// label and ModTime give identical bytes, whatever the order of entries.
// Timestamps come from Options.ModTime (the build's SOURCE_DATE_EPOCH),
// the Unix epoch when it is zero.
//
// Every seed holds one flat root directory, the layout cloud-localds
// writes:
//
//	/
//	├── meta-data
//	├── network-config   (optional)
//	├── user-data
//	└── vendor-data      (optional)
//
// # ISO9660 (the default)
//
// 2048-byte sectors, laid out in this order:
//
//	sector  0-15  system area, zero
//	sector  16    primary volume descriptor (volume id = label, "cidata")
//	sector  17    Joliet supplementary volume descriptor (escape %/E, UCS-2)
//	sector  18    volume descriptor set terminator
//	sector  19-22 path tables: primary L, primary M, Joliet L, Joliet M
//	sector  23..  primary root directory, 8.3 names ("USER_DAT.;1") plus
//	              Rock Ridge SUSP fields: SP, RR, PX, TF, NM and, in the
//	              root ".", a CE pointing at the next sector
//	next          SUSP continuation area holding the ER (RRIP_1991A) entry
//	next..        Joliet root directory (UCS-2 big-endian names)
//	next..        file data, one extent per file in name order, each
//	              starting on a sector boundary and zero padded
//
// Linux (Rock Ridge), Windows (Joliet) and blkid (volume id) all see the
// real lower-case names and the label.
//
// # VFAT
//
// A FAT12 image (FAT16 once the data outgrows FAT12's 4084 clusters) with
// 512-byte sectors, one reserved sector, two FATs, a 512-entry root
// directory and contiguous files, at least 1 MiB and rounded up to whole
// MiB:
//
//	sector 0      boot sector: BPB, label "CIDATA", serial, 0x55AA
//	1..           FAT #1, then FAT #2 (identical)
//	next 32       root directory: volume-label entry, then for each file
//	              its VFAT long-name entries followed by the 8.3 entry
//	              ("USER-D~1")
//	next..        data clusters, numbered from 2
//
// The volume serial is derived from a SHA-256 of label, ModTime and
// entries, so it is stable across runs.
//
// [Read] reads either format back, including images written by
// cloud-localds (genisoimage, mkfs.vfat and mcopy).
//
// # Why not go-diskfs
//
// kiln uses go-diskfs where it holds up (GPT, the ESP), but not here.
// Measured with v1.9.4: its ISO9660 writer stamps the volume descriptors
// with time.Now(), so the same seed written twice differs; it writes an
// empty Joliet root when the last file's size is a multiple of 2048 bytes
// (user-data of 2048 or 4096 bytes), so Joliet readers see no files; and
// its FAT12 writer marks one cluster used that no file owns, which
// fsck.fat -n reports. TestReproducible (written twice, seconds apart),
// TestIntegrationISO (isoinfo -J -l of such seeds) and TestIntegrationVFAT
// (fsck.fat -n at FAT12's limits) hold this writer to all three.
package iso
