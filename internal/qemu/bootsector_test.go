package qemu

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Modes of the test boot sector, stored in its mode byte (offset 0x3F).
const (
	// modePowerOff: print the marker, then power off at once through ACPI.
	modePowerOff = 'P'
	// modePowerButton: print the marker, then wait for an ACPI power button
	// press (QMP system_powerdown) and power off, as a guest OS would.
	modePowerButton = 'B'
	// modeDebugExit: print the marker, then write 0x10 to the isa-debug-exit
	// port 0xF4, which makes QEMU exit with status (0x10<<1)|1 = 33.
	modeDebugExit = 'X'
)

// bootMarker is what the boot sector writes to COM1.
const bootMarker = "KILN-BOOT-OK"

// debugExitStatus is QEMU's exit status after modeDebugExit.
const debugExitStatus = 0x10<<1 | 1

// debugExitDevice is the device modeDebugExit needs.
var debugExitDevice = []string{"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}

// bootListing is a hand-assembled 16-bit real-mode program that the BIOS
// loads at 0000:7C00, as a listing: offset, machine code bytes (hex),
// instruction and comment. bootCode parses the bytes and checks every
// offset, so the listing and the code cannot drift apart.
//
// It uses only relative jumps and absolute addresses with DS=0, so it runs
// whether the BIOS enters at 0000:7C00 or 07C0:0000. COM1's transmit
// register is written without polling the line status: QEMU's UART with a
// file backend transmits each byte at once. The ACPI PM1 registers are at
// I/O port 0x600, where SeaBIOS maps them on both q35 (ICH9) and pc
// (PIIX4); QEMU's DSDT gives S5 (soft off) sleep type 0. To disassemble a
// written disk: objdump -D -b binary -mi386 -Maddr16,data16 --stop-address=0x3f disk.img
const bootListing = `
00  FA        cli               ; no interrupts: nothing below expects any
01  FC        cld               ; lodsb counts upwards
02  31 C0     xor  ax, ax
04  8E D8     mov  ds, ax       ; DS = 0: absolute addresses below
06  BE 40 7C  mov  si, 0x7C40   ; SI = the message at sector offset 0x40
09  BA F8 03  mov  dx, 0x3F8    ; DX = COM1 transmit register
0C  AC        lodsb             ; print: AL = next message byte
0D  84 C0     test al, al
0F  74 03     jz   0x14         ; NUL: message done
11  EE        out  dx, al       ; send the byte
12  EB F8     jmp  0x0C         ; -> print
14  A0 3F 7C  mov  al, [0x7C3F] ; AL = mode byte at sector offset 0x3F
17  3C 58     cmp  al, 'X'
19  74 1E     je   0x39         ; -> debug exit
1B  3C 42     cmp  al, 'B'
1D  75 10     jne  0x2F         ; -> power off now
1F  BA 02 06  mov  dx, 0x602    ; PM1_EN
22  B8 00 01  mov  ax, 0x0100   ; PWRBTN_EN (bit 8)
25  EF        out  dx, ax       ; enable power button events
26  BA 00 06  mov  dx, 0x600    ; PM1_STS
29  ED        in   ax, dx       ; wait: read the status
2A  F6 C4 01  test ah, 1        ; PWRBTN_STS (bit 8)
2D  74 FA     jz   0x29         ; -> wait, until the button is pressed
2F  BA 04 06  mov  dx, 0x604    ; power off: PM1_CNT
32  B8 00 20  mov  ax, 0x2000   ; SLP_EN (bit 13) with SLP_TYP 0 = S5
35  EF        out  dx, ax       ; QEMU powers off and exits with status 0
36  F4        hlt               ; halt (interrupts are off: for good)
37  EB FD     jmp  0x36
39  B0 10     mov  al, 0x10     ; debug exit: value 0x10
3B  E6 F4     out  0xF4, al     ; isa-debug-exit: QEMU exits with (0x10<<1)|1 = 33
3D  EB F7     jmp  0x36         ; -> halt
`

// bootCode is the machine code of bootListing.
var bootCode = assembleListing(bootListing)

// assembleListing returns the bytes of a listing whose lines are
// "OFFSET  BYTES...  instruction ; comment", panicking when an offset does
// not follow from the bytes before it.
func assembleListing(listing string) []byte {
	var code []byte
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(line)
		off, err := strconv.ParseUint(f[0], 16, 16)
		if err != nil || int(off) != len(code) {
			panic(fmt.Sprintf("listing line %q: offset is not %#x", line, len(code)))
		}
		for _, h := range f[1:] {
			b, err := strconv.ParseUint(h, 16, 8)
			if len(h) != 2 || err != nil {
				break // the instruction starts
			}
			code = append(code, byte(b))
		}
	}
	return code
}

// bootSector returns the 512-byte MBR: bootCode, the mode byte at 0x3F,
// the NUL-terminated message (bootMarker) at 0x40, and the 0x55 0xAA
// signature at 510.
func bootSector(mode byte) []byte { return bootSectorSaying(mode, bootMarker) }

// bootSectorSaying is bootSector with another message, of at most 440
// bytes.
func bootSectorSaying(mode byte, msg string) []byte {
	s := make([]byte, 512)
	copy(s, bootCode)
	s[0x3F] = mode
	copy(s[0x40:0x1FE], msg+"\r\n\x00")
	s[510], s[511] = 0x55, 0xAA
	return s
}

// writeBootDisk writes a 1 MiB raw disk starting with the boot sector
// (SeaBIOS will not boot a disk too small to have a cylinder).
func writeBootDisk(t *testing.T, dir string, mode byte) string {
	t.Helper()
	return writeBootDiskSaying(t, filepath.Join(dir, "disk.img"), mode, bootMarker)
}

// writeBootDiskSaying writes, at p, a boot disk printing msg.
func writeBootDiskSaying(t *testing.T, p string, mode byte, msg string) string {
	t.Helper()
	if err := os.WriteFile(p, bootSectorSaying(mode, msg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBootSector(t *testing.T) {
	// The bytes objdump disassembled to the listing's instructions.
	const want = "fafc31c08ed8be407cbaf803ac84c07403eeebf8a03f7c3c58741e3c427510" +
		"ba0206b80001efba0006edf6c40174faba0406b80020eff4ebfdb010e6f4ebf7"
	if got := hex.EncodeToString(bootCode); got != want {
		t.Errorf("bootCode = %s\nwant       %s", got, want)
	}
	if len(bootCode) != 0x3F {
		t.Fatalf("boot code is %#x bytes, the mode byte expects %#x", len(bootCode), 0x3F)
	}
	s := bootSector(modeDebugExit)
	if len(s) != 512 || s[510] != 0x55 || s[511] != 0xAA || s[0x3F] != 'X' || string(s[0x40:0x40+len(bootMarker)]) != bootMarker {
		t.Errorf("bad boot sector: % x", s)
	}
}
