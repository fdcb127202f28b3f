package qemu_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/qemu"
)

// A bake boots the work disk with its seed, waits for cloud-init to power
// the guest off, and stops it by force only when it does not.
func ExampleStart() {
	ctx := context.Background()
	accel, why := qemu.DetectAccel()
	log.Printf("accelerator: %s (%s)", accel, why)
	code, vars, err := qemu.FindFirmware(qemu.UEFI)
	if err != nil {
		log.Fatal(err)
	}
	sshPort, err := qemu.FreePort("tcp")
	if err != nil {
		log.Fatal(err)
	}
	m, err := qemu.Start(ctx, qemu.Config{
		Accel:        accel,
		Firmware:     qemu.UEFI,
		FirmwareCode: code,
		FirmwareVars: vars,
		MemoryMiB:    1024,
		Drives: []qemu.Drive{
			{Path: "work/disk.qcow2", Format: "qcow2"},
			{Path: "work/seed.iso", Format: "raw", Media: qemu.MediaCDROM},
		},
		NICs:     []qemu.NIC{{Forwards: []qemu.Forward{{HostPort: sshPort, GuestPort: 22}}}},
		NoReboot: true,
	}, "work/vm")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Kill()

	boot, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// cloud-init's banner on the serial console: the guest is up.
	if err := m.WaitConsole(boot, "Cloud-init v."); err != nil {
		log.Fatal(err) // quotes the last console lines
	}
	// cloud-init's power_state module powers the guest off when done.
	if err := m.Wait(boot); err != nil {
		// Press the power button; Stop kills QEMU if the guest ignores it.
		stop, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_ = m.Stop(stop)
		log.Fatal(err)
	}
}

// Args is a pure function: the command line can be shown, or tested,
// without running anything.
func ExampleConfig_Args() {
	c := qemu.Config{
		Accel:     qemu.TCG,
		MemoryMiB: 64,
		Drives:    []qemu.Drive{{Path: "/tmp/vm/disk.img", Format: "raw"}},
		NICs:      []qemu.NIC{{Forwards: []qemu.Forward{{HostPort: 2222, GuestPort: 22}}}},
		NoReboot:  true,
	}
	args, err := c.Args("/tmp/vm")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Join(args, " "))
	// Output:
	// -machine q35 -accel tcg,thread=multi -cpu max -m 64 -smp 1 -nodefaults -no-user-config -display none -monitor none -chardev file,id=console0,path=/tmp/vm/console.log -serial chardev:console0 -chardev socket,id=qmp0,path=/tmp/vm/qmp.sock,server=on,wait=off -mon chardev=qmp0,mode=control -no-reboot -blockdev {"driver":"raw","node-name":"drive0","discard":"unmap","file":{"driver":"file","filename":"/tmp/vm/disk.img","discard":"unmap"}} -device virtio-blk-pci,drive=drive0,bootindex=0 -netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0,romfile=
}
