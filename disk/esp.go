package disk

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// writeESP makes the EFI system partition: FAT32 holding GRUB as the
// removable-media loader path, /EFI/BOOT/BOOTX64.EFI, which every UEFI
// firmware tries without NVRAM boot entries. go-diskfs lays out the
// filesystem and writes the files; pinFAT32 then checks and corrects it.
func writeESP(f *os.File, efi []byte, serial uint32, epoch time.Time) error {
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
	if err := out.Close(); err != nil {
		return fmt.Errorf("disk: ESP: %w", err)
	}
	return pinFAT32(f, espStart, serial, epoch)
}

type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// FAT32 boot sector fields pinFAT32 reads (Microsoft fatgen103).
const (
	bpbBytesPerSector  = 11 // u16
	bpbSectorsPerClus  = 13 // u8
	bpbReservedSectors = 14 // u16
	bpbNumFATs         = 16 // u8
	bpbTotalSectors32  = 32 // u32
	bpbSectorsPerFAT32 = 36 // u32
	bpbRootCluster     = 44 // u32
	bpbBackupBoot      = 50 // u16
	bpbVolumeSerial    = 67 // u32
)

// pinFAT32 finishes the FAT32 filesystem go-diskfs made at off in f,
// where go-diskfs v1.9.4 falls short of a clean, reproducible filesystem:
//
//   - it sizes the FAT without its two reserved entries, which for some
//     sizes leaves it two entries short of the clusters (see espSize):
//     fsck.fat, mtools and Linux refuse that, so pinFAT32 returns an error;
//   - it points ".." of the root's subdirectories at the root's cluster,
//     where FAT32 wants 0 (fsck.fat: "Invalid '..' entry"): pinFAT32 sets
//     every ".." to the parent's cluster, 0 for the root;
//   - it stamps entries with the clock (or $SOURCE_DATE_EPOCH, which a
//     library must not set): pinFAT32 gives every entry, the volume label,
//     "." and ".." included, the time t;
//   - its volume serial is zero: pinFAT32 writes serial into the boot
//     sector and its backup.
func pinFAT32(f readWriterAt, off int64, serial uint32, t time.Time) error {
	boot := make([]byte, sectorSize)
	if _, err := f.ReadAt(boot, off); err != nil {
		return fmt.Errorf("disk: ESP: reading the boot sector: %w", err)
	}
	le := binary.LittleEndian
	bps := int64(le.Uint16(boot[bpbBytesPerSector:]))
	spc := int64(boot[bpbSectorsPerClus])
	reserved := int64(le.Uint16(boot[bpbReservedSectors:]))
	fatSectors := int64(le.Uint32(boot[bpbSectorsPerFAT32:]))
	total := int64(le.Uint32(boot[bpbTotalSectors32:]))
	if bps != sectorSize || spc == 0 || fatSectors == 0 {
		return fmt.Errorf("disk: ESP: unexpected FAT32 geometry: %d bytes per sector, %d per cluster, %d sectors per FAT", bps, spc, fatSectors)
	}
	dataStart := reserved + int64(boot[bpbNumFATs])*fatSectors
	clusters := (total - dataStart) / spc
	if entries := fatSectors * bps / 4; entries < clusters+2 {
		return fmt.Errorf("disk: ESP: the FAT has %d entries, %d clusters need %d", entries, clusters, clusters+2)
	}

	fat := make([]byte, fatSectors*bps)
	if _, err := f.ReadAt(fat, off+reserved*bps); err != nil {
		return fmt.Errorf("disk: ESP: reading the FAT: %w", err)
	}
	// chain lists the clusters of the chain starting at c.
	chain := func(c uint32) ([]uint32, error) {
		var cs []uint32
		for c >= 2 && c < 0x0FFFFFF8 {
			if int64(c) >= clusters+2 || int64(len(cs)) > clusters {
				return nil, fmt.Errorf("disk: ESP: broken cluster chain at %d", c)
			}
			cs = append(cs, c)
			c = le.Uint32(fat[4*c:]) & 0x0FFFFFFF
		}
		return cs, nil
	}
	date, clock := fatDateTime(t)
	root := le.Uint32(boot[bpbRootCluster:])
	type dir struct{ cluster, parent uint32 } // parent 0: the root
	dirs := []dir{{cluster: root}}
	seen := map[uint32]bool{}
	for len(dirs) > 0 {
		d := dirs[0]
		dirs = dirs[1:]
		if seen[d.cluster] {
			return fmt.Errorf("disk: ESP: directory at cluster %d reached twice", d.cluster)
		}
		seen[d.cluster] = true
		cs, err := chain(d.cluster)
		if err != nil {
			return err
		}
		for _, c := range cs {
			at := off + (dataStart+int64(c-2)*spc)*bps
			b := make([]byte, spc*bps)
			if _, err := f.ReadAt(b, at); err != nil {
				return fmt.Errorf("disk: ESP: reading cluster %d: %w", c, err)
			}
			for e := b; len(e) >= 32 && e[0] != 0; e = e[32:] {
				if e[0] == 0xE5 || e[11] == 0x0F { // deleted, long-name part
					continue
				}
				e[13] = 0 // creation time, 10 ms units
				le.PutUint16(e[14:], clock)
				le.PutUint16(e[16:], date)
				le.PutUint16(e[18:], date) // last access
				le.PutUint16(e[22:], clock)
				le.PutUint16(e[24:], date)
				if e[11]&0x10 == 0 {
					continue
				}
				switch string(e[:11]) {
				case ".          ":
				case "..         ": // the parent, 0 for the root
					le.PutUint16(e[20:], uint16(d.parent>>16))
					le.PutUint16(e[26:], uint16(d.parent))
				default:
					sub := uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:]))
					parent := d.cluster
					if parent == root {
						parent = 0
					}
					dirs = append(dirs, dir{cluster: sub, parent: parent})
				}
			}
			if _, err := f.WriteAt(b, at); err != nil {
				return fmt.Errorf("disk: ESP: %w", err)
			}
		}
	}

	var s [4]byte
	le.PutUint32(s[:], serial)
	for _, sector := range []int64{0, int64(le.Uint16(boot[bpbBackupBoot:]))} {
		if _, err := f.WriteAt(s[:], off+sector*bps+bpbVolumeSerial); err != nil {
			return fmt.Errorf("disk: ESP: %w", err)
		}
	}
	return nil
}

// fatDateTime packs t, within FAT's range 1980..2107, into a FAT date
// (year-1980:7 month:4 day:5) and time (hour:5 minute:6 second/2:5).
func fatDateTime(t time.Time) (date, clock uint16) {
	t = t.UTC()
	if lo := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC); t.Before(lo) {
		t = lo
	}
	if hi := time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC); t.After(hi) {
		t = hi
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	clock = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, clock
}
