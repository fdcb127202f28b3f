package testlibvirt

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/kiln-project/kiln/internal/testutil"
)

// needDaemons skips (or fails under CI) where the daemons cannot run.
func needDaemons(t *testing.T) {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedRoot(t)
	for _, tool := range []string{"libvirtd", "virtlogd", "virsh"} {
		testutil.NeedTool(t, tool)
	}
}

// TestDaemon drives one daemon the way deploy will: virsh and go-libvirt
// by its URI, a dir pool with a qcow2 volume, a type='qemu' domain defined
// (never started) and read back, and the ways to forward a port to a guest
// on user networking.
func TestDaemon(t *testing.T) {
	needDaemons(t)
	host := hostState(t)
	d := Start(t, Options{})
	l := d.Connect(t)

	t.Run("virsh", func(t *testing.T) {
		out := virsh(t, d, "version")
		if !strings.Contains(out, "Running hypervisor: QEMU") {
			t.Errorf("virsh -c %s version: no QEMU driver:\n%s", d.URI, out)
		}
		t.Logf("virsh version:\n%s", out)
	})

	t.Run("domcapabilities", func(t *testing.T) {
		var caps libvirtxml.DomainCaps
		if err := caps.Unmarshal(virsh(t, d, "domcapabilities", "--virttype", "qemu")); err != nil {
			t.Fatal(err)
		}
		if caps.Domain != "qemu" {
			t.Errorf("domcapabilities --virttype qemu: domain %q", caps.Domain)
		}
		if _, err := os.Stat(caps.Path); err != nil {
			t.Errorf("emulator: %v", err)
		}
		var loaders []string
		if caps.OS != nil && caps.OS.Loader != nil {
			loaders = caps.OS.Loader.Values
		}
		t.Logf("emulator %s, machine %s, firmware (loader) %v", caps.Path, caps.Machine, loaders)
	})

	// UEFI: what libvirt picks from the firmware descriptors QEMU's
	// packages install, and the accelerator a type='qemu' domain gets.
	t.Run("firmware", func(t *testing.T) {
		argv := func(secureBoot string) string {
			dom := testDomain("kiln-efi-"+secureBoot, "", "")
			dom.OS.Firmware = "efi"
			if secureBoot != "" {
				dom.OS.FirmwareInfo = &libvirtxml.DomainOSFirmwareInfo{Features: []libvirtxml.DomainOSFirmwareFeature{
					{Name: "secure-boot", Enabled: secureBoot},
					{Name: "enrolled-keys", Enabled: secureBoot},
				}}
			}
			dom.Features = &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}} // UEFI needs ACPI
			x, err := dom.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			// The command line libvirt would run, firmware chosen,
			// without defining or starting anything.
			out, err := l.ConnectDomainXMLToNative("qemu-argv", x, 0)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		off := argv("no")
		if !strings.Contains(off, "/OVMF_CODE_4M.fd") || !strings.Contains(off, "-accel tcg") {
			t.Errorf("firmware='efi' without secure boot: want OVMF_CODE_4M.fd under TCG, got:\n%s", off)
		}
		def := argv("")
		t.Logf("firmware='efi' with no features asked for picks %s (smm=on: %v)",
			regexp.MustCompile(`OVMF_CODE[^"]*`).FindString(def), strings.Contains(def, "smm=on"))
	})

	if !t.Run("pool and volume", func(t *testing.T) {
		pool := definePool(t, l, d)
		path := createVolume(t, l, pool, "disk0.qcow2")
		vols, _, err := l.StoragePoolListAllVolumes(pool, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, v := range vols {
			names = append(names, v.Name)
		}
		if !slices.Equal(names, []string{"disk0.qcow2"}) {
			t.Errorf("volumes in the pool: %v, want [disk0.qcow2]", names)
		}
		if want := filepath.Join(d.PoolDir, "disk0.qcow2"); path != want {
			t.Errorf("volume path %s, want %s", path, want)
		}
		if out := virsh(t, d, "vol-list", "kiln"); !strings.Contains(out, path) {
			t.Errorf("virsh vol-list kiln does not list %s:\n%s", path, out)
		}
	}) {
		t.FailNow()
	}

	t.Run("domain", func(t *testing.T) {
		pool, err := l.StoragePoolLookupByName("kiln")
		if err != nil {
			t.Fatal(err)
		}
		disk := createVolume(t, l, pool, "vm0.qcow2")
		console := filepath.Join(d.Dir, "vm0.console")
		dom := define(t, l, testDomain("kiln-vm0", disk, console))

		var got libvirtxml.Domain
		if err := got.Unmarshal(virsh(t, d, "dumpxml", "kiln-vm0")); err != nil {
			t.Fatal(err)
		}
		if got.Type != "qemu" || got.Memory == nil || got.Memory.Value != 256<<10 || got.Memory.Unit != "KiB" {
			t.Errorf("read back: type %q, memory %+v; want qemu, 262144 KiB", got.Type, got.Memory)
		}
		if ds := got.Devices.Disks; len(ds) != 1 || ds[0].Source.File == nil || ds[0].Source.File.File != disk || ds[0].Target.Bus != "virtio" {
			t.Errorf("read back: disks %+v, want one virtio disk on %s", ds, disk)
		}
		if ss := got.Devices.Serials; len(ss) != 1 || ss[0].Source.File == nil || ss[0].Source.File.Path != console {
			t.Errorf("read back: serials %+v, want one to %s", ss, console)
		}
		if state := strings.TrimSpace(virsh(t, d, "domstate", "kiln-vm0")); state != "shut off" {
			t.Errorf("domstate %q, want shut off", state)
		}

		if err := l.DomainUndefine(dom); err != nil {
			t.Fatal(err)
		}
		if names := listDomains(t, d); len(names) != 0 {
			t.Errorf("after undefine, virsh list --all: %v", names)
		}
	})

	// The domains here are only defined: what libvirt accepts, and the
	// QEMU command line it would run, not what a running guest does.
	t.Run("user networking", func(t *testing.T) {
		ver, err := l.ConnectGetLibVersion()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("libvirt %d.%d.%d", ver/1000000, ver/1000%1000, ver%1000)

		// QEMU's own SLIRP with hostfwd, through qemu:commandline: works
		// with every libvirt, at the price of a "custom-argv" taint.
		fwd := testDomain("kiln-hostfwd", "", "")
		fwd.QEMUCommandline = &libvirtxml.DomainQEMUCommandline{Args: []libvirtxml.DomainQEMUCommandlineArg{
			{Value: "-netdev"}, {Value: "user,id=kiln0,hostfwd=tcp:127.0.0.1:2222-:22"},
			{Value: "-device"}, {Value: "virtio-net-pci,netdev=kiln0"},
		}}
		dom := define(t, l, fwd)
		x, err := l.DomainGetXMLDesc(dom, 0)
		if err != nil {
			t.Fatal(err)
		}
		argv, err := l.ConnectDomainXMLToNative("qemu-argv", x, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(argv, "hostfwd=tcp:127.0.0.1:2222-:22") {
			t.Errorf("the QEMU command line has no hostfwd:\n%s", argv)
		}
		if err := l.DomainUndefine(dom); err != nil {
			t.Fatal(err)
		}

		// libvirt's own <portForward>: honoured only with the passt
		// backend. Which of these a libvirt accepts is logged, not
		// asserted: it changes between versions.
		pf := []libvirtxml.DomainInterfaceSourcePortForward{{
			Proto: "tcp", Address: "127.0.0.1",
			Ranges: []libvirtxml.DomainInterfaceSourcePortForwardRange{{Start: 2222, To: 22}},
		}}
		for _, backend := range []string{"", "passt"} {
			dom := testDomain("kiln-portforward", "", "")
			iface := libvirtxml.DomainInterface{
				Source:      &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
				Model:       &libvirtxml.DomainInterfaceModel{Type: "virtio"},
				PortForward: pf,
			}
			if backend != "" {
				iface.Backend = &libvirtxml.DomainInterfaceBackend{Type: backend}
			}
			dom.Devices.Interfaces = []libvirtxml.DomainInterface{iface}
			x, err := dom.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			defined, err := l.DomainDefineXML(x)
			if err != nil {
				t.Logf("<interface type='user'> backend %q with <portForward>: define fails: %v", backend, err)
				continue
			}
			back, err := l.DomainGetXMLDesc(defined, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("<interface type='user'> backend %q with <portForward>: defined; portForward kept: %v",
				backend, strings.Contains(back, "<portForward"))
			if err := l.DomainUndefine(defined); err != nil {
				t.Fatal(err)
			}
		}
	})

	d.Stop()
	if now := hostState(t); now != host {
		t.Errorf("the host's libvirt run state changed:\nbefore:\n%s\nafter:\n%s", host, now)
	}
}

// TestTwoDaemons runs two daemons at once, as two hosts would be: what is
// defined on one is not on the other, stopping one leaves the other
// running, and Stop leaves no process, mount or host state behind.
func TestTwoDaemons(t *testing.T) {
	needDaemons(t)
	host := hostState(t)
	a := Start(t, Options{})
	// The second through Launch, the benchmarks' way in.
	dir, err := os.MkdirTemp("", "testlibvirt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := Launch(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	if a.Socket == b.Socket {
		t.Fatalf("both daemons on %s", a.Socket)
	}

	define(t, a.Connect(t), testDomain("kiln-on-a", "", ""))
	if got := listDomains(t, a); !slices.Equal(got, []string{"kiln-on-a"}) {
		t.Errorf("domains on a: %v, want [kiln-on-a]", got)
	}
	if got := listDomains(t, b); len(got) != 0 {
		t.Errorf("domains on b: %v, want none", got)
	}

	for _, d := range []*Daemon{a, b} {
		if len(mountsOf(d)) == 0 {
			t.Fatalf("no process shows the mounts of %s while it runs: the check below would prove nothing", d.Dir)
		}
	}
	a.Stop()
	checkStopped(t, a)
	if out := virsh(t, b, "version"); !strings.Contains(out, "QEMU") {
		t.Errorf("b after a stopped: %s", out)
	}
	a.Stop() // idempotent
	b.Stop()
	checkStopped(t, b)
	if now := hostState(t); now != host {
		t.Errorf("the host's libvirt run state changed:\nbefore:\n%s\nafter:\n%s", host, now)
	}
}

// TestLaunchRefusesLongSocketPath: a socket path over sun_path's size
// would fail late and obscurely, in libvirtd's bind.
func TestLaunchRefusesLongSocketPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("x", 100))
	_, err := launch(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("launch in %s: %v, want a refusal", dir, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("launch made %s before refusing: %v", dir, err)
	}
}

// checkStopped fails unless d's processes are gone and no process on the
// machine sees its mounts.
func checkStopped(t *testing.T, d *Daemon) {
	t.Helper()
	virtlogd, libvirtd := d.PIDs()
	for _, pid := range []int{virtlogd, libvirtd} {
		if pid == 0 {
			t.Errorf("%s: a daemon was never started", d.Dir)
			continue
		}
		// A pid that is taken again must belong to something else.
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && (strings.HasSuffix(exe, "/libvirtd") || strings.HasSuffix(exe, "/virtlogd")) {
			t.Errorf("after Stop, pid %d is still %s", pid, exe)
		}
	}
	if m := mountsOf(d); len(m) > 0 {
		t.Errorf("after Stop, mounts of %s are left:\n%s", d.Dir, strings.Join(m, "\n"))
	}
	if _, err := os.Stat(d.Socket); err == nil {
		if err := exec.Command(virshPath(t), "-c", d.URI, "version").Run(); err == nil {
			t.Errorf("after Stop, %s still answers", d.URI)
		}
	}
}

// mountsOf lists "pid: mountinfo line" for every mount, in any process's
// namespace, whose source is under d.Dir.
func mountsOf(d *Daemon) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "mountinfo"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// The fourth field is the mount's root within its
			// filesystem; the base name is unique to the daemon even
			// where /tmp is a filesystem of its own.
			if f := strings.Fields(line); len(f) > 4 && strings.Contains(f[3], filepath.Base(d.Dir)) {
				found = append(found, e.Name()+": "+line)
			}
		}
	}
	return found
}

// hostState describes the host's own libvirt run state (the socket
// directory, the daemons' pid files) and its network interfaces (no
// virbr0), which no test may change.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		fmt.Fprintf(&b, "interface %s\n", i.Name)
	}
	for _, p := range []string{"/run/libvirt", "/run/libvirtd.pid", "/run/virtlogd.pid"} {
		st, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(&b, "%s: absent\n", p)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %v\n", p, st.Mode())
		if st.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				fmt.Fprintf(&b, "  %s %v\n", e.Name(), e.Type())
			}
		}
	}
	return b.String()
}

// testDomain is a small type='qemu' guest: 256 MiB, one vCPU, q35, with a
// virtio disk on disk and a serial console to the file console when they
// are set.
func testDomain(name, disk, console string) *libvirtxml.Domain {
	dom := &libvirtxml.Domain{
		Type:   "qemu", // TCG: /dev/kvm is there, but does not work
		Name:   name,
		Memory: &libvirtxml.DomainMemory{Value: 256, Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Value: 1},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"},
		},
		Devices: &libvirtxml.DomainDeviceList{},
	}
	if disk != "" {
		dom.Devices.Disks = []libvirtxml.DomainDisk{{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2"},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: disk}},
			Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
		}}
	}
	if console != "" {
		dom.Devices.Serials = []libvirtxml.DomainSerial{{
			Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: console}},
		}}
	}
	return dom
}

// define defines dom (without starting it).
func define(t *testing.T, l *libvirt.Libvirt, dom *libvirtxml.Domain) libvirt.Domain {
	t.Helper()
	x, err := dom.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.DomainDefineXML(x)
	if err != nil {
		t.Fatalf("define %s: %v\n%s", dom.Name, err, x)
	}
	return d
}

// definePool defines and starts the dir pool "kiln" on d.PoolDir.
func definePool(t *testing.T, l *libvirt.Libvirt, d *Daemon) libvirt.StoragePool {
	t.Helper()
	x, err := (&libvirtxml.StoragePool{
		Type:   "dir",
		Name:   "kiln",
		Target: &libvirtxml.StoragePoolTarget{Path: d.PoolDir},
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := l.StoragePoolDefineXML(x, 0)
	if err != nil {
		t.Fatalf("define pool: %v\n%s", err, x)
	}
	if err := l.StoragePoolCreate(pool, 0); err != nil {
		t.Fatalf("start pool: %v", err)
	}
	return pool
}

// createVolume creates a 64 MiB qcow2 volume and returns its path, after
// checking that the file is a qcow2 image.
func createVolume(t *testing.T, l *libvirt.Libvirt, pool libvirt.StoragePool, name string) string {
	t.Helper()
	x, err := (&libvirtxml.StorageVolume{
		Name:     name,
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "MiB", Value: 64},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	vol, err := l.StorageVolCreateXML(pool, x, 0)
	if err != nil {
		t.Fatalf("create volume: %v\n%s", err, x)
	}
	path, err := l.StorageVolGetPath(vol)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.Read(magic); err != nil || !bytes.Equal(magic, []byte("QFI\xfb")) {
		t.Errorf("%s is not a qcow2 image (magic %q, %v)", path, magic, err)
	}
	return path
}

// listDomains is `virsh list --all --name`.
func listDomains(t *testing.T, d *Daemon) []string {
	t.Helper()
	return strings.Fields(virsh(t, d, "list", "--all", "--name"))
}

// virsh runs virsh -c d.URI with args and returns its output.
func virsh(t *testing.T, d *Daemon, args ...string) string {
	t.Helper()
	out, err := exec.Command(virshPath(t), append([]string{"-c", d.URI}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh -c %s %s: %v\n%s", d.URI, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func virshPath(t *testing.T) string {
	t.Helper()
	return testutil.NeedTool(t, "virsh")
}
