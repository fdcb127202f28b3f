package boot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kiln-project/kiln/internal/qemu"
)

// Machine is a running guest: what kiln needs of a QEMU process.
// *qemu.Machine implements it; tests use fakes.
type Machine interface {
	// Wait waits for QEMU to exit, until ctx ends.
	Wait(ctx context.Context) error
	// Kill ends QEMU at once.
	Kill() error
	// Stop presses the guest's power button (ACPI) and waits for it to
	// power off, until ctx ends.
	Stop(ctx context.Context) error
	// Done is closed once QEMU has exited.
	Done() <-chan struct{}
	// SerialLog is the file the serial console is written to.
	SerialLog() string
	// ConsoleTail is the console's last n lines.
	ConsoleTail(n int) string
	// FollowConsole calls fn with each console line until fn returns
	// false, ctx ends or QEMU exits.
	FollowConsole(ctx context.Context, fn func(line string) bool)
}

// ImageTool is what boot needs of qemu-img. qemu.Img implements it.
type ImageTool interface {
	CreateOverlay(ctx context.Context, base, baseFormat, overlay string, size int64) error
	CreateBlank(ctx context.Context, path string, size int64) error
}

// Runner starts guests. The zero value uses the real qemu-img and QEMU.
type Runner struct {
	// Img makes overlays and blank disks; default qemu.Img{}.
	Img ImageTool
	// Launch starts QEMU; default qemu.Start.
	Launch func(ctx context.Context, cfg qemu.Config, workDir string) (Machine, error)
	// Firmware finds OVMF for UEFI guests; default qemu.FindFirmware.
	Firmware func(qemu.Firmware) (code, vars string, err error)
}

func (r Runner) img() ImageTool {
	if r.Img == nil {
		return qemu.Img{}
	}
	return r.Img
}

func (r Runner) launch(ctx context.Context, cfg qemu.Config, work string) (Machine, error) {
	if r.Launch != nil {
		return r.Launch(ctx, cfg, work)
	}
	return qemu.Start(ctx, cfg, work)
}

func (r Runner) firmware(fw qemu.Firmware) (string, string, error) {
	if r.Firmware != nil {
		return r.Firmware(fw)
	}
	return qemu.FindFirmware(fw)
}

// Spec describes a guest to boot.
type Spec struct {
	// Image is the disk image to boot and Format its format (qcow2 or
	// raw). The guest writes to an overlay in WorkDir; Image is never
	// modified. Callers check an image kiln did not make first (image.Check) and
	// state its format: it is never probed, and a backing file its header
	// names is never opened (QEMU is given the whole chain).
	Image, Format string
	// Size is the overlay's virtual size in bytes; 0 keeps the image's.
	Size int64
	// DataDisks are blank disks of these sizes, attached after the system
	// disk.
	DataDisks []int64
	// Seed is the NoCloud seed image, attached last, read-only.
	Seed string
	// Firmware is BIOS (default) or UEFI; Accel the accelerator (default TCG).
	Firmware qemu.Firmware
	Accel    qemu.Accel
	// MemoryMiB is the guest's memory; default 512.
	MemoryMiB int
	// NICs are the guest's network interfaces, eth0 first; no NICs means
	// one with no forwards.
	NICs []NIC
	// WorkDir holds the overlay, the disks, the console log and QEMU's
	// sockets; it must exist.
	WorkDir string
}

// NIC is a network interface on its own QEMU user network.
type NIC struct {
	// Net is the user network's IPv4 CIDR; empty means QEMU's 10.0.2.0/24.
	Net string
	// Forwards are guest ports reachable from 127.0.0.1.
	Forwards []Forward
}

// Forward asks for a guest port to be reachable from a free port on
// 127.0.0.1.
type Forward struct {
	Proto     string // tcp (default) or udp
	GuestAddr string // empty: the address QEMU's DHCP hands out
	GuestPort int
}

// VM is a started guest.
type VM struct {
	Machine
	// Overlay is the disk the guest writes to.
	Overlay string
	addrs   map[string]string
}

// Addr is the host address forwarded to a TCP port of the first interface.
func (vm *VM) Addr(guestPort int) (string, error) { return vm.AddrOn(0, "tcp", guestPort) }

// AddrOn is the host address forwarded to a port on interface nic.
func (vm *VM) AddrOn(nic int, proto string, guestPort int) (string, error) {
	if proto == "" {
		proto = "tcp"
	}
	if a, ok := vm.addrs[fwdKey(nic, proto, guestPort)]; ok {
		return a, nil
	}
	return "", fmt.Errorf("%s port %d on interface %d is not forwarded", proto, guestPort, nic)
}

func fwdKey(nic int, proto string, port int) string { return fmt.Sprintf("%d/%s/%d", nic, proto, port) }

// Alive returns an error once QEMU has exited: for waits that should end
// early when the guest is gone.
func (vm *VM) Alive(ctx context.Context) error {
	select {
	case <-vm.Done():
		return fmt.Errorf("the VM stopped: %v", vm.Wait(ctx))
	default:
		return nil
	}
}

// Start boots s. The caller kills the VM when done (Kill is safe to call
// more than once) and removes the work directory.
func (r Runner) Start(ctx context.Context, s Spec) (*VM, error) {
	cfg, vm, err := r.Config(ctx, s)
	if err != nil {
		return nil, err
	}
	m, err := r.launch(ctx, cfg, s.WorkDir)
	if err != nil {
		return nil, err
	}
	vm.Machine = m
	return vm, nil
}

// Config prepares s's disks in its work dir and returns the QEMU machine
// that boots it, with its forwards allocated; Start launches it.
func (r Runner) Config(ctx context.Context, s Spec) (qemu.Config, *VM, error) {
	if s.Format != "qcow2" && s.Format != "raw" {
		return qemu.Config{}, nil, fmt.Errorf("boot: %s: format %q is not qcow2 or raw", s.Image, s.Format)
	}
	if st, err := os.Stat(s.WorkDir); err != nil || !st.IsDir() {
		return qemu.Config{}, nil, fmt.Errorf("boot: work dir %q is not a directory", s.WorkDir)
	}
	image, err := filepath.Abs(s.Image)
	if err != nil {
		return qemu.Config{}, nil, err
	}
	vm := &VM{Overlay: filepath.Join(s.WorkDir, "overlay.qcow2"), addrs: map[string]string{}}
	if err := r.img().CreateOverlay(ctx, image, s.Format, vm.Overlay, s.Size); err != nil {
		return qemu.Config{}, nil, err
	}
	// The chain is stated, image at the bottom with no backing of its own:
	// whatever its header names, QEMU opens nothing else.
	drives := []qemu.Drive{{Path: vm.Overlay, Format: "qcow2", Backing: &qemu.Image{Path: image, Format: s.Format}}}
	for i, size := range s.DataDisks {
		p := filepath.Join(s.WorkDir, fmt.Sprintf("data%d.qcow2", i))
		if err := r.img().CreateBlank(ctx, p, size); err != nil {
			return qemu.Config{}, nil, err
		}
		drives = append(drives, qemu.Drive{Path: p, Format: "qcow2"})
	}
	if s.Seed != "" {
		drives = append(drives, qemu.Drive{Path: s.Seed, Format: "raw", ReadOnly: true})
	}
	nics := s.NICs
	if len(nics) == 0 {
		nics = []NIC{{}}
	}
	var qnics []qemu.NIC
	for i, n := range nics {
		qn := qemu.NIC{Net: n.Net}
		for _, f := range n.Forwards {
			proto := f.Proto
			if proto == "" {
				proto = "tcp"
			}
			if _, dup := vm.addrs[fwdKey(i, proto, f.GuestPort)]; dup {
				continue
			}
			host, err := qemu.FreePort(proto)
			if err != nil {
				return qemu.Config{}, nil, err
			}
			vm.addrs[fwdKey(i, proto, f.GuestPort)] = fmt.Sprintf("127.0.0.1:%d", host)
			qn.Forwards = append(qn.Forwards, qemu.Forward{Proto: proto, HostPort: host, GuestAddr: f.GuestAddr, GuestPort: f.GuestPort})
		}
		qnics = append(qnics, qn)
	}
	cfg := qemu.Config{Accel: s.Accel, Firmware: s.Firmware, MemoryMiB: s.MemoryMiB, Drives: drives, NICs: qnics}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 512
	}
	if s.Firmware == qemu.UEFI {
		if cfg.FirmwareCode, cfg.FirmwareVars, err = r.firmware(s.Firmware); err != nil {
			return qemu.Config{}, nil, err
		}
	}
	return cfg, vm, nil
}
