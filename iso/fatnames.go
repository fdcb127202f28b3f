package iso

import (
	"strconv"
	"strings"
)

// VFAT names: every file has an 8.3 short entry; when the real name is not
// exactly a valid upper-case 8.3 name, long-file-name (LFN) entries holding
// it in UTF-16 precede the short entry.

// shortChars are the characters besides A-Z and 0-9 allowed in 8.3 names
// (fatgen103 §6.1); lower case is not, and + , ; = [ ] space are LFN-only.
const shortChars = "!#$%&'()-@^_`{}~"

func isShortChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(shortChars, c) >= 0
}

// fitsShort reports whether name already is a valid 8.3 name, so it needs
// no LFN and no numeric tail ("README", "A.TXT").
func fitsShort(name string) bool {
	base, ext, _ := strings.Cut(name, ".")
	if base == "" || len(base) > 8 || len(ext) > 3 || strings.Contains(ext, ".") {
		return false
	}
	for i := 0; i < len(base); i++ {
		if !isShortChar(base[i]) {
			return false
		}
	}
	for i := 0; i < len(ext); i++ {
		if !isShortChar(ext[i]) {
			return false
		}
	}
	return strings.Contains(name, ".") == (ext != "")
}

// fatShortNames picks the 8.3 name of every entry, after the Windows
// scheme in fatgen103 §7: upper-case, drop spaces and leading dots, turn
// other invalid characters into '_', base up to 8 and extension (after the
// last dot) up to 3 characters. If anything was lost the base gets a
// "~N" tail: "user-data" -> "USER-D~1", "network-config" -> "NETWOR~1".
// Names that already fit are reserved first so tails never take them.
// needLFN reports which entries need long-name entries.
func fatShortNames(names []string) (shorts []string, needLFN []bool) {
	type basis struct {
		base, ext string
		tail      bool
	}
	bases := make([]basis, len(names))
	used := map[string]bool{}
	for i, name := range names {
		if fitsShort(name) {
			base, ext, _ := strings.Cut(name, ".")
			bases[i] = basis{base: base, ext: ext}
			used[packShort(base, ext)] = true
			continue
		}
		up := strings.ReplaceAll(strings.ToUpper(name), " ", "")
		lossy := len(up) != len(name)
		if t := strings.TrimLeft(up, "."); t != up {
			up, lossy = t, true
		}
		base, ext := up, ""
		if j := strings.LastIndexByte(up, '.'); j >= 0 {
			base, ext = up[:j], up[j+1:]
		}
		base, l1 := shortClean(base)
		ext, l2 := shortClean(ext)
		if base == "" {
			base, lossy = "_", true
		}
		b := basis{base: base[:min(len(base), 8)], ext: ext[:min(len(ext), 3)]}
		b.tail = lossy || l1 || l2 || len(base) > 8 || len(ext) > 3
		bases[i] = b
	}
	for i, b := range bases {
		if fitsShort(names[i]) || b.tail {
			continue
		}
		// A lossless basis can only clash through case, which
		// checkEntries rejects; a tail keeps this safe regardless.
		if s := packShort(b.base, b.ext); used[s] {
			bases[i].tail = true
		} else {
			used[s] = true
		}
	}
	shorts = make([]string, len(names))
	needLFN = make([]bool, len(names))
	for i, b := range bases {
		needLFN[i] = !fitsShort(names[i])
		s := packShort(b.base, b.ext)
		if b.tail {
			for n := 1; ; n++ {
				tail := "~" + strconv.Itoa(n)
				s = packShort(b.base[:min(len(b.base), 8-len(tail))]+tail, b.ext)
				if !used[s] {
					break
				}
			}
			used[s] = true
		}
		shorts[i] = s
	}
	return shorts, needLFN
}

// shortClean replaces characters not allowed in 8.3 names (including
// remaining dots) with '_' and reports whether it had to.
func shortClean(s string) (string, bool) {
	b := []byte(s)
	lossy := false
	for i, c := range b {
		if !isShortChar(c) {
			b[i], lossy = '_', true
		}
	}
	return string(b), lossy
}

// packShort is the 11-byte on-disk form: base and extension space padded.
func packShort(base, ext string) string {
	return base + strings.Repeat(" ", 8-len(base)) + ext + strings.Repeat(" ", 3-len(ext))
}

// lfnChecksum is the checksum of the 11-byte short name stored in each of
// its LFN entries (rotate right, add), fatgen103 §7.
func lfnChecksum(short string) byte {
	var sum byte
	for i := 0; i < 11; i++ {
		sum = (sum>>1 | sum<<7) + short[i]
	}
	return sum
}

// lfnOffsets are where the 13 UTF-16 code units sit in an LFN entry.
var lfnOffsets = [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}

// lfnEntries builds the long-name entries for name, last part first as
// they appear on disk. Each holds 13 code units: the name, a 0x0000
// terminator if there is room, then 0xFFFF padding. Byte 0 is the sequence
// number (0x40 marks the last part), 11 the LFN attribute 0x0F, 13 the
// short-name checksum; the cluster field (26) is 0.
func lfnEntries(name, short string) []byte {
	n := (len(name) + 12) / 13
	out := make([]byte, 0, 32*n)
	sum := lfnChecksum(short)
	for seq := n; seq >= 1; seq-- {
		e := make([]byte, 32)
		e[0] = byte(seq)
		if seq == n {
			e[0] |= 0x40
		}
		e[11], e[13] = 0x0f, sum
		for k, off := range lfnOffsets {
			i := (seq-1)*13 + k
			var u uint16 = 0xffff
			switch {
			case i < len(name):
				u = uint16(name[i])
			case i == len(name):
				u = 0
			}
			e[off], e[off+1] = byte(u), byte(u>>8)
		}
		out = append(out, e...)
	}
	return out
}
