package iso

// Rock Ridge (RRIP 1.09, "RRIP_1991A") on top of SUSP (IEEE P1281). Every
// SUSP entry is: 2-byte signature, 1-byte total length, 1-byte version (1),
// then its payload. They live in the System Use area at the end of each
// primary-tree directory record.

// Standard texts of the RRIP_1991A extension reference (ER) entry, as
// genisoimage and xorriso write them.
const (
	rripID     = "RRIP_1991A"
	rripDesc   = "THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
	rripSource = "PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."
)

// POSIX modes recorded in PX: read-only directories (the medium is
// read-only), files as cloud-localds leaves them.
const (
	modeDir  = 0o040555
	modeFile = 0o100644
)

// RR flags (which RRIP entries follow), RRIP 1.09 §4.1.7.
const (
	rrPX = 0x01
	rrNM = 0x08
	rrTF = 0x80
)

func suspHeader(sig string, length int) []byte {
	b := make([]byte, length)
	b[0], b[1], b[2], b[3] = sig[0], sig[1], byte(length), 1
	return b
}

// suspSP marks SUSP as in use; it must be the first entry of the root
// directory's "." record. Bytes 4-5 are the check bytes BE EF, byte 6 the
// number of bytes to skip in every other System Use area (0).
func suspSP() []byte {
	b := suspHeader("SP", 7)
	b[4], b[5] = 0xbe, 0xef
	return b
}

// rripRR lists which RRIP entries the record carries. Linux stops reading
// Rock Ridge for a record whose RR has none of PX/TF/SL/CL set, so the
// flags must be honest.
func rripRR(flags byte) []byte {
	b := suspHeader("RR", 5)
	b[4] = flags
	return b
}

// rripPX holds POSIX mode, link count, uid and gid, each both-endian
// 32-bit (the 36-byte RRIP 1.09 form, without the inode number).
func rripPX(mode, nlink uint32) []byte {
	b := suspHeader("PX", 36)
	put733(b[4:], mode)
	put733(b[12:], nlink)
	// uid (20-27) and gid (28-35) stay 0: root.
	return b
}

// rripTF holds the modify, access and attribute-change times (flags
// 0x0E), each in the 7-byte directory-record date format.
func rripTF(date [7]byte) []byte {
	b := suspHeader("TF", 5+3*7)
	b[4] = 0x0e
	for i := range 3 {
		copy(b[5+7*i:], date[:])
	}
	return b
}

// rripNM holds the real file name. Names are at most 64 bytes, so one NM
// entry (flags 0, no continuation) always suffices.
func rripNM(name string) []byte {
	b := suspHeader("NM", 5+len(name))
	copy(b[5:], name)
	return b
}

// suspCE points at a continuation area: block, offset in block and length,
// each both-endian 32-bit.
func suspCE(block, offset, length uint32) []byte {
	b := suspHeader("CE", 28)
	put733(b[4:], block)
	put733(b[12:], offset)
	put733(b[20:], length)
	return b
}

// suspER announces the RRIP_1991A extension (version 1). At 237 bytes it
// does not fit in the root "." record beside SP/PX/TF, hence the CE.
func suspER() []byte {
	b := suspHeader("ER", 8+len(rripID)+len(rripDesc)+len(rripSource))
	b[4], b[5], b[6], b[7] = byte(len(rripID)), byte(len(rripDesc)), byte(len(rripSource)), 1
	n := copy(b[8:], rripID)
	n += copy(b[8+n:], rripDesc)
	copy(b[8+n:], rripSource)
	return b
}

// concat joins SUSP entries into one System Use area.
func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
