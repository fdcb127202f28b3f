package boot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-project/kiln/internal/qemu"
)

// fakeImg records what boot asks of qemu-img and makes empty files.
type fakeImg struct{ calls []string }

func (f *fakeImg) CreateOverlay(ctx context.Context, base, baseFormat, overlay string, size int64) error {
	f.calls = append(f.calls, "overlay "+base+" "+baseFormat)
	return os.WriteFile(overlay, nil, 0o644)
}

func (f *fakeImg) CreateBlank(ctx context.Context, path string, size int64) error {
	f.calls = append(f.calls, "blank "+filepath.Base(path))
	return os.WriteFile(path, nil, 0o644)
}

// TestConfig: disks in the order a recipe expects (overlay, data disks,
// seed last and read-only), forwards allocated per NIC, OVMF for UEFI.
func TestConfig(t *testing.T) {
	work := t.TempDir()
	img := &fakeImg{}
	r := Runner{Img: img, Firmware: func(qemu.Firmware) (string, string, error) { return "/fw/code.fd", "/fw/vars.fd", nil }}
	cfg, vm, err := r.Config(context.Background(), Spec{
		Image: "/images/web.qcow2", Format: "qcow2", DataDisks: []int64{1 << 30, 2 << 30}, Seed: "/seeds/web.iso",
		Firmware: qemu.UEFI, WorkDir: work,
		NICs: []NIC{{Forwards: []Forward{{GuestPort: 22}, {GuestPort: 80}, {GuestPort: 22}}}, {Net: "10.10.0.0/24", Forwards: []Forward{{Proto: "udp", GuestPort: 53}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(img.calls, ";") != "overlay /images/web.qcow2 qcow2;blank data0.qcow2;blank data1.qcow2" {
		t.Errorf("qemu-img calls %q", img.calls)
	}
	if len(cfg.Drives) != 4 || cfg.Drives[0].Path != vm.Overlay || cfg.Drives[3].Path != "/seeds/web.iso" || !cfg.Drives[3].ReadOnly || cfg.Drives[0].ReadOnly {
		t.Errorf("drives %+v", cfg.Drives)
	}
	if cfg.MemoryMiB != 512 || cfg.FirmwareCode != "/fw/code.fd" || cfg.FirmwareVars != "/fw/vars.fd" {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.NICs) != 2 || len(cfg.NICs[0].Forwards) != 2 || cfg.NICs[1].Net != "10.10.0.0/24" || cfg.NICs[1].Forwards[0].Proto != "udp" {
		t.Fatalf("nics %+v", cfg.NICs)
	}
	a22, err := vm.Addr(22)
	if err != nil || a22 != fmt.Sprintf("127.0.0.1:%d", cfg.NICs[0].Forwards[0].HostPort) {
		t.Errorf("Addr(22) = %q, %v", a22, err)
	}
	if _, err := vm.AddrOn(1, "udp", 53); err != nil {
		t.Error(err)
	}
	if _, err := vm.Addr(443); err == nil {
		t.Error("an unforwarded port has an address")
	}
	if _, err := cfg.Args(work); err != nil {
		t.Errorf("QEMU would refuse the config: %v", err)
	}
}

func TestConfigRefuses(t *testing.T) {
	r := Runner{Img: &fakeImg{}}
	for name, s := range map[string]Spec{
		"probed format": {Image: "x", WorkDir: t.TempDir()},
		"vmdk":          {Image: "x", Format: "vmdk", WorkDir: t.TempDir()},
		"no work dir":   {Image: "x", Format: "raw", WorkDir: filepath.Join(t.TempDir(), "missing")},
	} {
		if _, _, err := r.Config(context.Background(), s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// fakeMachine plays back console lines; followed is closed once
// FollowConsole has returned.
type fakeMachine struct {
	lines    []string
	done     chan struct{}
	once     sync.Once
	followed chan struct{}
}

func (m *fakeMachine) Wait(ctx context.Context) error { <-m.done; return nil }
func (m *fakeMachine) Kill() error                    { m.once.Do(func() { close(m.done) }); return nil }
func (m *fakeMachine) Stop(ctx context.Context) error { return m.Kill() }
func (m *fakeMachine) Done() <-chan struct{}          { return m.done }
func (m *fakeMachine) SerialLog() string              { return "" }
func (m *fakeMachine) ConsoleTail(n int) string       { return strings.Join(m.lines, "\n") }
func (m *fakeMachine) FollowConsole(ctx context.Context, fn func(string) bool) {
	defer close(m.followed)
	for _, l := range m.lines {
		if ctx.Err() != nil || !fn(l) {
			return
		}
	}
}

func TestWatchFatal(t *testing.T) {
	m := &fakeMachine{done: make(chan struct{}), followed: make(chan struct{}), lines: []string{"[    1.0] Booting", "[   2.5] Kernel panic - not syncing: VFS: Unable to mount root fs", "later"}}
	ctx, cancel := context.WithCancel(context.Background())
	found := WatchFatal(ctx, m, cancel)
	<-ctx.Done()
	if got := <-found; got != "Kernel panic - not syncing: VFS: Unable to mount root fs" {
		t.Errorf("found %q", got)
	}
	// A healthy console, read to its end, reports and cancels nothing.
	m = &fakeMachine{done: make(chan struct{}), followed: make(chan struct{}), lines: []string{"Cloud-init v. 22.4.2 finished"}}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	found = WatchFatal(ctx, m, cancel)
	<-m.followed
	select {
	case f := <-found:
		t.Errorf("healthy console reported %q", f)
	default:
	}
	if ctx.Err() != nil {
		t.Error("a healthy console cancelled the wait")
	}
	if fatalIn("Cloud-init v. 22.4.2 finished at x. Datasource DataSourceNone.") == "" {
		t.Error("DataSourceNone is not fatal")
	}
}
