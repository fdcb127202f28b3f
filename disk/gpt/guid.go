package gpt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a GUID as stored on disk (mixed-endian, see doc.go).
type GUID [16]byte

// Partition type GUIDs kiln uses.
var (
	TypeEFISystem         = MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	TypeBIOSBoot          = MustParseGUID("21686148-6449-6E6F-744E-656564454649")
	TypeLinuxFilesystem   = MustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	TypeLinuxRootX86_64   = MustParseGUID("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709")
	TypeLinuxSwap         = MustParseGUID("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F")
	TypeLinuxRootARM64    = MustParseGUID("B921B045-1DF0-41C3-AF44-4C6F280D3FAE")
	TypeLinuxExtendedBoot = MustParseGUID("BC13C2FF-59E6-4262-A352-B275FD6F7172")
)

// String returns the canonical upper-case form sgdisk prints,
// "C12A7328-F81F-11D2-BA4B-00A0C93EC93B".
func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]),
		g[8:10], g[10:16])
}

// IsZero reports whether g is all zeros (an unused entry's type).
func (g GUID) IsZero() bool { return g == GUID{} }

// ParseGUID parses the canonical text form, in either case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(s) != 36 || len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 ||
		len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("gpt: invalid GUID %q", s)
	}
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("gpt: invalid GUID %q", s)
	}
	return fromUUID([16]byte(b)), nil
}

// MustParseGUID is ParseGUID for constants; it panics on bad input.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// fromUUID converts big-endian (RFC 4122 byte order) to disk order.
func fromUUID(u [16]byte) GUID {
	g := GUID(u)
	g[0], g[1], g[2], g[3] = u[3], u[2], u[1], u[0]
	g[4], g[5] = u[5], u[4]
	g[6], g[7] = u[7], u[6]
	return g
}

// DeriveGUID returns a GUID that depends only on parts, for reproducible
// builds: the first 16 bytes of a SHA-256 over the length-prefixed parts,
// with the RFC 4122 version (4) and variant bits set so tools that check
// them are content.
func DeriveGUID(parts ...string) GUID {
	h := sha256.New()
	for _, p := range parts {
		h.Write(binary.AppendUvarint(nil, uint64(len(p))))
		h.Write([]byte(p))
	}
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0F | 0x40
	u[8] = u[8]&0x3F | 0x80
	return fromUUID(u)
}
