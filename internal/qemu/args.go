package qemu

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

// Defaults that Args applies to zero fields of a Config.
const (
	// DefaultBinary is the system emulator Start runs when Config.Binary is empty.
	DefaultBinary = "qemu-system-x86_64"
	// DefaultMemoryMiB is the guest memory when Config.MemoryMiB is 0.
	DefaultMemoryMiB = 512
	// DefaultCPUs is the vCPU count when Config.CPUs is 0.
	DefaultCPUs = 1
)

// Machine type used for every guest. q35 (ICH9, PCIe) is what OVMF is
// built and tested for, and SeaBIOS boots from it just as well: virtio-blk
// disks sit on PCIe, CD-ROMs on the built-in AHCI controller.
const machineType = "q35"

// Names of the files Args places in the work directory.
const (
	// ConsoleLogName is the serial console log when Config.SerialLog is empty.
	ConsoleLogName = "console.log"
	// QMPSocketName is the QMP control socket Stop talks to.
	QMPSocketName = "qmp.sock"
	// VarsName is the machine's writable copy of the OVMF variable store.
	VarsName = "OVMF_VARS.fd"
)

// maxSocketPath is the longest path a unix socket can bind on Linux
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// maxCDROMs is the number of ports of q35's built-in AHCI controller.
const maxCDROMs = 6

// Media values of a Drive.
const (
	// MediaDisk attaches the drive as a virtio-blk disk (the default).
	MediaDisk = "disk"
	// MediaCDROM attaches the drive as a read-only CD-ROM on AHCI (ide-cd),
	// as cloud-init NoCloud seeds usually are.
	MediaCDROM = "cdrom"
)

// Forward is a port forward from the host's loopback to the guest through
// QEMU user networking. The host side is always bound to 127.0.0.1.
type Forward struct {
	// Proto is "tcp" (the default when empty) or "udp".
	Proto string
	// HostPort is the port on 127.0.0.1 (see FreePort).
	HostPort int
	// GuestAddr is the guest's IPv4 address; empty means the first
	// address QEMU's DHCP server hands out (10.0.2.15 by default).
	GuestAddr string
	// GuestPort is the port in the guest.
	GuestPort int
}

// NIC is a virtio-net interface on QEMU user networking (slirp): the guest
// gets DHCP, DNS and outbound NAT, and the host reaches it only through
// Forwards.
type NIC struct {
	// Net is the IPv4 network of the user-mode LAN; empty means slirp's
	// default, 10.0.2.0/24.
	Net string
	// Forwards are the host-to-guest port forwards.
	Forwards []Forward
	// MAC is the interface's MAC address; empty lets QEMU pick one.
	MAC string
}

// Drive is a disk image attached to the guest, given to QEMU as a
// -blockdev node graph kiln states whole (see doc.go): QEMU probes no
// format and follows no backing file the image's header names.
type Drive struct {
	// Path is the image file.
	Path string
	// Format is "qcow2" or "raw"; it is required, since letting QEMU probe
	// the format of a raw image a guest can write to is unsafe.
	Format string
	// ReadOnly attaches the image read-only (CD-ROMs always are).
	ReadOnly bool
	// Media is MediaDisk (virtio-blk, the default when empty) or MediaCDROM.
	Media string
	// Backing is the image a qcow2 drive is an overlay of, as kiln made it
	// (with its own Backing, if any). nil means none: a backing file the
	// header names is not opened, and the drive's unallocated clusters read
	// as zeros.
	Backing *Image
}

// image is the drive's image chain.
func (d Drive) image() *Image { return &Image{Path: d.Path, Format: d.Format, Backing: d.Backing} }

// Config describes one QEMU machine. Args turns it into a command line;
// Start runs it.
type Config struct {
	// Binary is the QEMU system emulator; empty means DefaultBinary found
	// in PATH.
	Binary string
	// Accel is the accelerator (see DetectAccel); empty means TCG, which
	// works everywhere.
	Accel Accel
	// CPUModel is the -cpu model; empty means "host" under KVM and "max"
	// (every feature TCG emulates) under TCG.
	CPUModel string
	// Firmware is BIOS (SeaBIOS, the default when empty) or UEFI (OVMF).
	Firmware Firmware
	// MemoryMiB is the guest memory; 0 means DefaultMemoryMiB.
	MemoryMiB int
	// CPUs is the number of vCPUs; 0 means DefaultCPUs.
	CPUs int
	// Drives are attached in order; the order is also the boot order.
	Drives []Drive
	// NICs are virtio-net interfaces on user networking.
	NICs []NIC
	// SerialLog is the file the serial console (the guest's ttyS0) is
	// written to; empty means ConsoleLogName in the work directory. Start
	// truncates it.
	SerialLog string
	// NoReboot makes QEMU exit when the guest reboots, instead of
	// resetting the machine.
	NoReboot bool
	// FirmwareCode and FirmwareVars are, for UEFI, the OVMF code image and
	// variable-store template, as FindFirmware returns them. The template
	// is never written: Start copies it to VarsName in the work directory
	// and the guest gets that copy.
	FirmwareCode, FirmwareVars string
	// ExtraArgs are appended to the command line as they are.
	ExtraArgs []string
}

// Args returns QEMU's command line (without the binary) for running c with
// its state files (console log, QMP socket, OVMF variables) in workDir.
// It only builds a slice: it runs, creates and copies nothing, so it is
// safe to call for planning and in tests.
//
// Every invalid field is reported, joined in one error.
func (c Config) Args(workDir string) ([]string, error) {
	if err := c.validate(workDir); err != nil {
		return nil, err
	}
	accel := c.accel()
	accelOpt := "kvm"
	if accel == TCG {
		// Multi-threaded TCG: one host thread per vCPU. It works (and costs
		// nothing) with a single vCPU.
		accelOpt = "tcg,thread=multi"
	}
	a := []string{
		"-machine", machineType,
		"-accel", accelOpt,
		"-cpu", c.cpuModel(),
		"-m", strconv.Itoa(orDefault(c.MemoryMiB, DefaultMemoryMiB)),
		"-smp", strconv.Itoa(orDefault(c.CPUs, DefaultCPUs)),
		// No implicit VGA, NIC, CD-ROM, floppy, serial or monitor, and no
		// /etc/qemu configuration: the machine is exactly what is listed.
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-monitor", "none",
		"-chardev", "file,id=console0,path=" + escapeOpt(c.consolePath(workDir)),
		"-serial", "chardev:console0",
		"-chardev", "socket,id=qmp0,path=" + escapeOpt(qmpPath(workDir)) + ",server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control",
	}
	if c.NoReboot {
		a = append(a, "-no-reboot")
	}
	if c.Firmware == UEFI {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escapeOpt(drivePath(c.FirmwareCode)),
			"-drive", "if=pflash,format=raw,unit=1,file="+escapeOpt(drivePath(varsPath(workDir))),
		)
	}
	cdroms := 0
	for i, d := range c.Drives {
		id := "drive" + strconv.Itoa(i)
		var node *blockNode
		var dev string
		switch {
		case d.Media == MediaCDROM:
			node = d.image().node(true, "")
			dev = fmt.Sprintf("ide-cd,drive=%s,bus=ide.%d", id, cdroms)
			cdroms++
		case d.ReadOnly:
			node = d.image().node(true, "")
			dev = "virtio-blk-pci,drive=" + id
		default:
			// discard=unmap lets a guest's fstrim shrink the image.
			node = d.image().node(false, "unmap")
			dev = "virtio-blk-pci,drive=" + id
		}
		node.NodeName = id
		a = append(a,
			"-blockdev", node.marshal(),
			"-device", dev+",bootindex="+strconv.Itoa(i),
		)
	}
	for i, n := range c.NICs {
		id := "net" + strconv.Itoa(i)
		opts := []string{"user", "id=" + id}
		if n.Net != "" {
			opts = append(opts, "net="+n.Net)
		}
		for _, f := range n.Forwards {
			opts = append(opts, fmt.Sprintf("hostfwd=%s:127.0.0.1:%d-%s:%d",
				f.proto(), f.HostPort, f.GuestAddr, f.GuestPort))
		}
		// romfile= drops the iPXE option ROM: no network boot attempts, and
		// a faster firmware under TCG.
		dev := "virtio-net-pci,netdev=" + id + ",romfile="
		if n.MAC != "" {
			dev += ",mac=" + strings.ToLower(n.MAC)
		}
		a = append(a, "-netdev", strings.Join(opts, ","), "-device", dev)
	}
	return append(a, c.ExtraArgs...), nil
}

// validate reports every invalid field of c, joined.
func (c Config) validate(workDir string) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("qemu: "+format, args...))
	}
	if workDir == "" {
		bad("work dir is empty")
	} else if p := qmpPath(workDir); len(p) > maxSocketPath {
		bad("QMP socket path %q is longer than %d bytes (a unix socket limit): use a shorter work dir", p, maxSocketPath)
	}
	switch c.Accel {
	case "", TCG:
		if c.CPUModel == "host" {
			bad(`cpu model "host" needs KVM (under TCG use "max" or a named model)`)
		}
	case KVM:
	default:
		bad("unknown accel %q (want kvm or tcg)", c.Accel)
	}
	if c.MemoryMiB < 0 {
		bad("memory %d MiB is negative", c.MemoryMiB)
	}
	if c.CPUs < 0 {
		bad("cpus %d is negative", c.CPUs)
	}
	switch c.Firmware {
	case "", BIOS:
		if c.FirmwareCode != "" || c.FirmwareVars != "" {
			bad("firmware code/vars are set but firmware is bios (set firmware to uefi)")
		}
	case UEFI:
		if c.FirmwareCode == "" || c.FirmwareVars == "" {
			bad("uefi needs FirmwareCode and FirmwareVars (see FindFirmware)")
		}
	default:
		bad("unknown firmware %q (want bios or uefi)", c.Firmware)
	}
	cdroms := 0
	for i, d := range c.Drives {
		for _, err := range d.image().validate(fmt.Sprintf("drives[%d]", i)) {
			bad("%v", err)
		}
		switch d.Media {
		case "", MediaDisk:
		case MediaCDROM:
			cdroms++
		default:
			bad("drives[%d]: unknown media %q (want disk or cdrom)", i, d.Media)
		}
	}
	if cdroms > maxCDROMs {
		bad("%d cdrom drives, at most %d fit on the AHCI controller", cdroms, maxCDROMs)
	}
	for i, n := range c.NICs {
		if n.Net != "" {
			if ip, _, err := net.ParseCIDR(n.Net); err != nil || ip.To4() == nil {
				bad("nics[%d]: net %q is not an IPv4 CIDR such as 10.0.2.0/24", i, n.Net)
			}
		}
		if n.MAC != "" {
			if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
				bad("nics[%d]: mac %q is not a MAC address such as 52:54:00:12:34:56", i, n.MAC)
			}
		}
		for j, f := range n.Forwards {
			if p := f.proto(); p != "tcp" && p != "udp" {
				bad("nics[%d].forwards[%d]: proto %q is not tcp or udp", i, j, f.Proto)
			}
			if !validPort(f.HostPort) {
				bad("nics[%d].forwards[%d]: host port %d is not in 1-65535", i, j, f.HostPort)
			}
			if !validPort(f.GuestPort) {
				bad("nics[%d].forwards[%d]: guest port %d is not in 1-65535", i, j, f.GuestPort)
			}
			if f.GuestAddr != "" {
				if ip := net.ParseIP(f.GuestAddr); ip == nil || ip.To4() == nil {
					bad("nics[%d].forwards[%d]: guest addr %q is not an IPv4 address", i, j, f.GuestAddr)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (c Config) accel() Accel {
	if c.Accel == "" {
		return TCG
	}
	return c.Accel
}

func (c Config) cpuModel() string {
	switch {
	case c.CPUModel != "":
		return c.CPUModel
	case c.accel() == KVM:
		return "host"
	default:
		// Under TCG (QEMU 7.2), "max" booted a Debian 12 cloud kernel and ran
		// a CPU-bound init to power-off in about 6.5 s against 9.5 s for
		// qemu64 (hashing uses the SHA and AVX2 instructions TCG emulates),
		// and unlike qemu64 it satisfies guests built for x86-64-v2/v3.
		return "max"
	}
}

// consolePath is where the serial console is written.
func (c Config) consolePath(workDir string) string {
	if c.SerialLog != "" {
		return c.SerialLog
	}
	return filepath.Join(workDir, ConsoleLogName)
}

func qmpPath(workDir string) string  { return filepath.Join(workDir, QMPSocketName) }
func varsPath(workDir string) string { return filepath.Join(workDir, VarsName) }

func (f Forward) proto() string {
	if f.Proto == "" {
		return "tcp"
	}
	return f.Proto
}

func validPort(p int) bool { return p > 0 && p < 65536 }

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// escapeOpt escapes a value for QEMU's key=value,key=value option syntax,
// where a literal comma is written twice.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// drivePath keeps QEMU from reading a relative file name with a colon
// before its first slash ("a:b.img") as a protocol prefix.
func drivePath(p string) string {
	if colon := strings.IndexByte(p, ':'); colon >= 0 && !filepath.IsAbs(p) {
		if slash := strings.IndexByte(p, '/'); slash < 0 || colon < slash {
			return "./" + p
		}
	}
	return p
}
