package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testlibvirt"
	"github.com/kiln-project/kiln/internal/testutil"
)

// blankBase is a small qcow2 that boots nothing: enough for libvirt to
// define and run domains on (the firmware finds no boot disk and waits),
// without the minutes a real guest takes under TCG.
func blankBase(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.qcow2")
	if out, err := exec.Command(testutil.NeedTool(t, "qemu-img"), "create", "-q", "-f", "qcow2", p, "64M").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return p
}

func libvirtHost(t *testing.T, d *testlibvirt.Daemon) *Libvirt {
	t.Helper()
	h, err := DialLibvirt(d.URI, LibvirtOptions{PoolPath: d.PoolDir, Accel: qemu.TCG})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// blankDesired places capacity instances of set over hosts with the
// fleet's own placement (a fault domain per host), on the blank base.
func blankDesired(set string, capacity int, base string, hosts ...string) []Desired {
	return placedDesired(set, capacity, base, 64, 128<<20, hosts...)
}

// placedDesired is blankDesired on any base, with memoryMiB and a disk of
// diskBytes per instance (a real guest needs 256 MiB, and a disk at least
// its image's size).
func placedDesired(set string, capacity int, base string, memoryMiB int, diskBytes int64, hosts ...string) []Desired {
	var out []Desired
	spread := Spread{Set: set, FaultDomains: len(hosts), UpdateDomains: 5, Hosts: hosts}
	for _, p := range spread.PlaceAll(capacity) {
		d := Desired{Host: p.Host, Spec: InstanceSpec{Name: p.Name, Meta: Metadata{Set: set, Ordinal: p.Ordinal,
			FaultDomain: p.FaultDomain, UpdateDomain: p.UpdateDomain, Image: "sha256:" + strings.Repeat("ab", 32), Spec: "s1"}}}
		d.Spec.BasePath = base
		d.Spec.DiskBytes = diskBytes
		d.Spec.VCPUs, d.Spec.MemoryMiB = 1, memoryMiB
		d.Spec.Firmware = "bios"
		d.Spec.Seed = []byte("not a real seed, nothing boots")
		d.Spec.Ports = []int{8080}
		out = append(out, d)
	}
	return out
}

// volumeNames reads the names out of virsh vol-list.
func volumeNames(out string) []string {
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] != "Name" {
			names = append(names, f[0])
		}
	}
	sort.Strings(names)
	return names
}

func virsh(t *testing.T, uri string, args ...string) string {
	t.Helper()
	out, err := exec.Command(testutil.NeedTool(t, "virsh"), append([]string{"-c", uri}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// On a real libvirtd: apply scales a set 2 -> 4 -> 1 with overlays on one
// base volume, records kiln's metadata in each domain, leaves a foreign
// domain alone, finishes an instance a crash left half-made, and destroy
// (capacity 0) leaves nothing but the shared base.
func TestLibvirtApply(t *testing.T) {
	testutil.Integration(t)
	d := testlibvirt.Start(t, testlibvirt.Options{})
	h := libvirtHost(t, d)
	ctx := context.Background()
	hosts := Hosts{h.URI(): h}
	base := blankBase(t)

	// A domain kiln did not make.
	foreign := filepath.Join(t.TempDir(), "foreign.xml")
	os.WriteFile(foreign, []byte(`<domain type='qemu'><name>not-kiln</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>`), 0o644)
	virsh(t, d.URI, "define", foreign)

	for _, capacity := range []int{2, 4, 1} {
		if _, err := Apply(ctx, hosts, []string{"web"}, blankDesired("web", capacity, base, h.URI()), ApplyOptions{LockDir: t.TempDir()}); err != nil {
			t.Fatalf("apply %d: %v", capacity, err)
		}
		got, foreignN, err := h.Instances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for i, inst := range got {
			names = append(names, inst.Name)
			if inst.State != Running || inst.Meta.Set != "web" || inst.Meta.Ordinal != i || inst.Meta.UpdateDomain != i%5 || inst.Ports[8080] == 0 {
				t.Errorf("capacity %d: %+v", capacity, inst)
			}
		}
		want := []string{}
		for i := 0; i < capacity; i++ {
			want = append(want, fmt.Sprintf("web-%d", i))
		}
		if !reflect.DeepEqual(names, want) && !(len(names) == 0 && capacity == 0) {
			t.Fatalf("capacity %d: instances %v", capacity, names)
		}
		if foreignN != 1 {
			t.Errorf("foreign domains: %d, want 1", foreignN)
		}
	}
	// The metadata as libvirt stores it, read back by virsh.
	if x := virsh(t, d.URI, "dumpxml", "web-0"); !strings.Contains(x, MetadataNamespace) || !strings.Contains(x, `set="web"`) || !strings.Contains(x, "hostfwd=tcp:127.0.0.1:") {
		t.Errorf("dumpxml web-0 lacks kiln's metadata or forwards:\n%s", x)
	}
	// Overlays, not copies: each instance's volume is a small qcow2 on the base.
	vols := virsh(t, d.URI, "vol-list", "kiln")
	if names := volumeNames(vols); !reflect.DeepEqual(names, []string{"kiln-base-" + strings.Repeat("ab", 32) + ".qcow2", "kiln-base-" + strings.Repeat("ab", 32) + ".qcow2.complete", "web-0-console.log", "web-0-seed.iso", "web-0.qcow2"}) {
		t.Errorf("volumes: %v\n%s", names, vols)
	}
	// A base a crash cut short (no marker): the next create uploads it again.
	baseName := "kiln-base-" + strings.Repeat("ab", 32) + ".qcow2"
	basePath := filepath.Join(d.PoolDir, baseName)
	whole, err := os.Stat(basePath)
	if err != nil {
		t.Fatal(err)
	}
	virsh(t, d.URI, "vol-delete", "--pool", "kiln", baseName+".complete")
	os.Truncate(basePath, 1024)
	// A crash half-way: an overlay without a domain. Apply completes it.
	virsh(t, d.URI, "vol-create-as", "kiln", "web-1.qcow2", "1M", "--format", "qcow2")
	if got, _, _ := h.Instances(ctx); len(got) != 2 || got[1].State != Partial {
		t.Fatalf("half-made instance not seen: %+v", got)
	}
	if _, err := Apply(ctx, hosts, []string{"web"}, blankDesired("web", 2, base, h.URI()), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := h.Instances(ctx); len(got) != 2 || got[1].State != Running {
		t.Fatalf("after re-apply: %+v", got)
	}
	// A domain deleted by hand is made again by the next apply.
	virsh(t, d.URI, "destroy", "web-1")
	virsh(t, d.URI, "undefine", "web-1")
	plan, err := Apply(ctx, hosts, []string{"web"}, blankDesired("web", 2, base, h.URI()), ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Changes) != 1 || plan.Changes[0].Op != OpCreate || plan.Changes[0].Instance != "web-1" {
		t.Errorf("after deleting web-1 by hand, apply did %+v", plan.Changes)
	}
	if got, _, _ := h.Instances(ctx); len(got) != 2 || got[1].State != Running {
		t.Fatalf("after deleting by hand and re-applying: %+v", got)
	}
	if info, err := os.Stat(basePath); err != nil || info.Size() != whole.Size() {
		t.Errorf("the cut-short base was not uploaded again: %v %v", info, err)
	}
	// Protection is kept in the domain's metadata, live and persistent,
	// and changes neither its spec nor the plan; CPU time is read.
	if err := h.Protect(ctx, "web-1", Protection{ScaleIn: true}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := h.Instances(ctx); got[1].Meta.Protection() != (Protection{ScaleIn: true}) || got[0].Meta.Protection() != (Protection{}) {
		t.Errorf("protection read back: %+v %+v", got[0].Meta, got[1].Meta)
	}
	if x := virsh(t, d.URI, "dumpxml", "--inactive", "web-1"); !strings.Contains(x, `protect="scale-in"`) {
		t.Errorf("the persistent definition lacks the protection:\n%s", x)
	}
	if plan, err := Apply(ctx, hosts, []string{"web"}, blankDesired("web", 2, base, h.URI()), ApplyOptions{}); err != nil || plan.Pending() {
		t.Errorf("protection changed the plan: %+v %v", plan, err)
	}
	if st, err := h.Stats(ctx, "web-1"); err != nil || st.VCPUs != 1 || st.CPUTime <= 0 {
		t.Errorf("stats: %+v %v", st, err)
	}
	if err := h.Protect(ctx, "web-1", Protection{}); err != nil {
		t.Fatal(err)
	}
	// Capacity 0: no domain, overlay or seed of the set is left.
	if _, err := Apply(ctx, hosts, []string{"web"}, nil, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := h.Instances(ctx); len(got) != 0 {
		t.Fatalf("left after destroy: %+v", got)
	}
	all := virsh(t, d.URI, "list", "--all", "--name")
	if strings.TrimSpace(all) != "not-kiln" {
		t.Errorf("domains left: %q (want only the foreign one)", all)
	}
	vols = virsh(t, d.URI, "vol-list", "kiln")
	if strings.Contains(vols, "web-") {
		t.Errorf("volumes left:\n%s", vols)
	}
	// ... and in the pool's directory, only the shared base and its marker.
	entries, err := os.ReadDir(d.PoolDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if want := []string{baseName, baseName + ".complete"}; !reflect.DeepEqual(files, want) {
		t.Errorf("pool directory holds %v, want %v", files, want)
	}
}

// Two libvirt daemons on this machine are two hosts, one reached over its
// unix socket, the other over TCP (qemu+tcp://127.0.0.1:PORT/system): a set
// of four real guests (the app-host image, uploaded to each host once)
// spread over them puts fault domain N on host N, two instances each, and
// each daemon holds only its own.
func TestLibvirtTwoHosts(t *testing.T) {
	testutil.Integration(t)
	a := testlibvirt.Start(t, testlibvirt.Options{})
	b := testlibvirt.Start(t, testlibvirt.Options{TCP: true})
	ha := libvirtHost(t, a)
	hb, err := DialLibvirt(b.TCPURI, LibvirtOptions{PoolPath: b.PoolDir, Accel: qemu.TCG})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hb.Close() })
	ctx := context.Background()
	hosts := Hosts{ha.URI(): ha, hb.URI(): hb}
	base := appHostImage(t)
	if _, err := Apply(ctx, hosts, []string{"web"}, placedDesired("web", 4, base, 256, 8<<30, ha.URI(), hb.URI()), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, h := range []*Libvirt{ha, hb} {
		got, _, err := h.Instances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, inst := range got {
			names = append(names, inst.Name)
			if inst.Meta.FaultDomain != i || inst.State != Running {
				t.Errorf("host %d: %+v", i, inst)
			}
		}
		want := []string{fmt.Sprintf("web-%d", i), fmt.Sprintf("web-%d", i+2)}
		if !reflect.DeepEqual(names, want) {
			t.Errorf("host %d holds %v, want %v", i, names, want)
		}
	}
	// Each guest's kernel starts, as its console (read over each host's
	// connection: TCP for b) shows.
	for _, h := range []*Libvirt{ha, hb} {
		insts, _, err := h.Instances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			waitConsole(t, h, in.Name, "Linux version")
		}
	}
	// What went over TCP is on daemon b, as its own socket shows.
	got := strings.Fields(virsh(t, b.URI, "list", "--all", "--name"))
	sort.Strings(got) // virsh lists running domains by id: creation order
	if !reflect.DeepEqual(got, []string{"web-1", "web-3"}) {
		t.Errorf("daemon b (over TCP) holds %v", got)
	}
	if _, err := Apply(ctx, hosts, []string{"web"}, nil, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitConsole polls an instance's console until it shows want.
func waitConsole(t *testing.T, h *Libvirt, name, want string) {
	t.Helper()
	var log strings.Builder
	var offset int64
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(2 * time.Second) { // polling a guest that is booting
		var err error
		if offset, err = h.Console(context.Background(), name, offset, &log); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(log.String(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s: no %q in its console:\n%s", name, h.URI(), want, tail(log.String(), 2000))
		}
	}
}

// A host without room: the pool (a 16 MiB tmpfs) cannot hold the image's
// base and an instance's room to grow. Apply fails before it makes
// anything, saying which host and pool, how much is free and needed.
func TestLibvirtNotEnoughDisk(t *testing.T) {
	testutil.Integration(t)
	d := testlibvirt.Start(t, testlibvirt.Options{SmallPool: "16M"})
	h, err := DialLibvirt(d.URI, LibvirtOptions{Pool: "small", PoolPath: d.SmallPoolDir, Accel: qemu.TCG})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	_, err = Apply(ctx, Hosts{h.URI(): h}, []string{"web"}, blankDesired("web", 1, blankBase(t), h.URI()), ApplyOptions{})
	if err == nil {
		t.Fatal("apply on a full host succeeded")
	}
	for _, want := range []string{d.URI, "not enough disk", "storage pool small has 16 MiB free", "257 MiB needed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if got := strings.TrimSpace(virsh(t, d.URI, "list", "--all", "--name")); got != "" {
		t.Errorf("domains left: %q", got)
	}
	if names := volumeNames(virsh(t, d.URI, "vol-list", "small")); len(names) != 0 {
		t.Errorf("volumes left: %v", names)
	}
}
