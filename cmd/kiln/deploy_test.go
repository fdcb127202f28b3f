package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/internal/testlibvirt"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/recipes"
)

// deployFixture writes the app-host example's image (baked through the
// shared test cache, so usually a copy), a recipe and a fleet file of one
// set "web" of kind and capacity on the daemon, and the environment kiln
// runs in.
func deployFixture(t *testing.T, d *testlibvirt.Daemon, kind string, capacity int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	plan, err := recipes.LoadPlan("../../examples/app-host.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := builder.New(builder.Options{CacheDir: testutil.CacheDir(t)})
	if _, err := b.Bake(context.Background(), plan, filepath.Join(dir, "web.qcow2")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte("apiVersion: kiln/v1\nname: web\nboot:\n  hostname: \"web-{index}\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(fmt.Sprintf(`apiVersion: kiln/v1
kind: %s
name: web
image: ./web.qcow2
recipe: ./web.yaml
capacity: %d
size: {memory: 256MiB}
network: {ports: [8080]}
hosts: ["%s"]
`, kind, capacity, d.URI)), 0o644)
	return dir, []string{"KILN_CACHE_DIR=" + filepath.Join(dir, "cache")}
}

// kiln deploy as a user runs it, against a real libvirtd (the harness's,
// in its own mount namespace): plan says what would change (exit 3), apply
// does it, a second plan has nothing to do (exit 0), status lists the
// instances with their domains and forwarded ports, destroy leaves none.
// The image is a blank disk: the domains run, nothing boots — booting real
// guests is the deploy package's integration tests' job.
func TestDeployCLI(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedGuest(t)
	d := testlibvirt.Start(t, testlibvirt.Options{})
	dir, env := deployFixture(t, d, "AvailabilitySet", 3)
	// boots counts the kernel's boots in an instance's serial console, as
	// kiln deploy console prints it (the log keeps every boot).
	boots := func(ordinal int) int {
		r := run(t, dir, env, "deploy", "console", "fleet.yaml", fmt.Sprintf("web/%d", ordinal))
		if r.code != 0 {
			t.Fatalf("console web/%d: exit %d\n%s", ordinal, r.code, r.stderr)
		}
		return strings.Count(r.stdout, "Linux version")
	}
	waitBoots := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for i := 0; i < 3; i++ {
			for boots(i) < want {
				if time.Now().After(deadline) {
					t.Fatalf("web-%d: %d boots in its console, want %d", i, boots(i), want)
				}
				time.Sleep(2 * time.Second) // polling guests that are starting under TCG
			}
		}
	}

	r := run(t, dir, env, "deploy", "plan", "fleet.yaml")
	if r.code != exitPending || strings.Count(r.stdout, "+ create") != 3 {
		t.Fatalf("plan before apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "apply", "fleet.yaml"); r.code != 0 || !strings.Contains(r.stdout, "3 changed") {
		t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "plan", "fleet.yaml"); r.code != 0 || !strings.Contains(r.stdout, "0 to change, 3 unchanged") {
		t.Fatalf("plan after apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, env, "deploy", "status", "fleet.yaml", "-O", "json")
	insts := envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any)
	if r.code != 0 || len(insts) != 3 {
		t.Fatalf("status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for i, x := range insts {
		in := x.(map[string]any)
		meta := in["meta"].(map[string]any)
		ports, _ := in["ports"].(map[string]any)
		if in["state"] != "running" || meta["ordinal"] != float64(i) || meta["faultDomain"] != float64(i%3) || meta["updateDomain"] != float64(i) || ports["8080"] == nil {
			t.Errorf("instance %d: %v", i, in)
		}
	}
	// The same, as libvirt stores it: virsh dumpxml shows kiln's metadata.
	for i := 0; i < 3; i++ {
		out, err := exec.Command(testutil.NeedTool(t, "virsh"), "-c", d.URI, "dumpxml", fmt.Sprintf("web-%d", i)).CombinedOutput()
		if want := fmt.Sprintf(`faultDomain="%d" updateDomain="%d"`, i%3, i); err != nil || !strings.Contains(string(out), want) {
			t.Errorf("virsh dumpxml web-%d lacks %s: %v\n%s", i, want, err, out)
		}
	}
	// The image's origin, and the table a person reads, for one set.
	if src := insts[0].(map[string]any)["meta"].(map[string]any)["source"]; src != filepath.Join(dir, "web.qcow2") {
		t.Errorf("status: source %v, want the local image", src)
	}
	if r = run(t, dir, env, "deploy", "status", "fleet.yaml", "web"); r.code != 0 || !strings.Contains(r.stdout, "SOURCE") || strings.Count(r.stdout, "running") != 3 || !strings.Contains(r.stdout, "127.0.0.1:") {
		t.Errorf("status web: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "status", "fleet.yaml", "nope"); r.code != 2 || !strings.Contains(r.stderr, `no set "nope"`) {
		t.Errorf("status of an unknown set: exit %d\n%s", r.code, r.stderr)
	}
	// Every instance's kernel starts: its console shows one boot.
	waitBoots(1)
	// The live drawing of the set: what the host holds.
	if r = run(t, dir, env, "deploy", "graph", "fleet.yaml", "web", "--live", "--format", "dot"); r.code != 0 || strings.Count(r.stdout, "running") != 3 || !strings.Contains(r.stdout, "at 127.0.0.1:") || strings.Contains(r.stdout, "planned") {
		t.Errorf("graph --live: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for arg, want := range map[string]string{"web": "want SET/INSTANCE", "api/0": `no set "api"`, "web/api-0": "not an instance of set web"} {
		if r = run(t, dir, env, "deploy", "console", "fleet.yaml", arg); r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("console %s: exit %d, want 2 and %q\n%s", arg, r.code, want, r.stderr)
		}
	}
	if r = run(t, dir, env, "deploy", "console", "fleet.yaml", "web/web-7"); r.code != 1 || !strings.Contains(r.stderr, "no instance web-7") {
		t.Errorf("console of a missing instance: exit %d\n%s", r.code, r.stderr)
	}
	// Restart by update domain: every domain comes back running, as a new
	// QEMU process (libvirt gives a restarted domain a new id).
	conn := d.Connect(t)
	ids := func() map[string]int32 {
		doms, _, err := conn.ConnectListAllDomains(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int32{}
		for _, dom := range doms {
			out[dom.Name] = dom.ID
		}
		return out
	}
	before := ids()
	if r = run(t, dir, env, "deploy", "restart", "fleet.yaml", "web", "--by", "update-domain"); r.code != 0 || strings.Count(r.stderr, "restarting web-") != 3 {
		t.Fatalf("restart: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// One update domain at a time, in order (each holds one instance here).
	if i0, i1, i2 := strings.Index(r.stderr, "update domain 0: restarting web-0"), strings.Index(r.stderr, "update domain 1: restarting web-1"), strings.Index(r.stderr, "update domain 2: restarting web-2"); !(i0 >= 0 && i0 < i1 && i1 < i2) {
		t.Errorf("restart order:\n%s", r.stderr)
	}
	after := ids()
	for name, id := range before {
		if after[name] == id || after[name] <= 0 {
			t.Errorf("%s: domain id %d before, %d after: not restarted, or not running", name, id, after[name])
		}
	}
	// ... and each guest boots again.
	waitBoots(2)
	// Scale in: the file says 1 now, and so do the hosts.
	if r = run(t, dir, env, "deploy", "scale", "fleet.yaml", "web", "1"); r.code != 0 || !strings.Contains(r.stdout, "- delete") {
		t.Fatalf("scale: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "fleet.yaml")); !strings.Contains(string(b), "capacity: 1") {
		t.Errorf("scale did not write the fleet file:\n%s", b)
	}
	if r = run(t, dir, env, "deploy", "status", "fleet.yaml", "-O", "json"); len(envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any)) != 1 {
		t.Errorf("after scale 1: %s", r.stdout)
	}
	// Another fleet's set on the same host: destroying web leaves it alone.
	other, _ := os.ReadFile(filepath.Join(dir, "fleet.yaml"))
	os.WriteFile(filepath.Join(dir, "other.yaml"), []byte(strings.Replace(string(other), "name: web", "name: api", 1)), 0o644)
	if r = run(t, dir, env, "deploy", "apply", "other.yaml"); r.code != 0 {
		t.Fatalf("apply other.yaml: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "destroy", "fleet.yaml", "web"); r.code != 0 || strings.Contains(r.stdout, "api-") {
		t.Fatalf("destroy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, env, "deploy", "status", "other.yaml", "-O", "json")
	if insts := envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any); len(insts) != 1 || insts[0].(map[string]any)["state"] != "running" {
		t.Fatalf("destroying web touched api: %v", insts)
	}
	if r = run(t, dir, env, "deploy", "destroy", "other.yaml", "api"); r.code != 0 {
		t.Fatalf("destroy api: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, env, "deploy", "status", "fleet.yaml", "-O", "json")
	if insts := envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any); len(insts) != 0 {
		t.Fatalf("after destroy: %v", insts)
	}
}

// kill -9 in the middle of kiln deploy apply: the next apply ends with
// exactly what the file says, and nothing orphaned (no overlay or seed
// without its domain).
func TestDeployKilledMidApply(t *testing.T) {
	testutil.Integration(t)
	d := testlibvirt.Start(t, testlibvirt.Options{})
	dir, env := deployFixture(t, d, "ScaleSet", 5)
	// One instance at a time, so the kill lands with some made, some not.
	cmd := exec.Command(kilnBin, "deploy", "apply", "fleet.yaml", "--parallel", "1")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conn := d.Connect(t)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		doms, _, err := conn.ConnectListAllDomains(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(doms) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("apply made no domains in two minutes")
		}
		time.Sleep(20 * time.Millisecond) // polling libvirt for the kill's moment
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if doms, _, _ := conn.ConnectListAllDomains(1, 0); len(doms) >= 5 {
		t.Fatalf("apply finished before the kill (%d domains): the test proves nothing", len(doms))
	}

	if r := run(t, dir, env, "deploy", "apply", "fleet.yaml"); r.code != 0 {
		t.Fatalf("apply after the kill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, dir, env, "deploy", "plan", "fleet.yaml"); r.code != 0 {
		t.Fatalf("plan after the second apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	doms, _, _ := conn.ConnectListAllDomains(1, 0)
	pool, err := conn.StoragePoolLookupByName("kiln")
	if err != nil {
		t.Fatal(err)
	}
	conn.StoragePoolRefresh(pool, 0)
	vols, _, _ := conn.StoragePoolListAllVolumes(pool, 1, 0)
	var names []string
	for _, v := range vols {
		names = append(names, v.Name)
	}
	sort.Strings(names)
	if len(doms) != 5 || len(vols) != 17 { // 5 overlays, seeds and console logs, the base and its marker
		t.Fatalf("after the kill and a re-apply: %d domains, volumes %v", len(doms), names)
	}
}

// A host that does not answer: plan fails naming it, and says what to check.
func TestDeployUnreachableHost(t *testing.T) {
	dir := t.TempDir()
	smallImage(t, dir)
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte("apiVersion: kiln/v1\nname: web\nboot:\n  hostname: \"web-{index}\"\n"), 0o644)
	sock := filepath.Join(dir, "no-libvirtd-here.sock")
	os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte("apiVersion: kiln/v1\nkind: ScaleSet\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\nhosts: [\"qemu+unix:///system?socket="+sock+"\"]\n"), 0o644)
	r := run(t, dir, []string{"KILN_CACHE_DIR=" + filepath.Join(dir, "cache")}, "deploy", "plan", "fleet.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, sock) || !strings.Contains(r.stderr, "is libvirtd running there") {
		t.Fatalf("plan against a host that is not there: exit %d\n%s", r.code, r.stderr)
	}
}
