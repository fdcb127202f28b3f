package qemu

import (
	"slices"
	"strings"
	"testing"
)

// TestArgs_BIOS pins the whole command line of a typical bake under
// SeaBIOS: a qcow2 disk, a NoCloud seed on a CD-ROM, one forward.
func TestArgs_BIOS(t *testing.T) {
	c := Config{
		Accel:     TCG,
		Firmware:  BIOS,
		MemoryMiB: 1024,
		CPUs:      2,
		Drives: []Drive{
			{Path: "/w/disk.qcow2", Format: "qcow2"},
			{Path: "/w/seed.iso", Format: "raw", Media: MediaCDROM},
		},
		NICs:     []NIC{{Forwards: []Forward{{HostPort: 2222, GuestPort: 22}}}},
		NoReboot: true,
	}
	got, err := c.Args("/w")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-machine", "q35",
		"-accel", "tcg,thread=multi",
		"-cpu", "max",
		"-m", "1024",
		"-smp", "2",
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-monitor", "none",
		"-chardev", "file,id=console0,path=/w/console.log",
		"-serial", "chardev:console0",
		"-chardev", "socket,id=qmp0,path=/w/qmp.sock,server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control",
		"-no-reboot",
		"-blockdev", `{"driver":"qcow2","node-name":"drive0","discard":"unmap","file":{"driver":"file","filename":"/w/disk.qcow2","discard":"unmap"},"backing":null}`,
		"-device", "virtio-blk-pci,drive=drive0,bootindex=0",
		"-blockdev", `{"driver":"raw","node-name":"drive1","read-only":true,"file":{"driver":"file","filename":"/w/seed.iso","read-only":true}}`,
		"-device", "ide-cd,drive=drive1,bus=ide.0,bootindex=1",
		"-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
		"-device", "virtio-net-pci,netdev=net0,romfile=",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Args =\n%s\nwant\n%s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

// TestArgs_UEFI pins the command line of a UEFI boot: OVMF code read-only,
// the machine's own copy of the variable store writable.
func TestArgs_UEFI(t *testing.T) {
	c := Config{
		Firmware:     UEFI,
		FirmwareCode: "/usr/share/OVMF/OVMF_CODE_4M.fd",
		FirmwareVars: "/usr/share/OVMF/OVMF_VARS_4M.fd",
		Drives:       []Drive{{Path: "/w/disk.qcow2", Format: "qcow2"}},
		SerialLog:    "/logs/serial.txt",
	}
	got, err := c.Args("/w")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-machine", "q35",
		"-accel", "tcg,thread=multi",
		"-cpu", "max",
		"-m", "512",
		"-smp", "1",
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-monitor", "none",
		"-chardev", "file,id=console0,path=/logs/serial.txt",
		"-serial", "chardev:console0",
		"-chardev", "socket,id=qmp0,path=/w/qmp.sock,server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
		"-drive", "if=pflash,format=raw,unit=1,file=/w/OVMF_VARS.fd",
		"-blockdev", `{"driver":"qcow2","node-name":"drive0","discard":"unmap","file":{"driver":"file","filename":"/w/disk.qcow2","discard":"unmap"},"backing":null}`,
		"-device", "virtio-blk-pci,drive=drive0,bootindex=0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Args =\n%s\nwant\n%s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

func TestArgs_Variants(t *testing.T) {
	tests := []struct {
		name   string
		c      Config
		has    [][]string // consecutive argv items that must appear
		hasNot []string   // items that must not appear
	}{
		{
			name:   "kvm uses the host cpu",
			c:      Config{Accel: KVM},
			has:    [][]string{{"-accel", "kvm"}, {"-cpu", "host"}},
			hasNot: []string{"tcg,thread=multi"},
		},
		{
			name: "empty accel is tcg",
			c:    Config{},
			has:  [][]string{{"-accel", "tcg,thread=multi"}, {"-cpu", "max"}},
		},
		{
			name: "explicit cpu model",
			c:    Config{Accel: TCG, CPUModel: "qemu64"},
			has:  [][]string{{"-cpu", "qemu64"}},
		},
		{
			name:   "reboot allowed by default",
			c:      Config{},
			hasNot: []string{"-no-reboot"},
		},
		{
			name: "forwards: udp, guest address, several, custom net and mac",
			c: Config{NICs: []NIC{{
				Net: "192.168.76.0/24",
				MAC: "52:54:00:AB:CD:EF",
				Forwards: []Forward{
					{Proto: "tcp", HostPort: 8080, GuestPort: 80},
					{Proto: "udp", HostPort: 5353, GuestAddr: "192.168.76.15", GuestPort: 53},
				},
			}}},
			has: [][]string{
				{"-netdev", "user,id=net0,net=192.168.76.0/24,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-192.168.76.15:53"},
				{"-device", "virtio-net-pci,netdev=net0,romfile=,mac=52:54:00:ab:cd:ef"},
			},
		},
		{
			name: "two nics",
			c:    Config{NICs: []NIC{{}, {}}},
			has:  [][]string{{"-netdev", "user,id=net0"}, {"-netdev", "user,id=net1"}, {"-device", "virtio-net-pci,netdev=net1,romfile="}},
		},
		{
			name: "read-only disk, raw, no discard",
			c:    Config{Drives: []Drive{{Path: "base.raw", Format: "raw", ReadOnly: true, Media: MediaDisk}}},
			has: [][]string{{"-blockdev", `{"driver":"raw","node-name":"drive0","read-only":true,"file":{"driver":"file","filename":"base.raw","read-only":true}}`,
				"-device", "virtio-blk-pci,drive=drive0,bootindex=0"}},
		},
		{
			name: "an overlay with the chain kiln made: backing images read-only, the last with no backing",
			c: Config{Drives: []Drive{{Path: "/w/vm.qcow2", Format: "qcow2", Backing: &Image{
				Path: "/cache/mid.qcow2", Format: "qcow2", Backing: &Image{Path: "/cache/base.raw", Format: "raw"},
			}}}},
			has: [][]string{{"-blockdev", `{"driver":"qcow2","node-name":"drive0","discard":"unmap","file":{"driver":"file","filename":"/w/vm.qcow2","discard":"unmap"},` +
				`"backing":{"driver":"qcow2","read-only":true,"file":{"driver":"file","filename":"/cache/mid.qcow2","read-only":true},` +
				`"backing":{"driver":"raw","read-only":true,"file":{"driver":"file","filename":"/cache/base.raw","read-only":true}}}}`}},
		},
		{
			name: "a read-only overlay",
			c:    Config{Drives: []Drive{{Path: "o.qcow2", Format: "qcow2", ReadOnly: true, Backing: &Image{Path: "b.qcow2", Format: "qcow2"}}}},
			has: [][]string{{"-blockdev", `{"driver":"qcow2","node-name":"drive0","read-only":true,"file":{"driver":"file","filename":"o.qcow2","read-only":true},` +
				`"backing":{"driver":"qcow2","read-only":true,"file":{"driver":"file","filename":"b.qcow2","read-only":true},"backing":null}}`}},
		},
		{
			name: "two cdroms take two AHCI ports, boot order follows Drives",
			c: Config{Drives: []Drive{
				{Path: "a.iso", Format: "raw", Media: MediaCDROM},
				{Path: "d.qcow2", Format: "qcow2"},
				{Path: "b.iso", Format: "raw", Media: MediaCDROM},
			}},
			has: [][]string{
				{"-device", "ide-cd,drive=drive0,bus=ide.0,bootindex=0"},
				{"-device", "virtio-blk-pci,drive=drive1,bootindex=1"},
				{"-device", "ide-cd,drive=drive2,bus=ide.1,bootindex=2"},
			},
		},
		{
			name: "commas in option paths are doubled; drive paths are JSON strings, never protocols",
			c: Config{
				Drives:    []Drive{{Path: "a:b,c\"d.qcow2", Format: "qcow2"}},
				SerialLog: "/logs/a,b.log",
			},
			has: [][]string{
				{"-blockdev", `{"driver":"qcow2","node-name":"drive0","discard":"unmap","file":{"driver":"file","filename":"a:b,c\"d.qcow2","discard":"unmap"},"backing":null}`},
				{"-chardev", "file,id=console0,path=/logs/a,,b.log"},
			},
		},
		{
			name: "extra args come last",
			c:    Config{ExtraArgs: []string{"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}},
			has:  [][]string{{"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.Args("/w")
			if err != nil {
				t.Fatal(err)
			}
			for _, seq := range tt.has {
				if !containsSeq(got, seq) {
					t.Errorf("Args lacks %q:\n%s", seq, strings.Join(got, " "))
				}
			}
			for _, s := range tt.hasNot {
				if slices.Contains(got, s) {
					t.Errorf("Args has %q:\n%s", s, strings.Join(got, " "))
				}
			}
			if n := len(tt.c.ExtraArgs); n > 0 && !slices.Equal(got[len(got)-n:], tt.c.ExtraArgs) {
				t.Errorf("extra args are not last: %q", got)
			}
		})
	}
}

func TestArgs_Invalid(t *testing.T) {
	tests := []struct {
		name    string
		c       Config
		workDir string
		errHas  []string
	}{
		{"empty work dir", Config{}, "", []string{"work dir is empty"}},
		{"socket path too long", Config{}, "/" + strings.Repeat("d", 120), []string{"longer than 107 bytes"}},
		{"unknown accel", Config{Accel: "hvf"}, "/w", []string{`unknown accel "hvf"`}},
		{"host cpu under tcg", Config{Accel: TCG, CPUModel: "host"}, "/w", []string{`"host" needs KVM`}},
		{"uefi without ovmf", Config{Firmware: UEFI}, "/w", []string{"uefi needs FirmwareCode and FirmwareVars"}},
		{"ovmf with bios", Config{Firmware: BIOS, FirmwareCode: "c.fd"}, "/w", []string{"firmware is bios"}},
		{"unknown firmware", Config{Firmware: "efi"}, "/w", []string{`unknown firmware "efi"`}},
		{"negative sizes", Config{MemoryMiB: -1, CPUs: -2}, "/w", []string{"memory -1 MiB", "cpus -2"}},
		{
			"bad drives, all reported",
			Config{Drives: []Drive{{Format: "qcow2"}, {Path: "x", Format: "vmdk"}, {Path: "y", Format: "raw", Media: "floppy"}}},
			"/w",
			[]string{"drives[0]: path is empty", `drives[1]: format "vmdk"`, `drives[2]: unknown media "floppy"`},
		},
		{
			"bad backing images",
			Config{Drives: []Drive{
				{Path: "a", Format: "raw", Backing: &Image{Path: "b", Format: "raw"}},
				{Path: "c", Format: "qcow2", Backing: &Image{Format: "vpc"}},
				{Path: "d", Format: "qcow2", Backing: loop()},
			}},
			"/w",
			[]string{"drives[0]: raw image a cannot have a backing image", "drives[1].backing: path is empty",
				`drives[1].backing: format "vpc"`, "drives[2]: backing chain deeper than 16"},
		},
		{
			"too many cdroms",
			Config{Drives: slices.Repeat([]Drive{{Path: "s.iso", Format: "raw", Media: MediaCDROM}}, 7)},
			"/w",
			[]string{"7 cdrom drives"},
		},
		{
			"bad nic",
			Config{NICs: []NIC{{
				Net: "fd00::/64",
				MAC: "52:54:00",
				Forwards: []Forward{
					{Proto: "sctp", HostPort: 0, GuestPort: 70000},
					{HostPort: 1, GuestPort: 1, GuestAddr: "guest"},
				},
			}}},
			"/w",
			[]string{
				`nics[0]: net "fd00::/64"`, `nics[0]: mac "52:54:00"`,
				`forwards[0]: proto "sctp"`, "forwards[0]: host port 0", "forwards[0]: guest port 70000",
				`forwards[1]: guest addr "guest"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := tt.c.Args(tt.workDir)
			if err == nil {
				t.Fatalf("Args = %q, want an error", args)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "qemu: ") {
					t.Errorf("error line %q lacks the qemu: prefix", line)
				}
			}
		})
	}
}

func containsSeq(s, seq []string) bool {
	for i := 0; i+len(seq) <= len(s); i++ {
		if slices.Equal(s[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

// loop is a backing chain that comes back to itself.
func loop() *Image {
	a := &Image{Path: "a", Format: "qcow2"}
	a.Backing = &Image{Path: "b", Format: "qcow2", Backing: a}
	return a
}
