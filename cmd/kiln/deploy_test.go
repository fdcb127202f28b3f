package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/lb"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/guestssh"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testchromium"
	"github.com/kiln-project/kiln/internal/testlibvirt"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// deployFixture writes the app-host example's image (baked through the
// shared test cache, so usually a copy), a recipe and a fleet file of one
// set "web" of kind and capacity on the daemon, and the environment kiln
// runs in.
func deployFixture(t *testing.T, d *testlibvirt.Daemon, kind string, capacity int) (string, []string, *guestssh.Key) {
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
	// An operator who logs in over SSH (a forwarded port 22) with a key
	// made for this test.
	key, err := guestssh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte("apiVersion: kiln/v1\nname: web\nboot:\n  hostname: \"web-{index}\"\n"+
		"  users:\n    - name: ops\n      sudo: true\n      sshAuthorizedKeys: [\""+key.AuthorizedKey+"\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(fmt.Sprintf(`apiVersion: kiln/v1
kind: %s
name: web
image: ./web.qcow2
recipe: ./web.yaml
capacity: %d
size: {memory: 512MiB}
network: {ports: [8080, 22]}
hosts: ["%s"]
`, kind, capacity, d.URI)), 0o644)
	return dir, []string{"KILN_CACHE_DIR=" + filepath.Join(dir, "cache")}, key
}

// kiln deploy as a user runs it, against a real libvirtd (the harness's,
// in its own mount namespace): plan says what would change (exit 3), apply
// does it, a second plan has nothing to do (exit 0), status lists the
// instances with their domains and forwarded ports, destroy leaves none.
// The image is a blank disk: the domains run, nothing boots — booting real
// guests is the deploy package's integration tests' job.
// setSize is how many instances TestDeployCLI's set holds. Two prove what
// the test asserts: requests spread, update domains one after another,
// upgrade batches, a scale-out and back; each more is another TCG guest on
// this machine's two cores at every step.
const setSize = 2

// setNames is web-0 ... web-(n-1).
func setNames(n int) []string {
	var names []string
	for i := range n {
		names = append(names, deploy.InstanceName("web", i))
	}
	return names
}

func TestDeployCLI(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedGuest(t)
	d := testlibvirt.Start(t, testlibvirt.Options{})
	dir, env, key := deployFixture(t, d, "AvailabilitySet", setSize)
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
		for i := range setSize {
			for boots(i) < want {
				if time.Now().After(deadline) {
					t.Fatalf("web-%d: %d boots in its console, want %d", i, boots(i), want)
				}
				time.Sleep(2 * time.Second) // polling guests that are starting under TCG
			}
		}
	}

	r := run(t, dir, env, "deploy", "plan", "fleet.yaml")
	if r.code != exitPending || strings.Count(r.stdout, "+ create") != setSize {
		t.Fatalf("plan before apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "apply", "fleet.yaml"); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("%d changed", setSize)) {
		t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "plan", "fleet.yaml"); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("0 to change, %d unchanged", setSize)) {
		t.Fatalf("plan after apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, env, "deploy", "status", "fleet.yaml", "-O", "json")
	insts := envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any)
	if r.code != 0 || len(insts) != setSize {
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
	for i := range setSize {
		out, err := exec.Command(testutil.NeedTool(t, "virsh"), "-c", d.URI, "dumpxml", fmt.Sprintf("web-%d", i)).CombinedOutput()
		if want := fmt.Sprintf(`faultDomain="%d" updateDomain="%d"`, i%3, i); err != nil || !strings.Contains(string(out), want) {
			t.Errorf("virsh dumpxml web-%d lacks %s: %v\n%s", i, want, err, out)
		}
	}
	// The image's origin, and the table a person reads, for one set.
	if src := insts[0].(map[string]any)["meta"].(map[string]any)["source"]; src != filepath.Join(dir, "web.qcow2") {
		t.Errorf("status: source %v, want the local image", src)
	}
	if r = run(t, dir, env, "deploy", "status", "fleet.yaml", "web"); r.code != 0 || !strings.Contains(r.stdout, "SOURCE") || strings.Count(r.stdout, "running") != setSize || !strings.Contains(r.stdout, "127.0.0.1:") {
		t.Errorf("status web: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = run(t, dir, env, "deploy", "status", "fleet.yaml", "nope"); r.code != 2 || !strings.Contains(r.stderr, `no set "nope"`) {
		t.Errorf("status of an unknown set: exit %d\n%s", r.code, r.stderr)
	}
	// Every instance's kernel starts: its console shows one boot.
	waitBoots(1)
	// The live drawing of the set: what the host holds.
	if r = run(t, dir, env, "deploy", "graph", "fleet.yaml", "web", "--live", "--format", "dot"); r.code != 0 || strings.Count(r.stdout, "running") != setSize || !strings.Contains(r.stdout, "at 127.0.0.1:") || strings.Contains(r.stdout, "planned") {
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
	if r = run(t, dir, env, "deploy", "restart", "fleet.yaml", "web", "--by", "update-domain"); r.code != 0 || strings.Count(r.stderr, "restarting web-") != setSize {
		t.Fatalf("restart: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// One update domain at a time, in order (each holds one instance here).
	for i, prev := 0, -1; i < setSize; i++ {
		at := strings.Index(r.stderr, fmt.Sprintf("update domain %d: restarting web-%d", i, i))
		if at <= prev {
			t.Errorf("restart order: update domain %d not after %d:\n%s", i, i-1, r.stderr)
		}
		prev = at
	}
	after := ids()
	for name, id := range before {
		if after[name] == id || after[name] <= 0 {
			t.Errorf("%s: domain id %d before, %d after: not restarted, or not running", name, id, after[name])
		}
	}
	// ... and each guest boots again.
	waitBoots(2)
	// The controller, on the same guests: a load balancer, health, a repair.
	controlFleet(t, dir, env, key, d.URI)
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
	if ids()["web-lb"] <= 0 {
		t.Errorf("scale (an apply) removed the set's balancer VM, which is the controller's: %v", ids())
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
	if _, ok := ids()["web-lb"]; ok || !strings.Contains(r.stdout, "web-lb") {
		t.Errorf("destroy left web's balancer VM: %v\n%s", ids(), r.stdout)
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
	dir, env, _ := deployFixture(t, d, "ScaleSet", 5)
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
	// An operator who logs in over SSH (a forwarded port 22) with a key
	// made for this test.
	key, err := guestssh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "web.yaml"), []byte("apiVersion: kiln/v1\nname: web\nboot:\n  hostname: \"web-{index}\"\n"+
		"  users:\n    - name: ops\n      sudo: true\n      sshAuthorizedKeys: [\""+key.AuthorizedKey+"\"]\n"), 0o644)
	sock := filepath.Join(dir, "no-libvirtd-here.sock")
	os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte("apiVersion: kiln/v1\nkind: ScaleSet\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\nhosts: [\"qemu+unix:///system?socket="+sock+"\"]\n"), 0o644)
	r := run(t, dir, []string{"KILN_CACHE_DIR=" + filepath.Join(dir, "cache")}, "deploy", "plan", "fleet.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, sock) || !strings.Contains(r.stderr, "is libvirtd running there") {
		t.Fatalf("plan against a host that is not there: exit %d\n%s", r.code, r.stderr)
	}
}

// controlFleet runs kiln deploy run on the fleet's running app-host
// guests, as a user would: HAProxy spreads requests over the healthy
// instances, and the live view shows them in a real browser; a guest whose
// app is stopped leaves the balancer (the open page shows it unhealthy);
// the controller is killed (-9) and started again, and the new one
// replaces the guest, once; the replacement rejoins. Then a rolling
// upgrade with a client on the balancer throughout (zero failures), its
// controller killed half-way and the upgrade resumed; a broken image that
// stops the upgrade, and --rollback; autoscale on real CPU load.
func controlFleet(t *testing.T, dir string, env []string, key *guestssh.Key, uri string) {
	state, err := os.MkdirTemp("", "ks") // HAProxy's socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	listen := fmt.Sprintf("127.0.0.1:%d", tcpPort(t))
	fleet := filepath.Join(dir, "fleet.yaml")
	base, _ := os.ReadFile(fleet)
	ops := "health: {probe: {http: {port: 8080, path: /healthz}}, interval: 5s, probes: 2, gracePeriod: 10m}\n" +
		"loadBalancer: {listen: \"" + listen + "\"}\n" +
		"automaticRepairs: {enabled: true, gracePeriod: 10s, repairAction: Replace}\n"
	if err := os.WriteFile(fleet, append(base, ops...), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(fleet, base, 0o644)
	defer func() { // the balancer outlives a killed controller: stop it by its pid
		if b, err := lb.Attach(context.Background(), filepath.Join(state, "lb", "web"), nil); err == nil {
			b.Stop(context.Background())
		}
	}()
	start := func(log string, args ...string) *exec.Cmd {
		f, err := os.Create(filepath.Join(dir, log))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(kilnBin, append([]string{"deploy", "run", "fleet.yaml", "--state-dir", state}, args...)...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = dir, f, f
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	logOf := func(name string) string { b, _ := os.ReadFile(filepath.Join(dir, name)); return string(b) }
	// status: each instance's health and membership, as the controller saw them.
	status := func() map[string][2]string {
		r := run(t, dir, env, "deploy", "status", "fleet.yaml", "--state-dir", state, "-O", "json")
		out := map[string][2]string{}
		data, ok := envelopeOf(t, r)["data"].(map[string]any)
		if !ok { // a failed status (reported by the next wait if it lasts)
			t.Logf("status: exit %d\n%s", r.code, r.stderr)
			return out
		}
		for _, x := range data["instances"].([]any) {
			in := x.(map[string]any)
			h, _ := in["health"].(string)
			m, _ := in["loadBalancer"].(string)
			out[in["name"].(string)] = [2]string{h, m}
		}
		return out
	}
	waitFor := func(what string, within time.Duration, log string, cond func(map[string][2]string) bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			st := status()
			if cond(st) {
				return
			}
			if time.Now().After(deadline) {
				r := run(t, dir, env, "deploy", "status", "fleet.yaml", "--state-dir", state, "-O", "json")
				var consoles strings.Builder
				for name, v := range st {
					if v != [2]string{"healthy", "in"} {
						c := run(t, dir, env, "deploy", "console", "fleet.yaml", "web/"+name)
						out := c.stdout
						if len(out) > 4000 {
							out = out[len(out)-4000:]
						}
						fmt.Fprintf(&consoles, "--- console of %s (end):\n%s\n", name, out)
					}
				}
				t.Fatalf("%s: not within %s; status %v\n%s\ncontroller:\n%s\n%s", what, within, st, r.stdout, logOf(log), consoles.String())
			}
			time.Sleep(2 * time.Second) // polling guests under TCG
		}
	}
	allIn := func(st map[string][2]string) bool {
		n := 0
		for _, v := range st {
			if v == [2]string{"healthy", "in"} {
				n++
			}
		}
		return n == setSize
	}
	get := func(n int) (ok int, errs []string) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for range n {
			resp, err := c.Get("http://" + listen + "/")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && strings.Contains(string(body), "hello") {
					ok++
					continue
				}
				err = fmt.Errorf("status %d: %q", resp.StatusCode, body)
			}
			errs = append(errs, err.Error())
		}
		return ok, errs
	}
	served := func() map[string]int64 {
		b, err := lb.Attach(context.Background(), filepath.Join(state, "lb", "web"), nil)
		if err != nil {
			t.Fatal(err)
		}
		stats, err := b.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, s := range stats {
			out[s.Name] = s.Total
		}
		return out
	}

	viewAddr := fmt.Sprintf("127.0.0.1:%d", tcpPort(t))
	first := start("run1.log", "--serve", viewAddr)
	waitFor(fmt.Sprintf("%d healthy instances in the load balancer", setSize), 8*time.Minute, "run1.log", allIn)
	// The live view, in a real browser: what a person sees of the fleet.
	browser := testchromium.Start(t)
	pctx, pcancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer pcancel()
	page := browser.NewPage(pctx, t)
	defer page.Close() // before the controller goes: its live stream would hold a shutdown
	page.Navigate(pctx, "http://"+viewAddr+"/")
	row := func(name string) string {
		return `(document.querySelector('tr[data-instance="` + name + `"]')?.innerText ?? "")`
	}
	for _, name := range setNames(setSize) {
		page.WaitFor(pctx, name+" healthy in the view", row(name)+`.includes("healthy")`)
	}
	if ok, errs := get(30); ok != 30 {
		t.Fatalf("through the balancer: %d of 30 ok: %v", ok, errs)
	}
	spread := served()
	for _, name := range setNames(setSize) {
		if spread[name] < 5 {
			t.Errorf("%s answered %d of 30 requests: not spread (%v)", name, spread[name], spread)
		}
	}
	// web-1's app stops (an operator logs in and stops its service). It
	// leaves the balancer, and the others carry the requests.
	r := run(t, dir, env, "deploy", "status", "fleet.yaml", "--state-dir", state, "-O", "json")
	sshPort := ""
	for _, x := range envelopeOf(t, r)["data"].(map[string]any)["instances"].([]any) {
		if in := x.(map[string]any); in["name"] == "web-1" {
			sshPort = fmt.Sprint(in["ports"].(map[string]any)["22"])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	ssh, err := guestssh.Dial(ctx, "127.0.0.1:"+sshPort, "ops", key, nil)
	cancel()
	if err != nil {
		t.Fatalf("ssh to web-1 on port %s: %v", sshPort, err)
	}
	if out, code, err := ssh.Run(context.Background(), "sudo systemctl stop hello"); err != nil || code != 0 {
		t.Fatalf("stop hello on web-1: exit %d %v\n%s", code, err, out)
	}
	ssh.Close()
	waitFor("web-1 unhealthy and out", 2*time.Minute, "run1.log", func(st map[string][2]string) bool {
		return st["web-1"] == [2]string{"unhealthy", "out"}
	})
	// The open page follows: web-1 shows as unhealthy, without a reload.
	page.WaitFor(pctx, "web-1 unhealthy in the view", row("web-1")+`.includes("unhealthy")`)
	testchromium.KeepScreenshot(t, "deploy-run-live-view.png", page.Screenshot(pctx, 1280))
	page.OnlyFrom("http://" + viewAddr)
	for _, p := range page.Problems() {
		t.Errorf("the live view: %s", p)
	}
	page.Close()
	before := served()["web-1"]
	if ok, errs := get(20); ok != 20 {
		t.Errorf("with web-1 out: %d of 20 ok: %v", ok, errs)
	}
	if after := served()["web-1"]; after != before {
		t.Errorf("web-1 got %d requests while out of the balancer", after-before)
	}
	// kill -9 the controller before its repair can finish; a new one takes
	// over the state, the balancer (still serving), and the repair.
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	if ok, errs := get(10); ok != 10 {
		t.Errorf("with no controller running, the balancer should still serve: %d of 10 ok: %v", ok, errs)
	}
	second := start("run2.log")
	waitFor("web-1 repaired and back", 8*time.Minute, "run2.log", allIn)
	r = run(t, dir, env, "deploy", "events", "fleet.yaml", "web", "--state-dir", state, "-n", "0")
	if n := strings.Count(r.stdout, "Replace web-1"); r.code != 0 || n != 1 {
		t.Errorf("events: web-1 replaced %d times, want once (exit %d)\n%s%s", n, r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "web-1: healthy → unhealthy") {
		t.Errorf("events lack web-1's health change:\n%s", r.stdout)
	}
	if ok, errs := get(10); ok != 10 {
		t.Errorf("after the repair: %d of 10 ok: %v", ok, errs)
	}
	// A rolling upgrade to a new image (the same guest, written again as
	// another qcow2: another digest), new instances before old ones go,
	// while a client sends requests through the balancer the whole time.
	// The controller is killed (-9) half-way; the next one resumes the
	// upgrade where it was, and the balancer serves on meanwhile.
	digest := newImage(t, dir, "web.qcow2", "web2.qcow2")
	upgraded := strings.Replace(string(base), "image: ./web.qcow2", "image: ./web2.qcow2", 1) + ops +
		"upgradePolicy: {mode: Rolling, rollingUpgradePolicy: {maxSurge: true}}\n"
	stop := make(chan struct{})
	done := make(chan [2]int)
	var errs []string
	go func() {
		var ok, failed int
		for {
			select {
			case <-stop:
				done <- [2]int{ok, failed}
				return
			default:
			}
			n, e := get(1)
			ok, failed = ok+n, failed+len(e)
			errs = append(errs, e...)
		}
	}()
	if err := os.WriteFile(fleet, []byte(upgraded), 0o644); err != nil {
		t.Fatal(err)
	}
	statusJSON := func() []map[string]any {
		r := run(t, dir, env, "deploy", "status", "fleet.yaml", "--state-dir", state, "-O", "json")
		data, ok := envelopeOf(t, r)["data"].(map[string]any)
		if !ok {
			return nil
		}
		var out []map[string]any
		for _, x := range data["instances"].([]any) {
			out = append(out, x.(map[string]any))
		}
		return out
	}
	onNew := func(st map[string][2]string) bool {
		n := 0
		for _, in := range statusJSON() {
			if in["meta"].(map[string]any)["image"] == digest && in["health"] == "healthy" && in["loadBalancer"] == "in" {
				n++
			}
		}
		return n == setSize && len(st) == setSize
	}
	events := func() string {
		return run(t, dir, env, "deploy", "events", "fleet.yaml", "web", "--state-dir", state, "-n", "0").stdout
	}
	// Killed once the first batch is done and the second's surge instance
	// exists: one instance more than the set, one of them on the new image.
	var firstBatch string
	waitFor("the upgrade's second batch under way", 10*time.Minute, "run2.log", func(st map[string][2]string) bool {
		if strings.Count(events(), "upgrade-batch") != 1 || len(st) != setSize+1 {
			return false
		}
		for _, in := range statusJSON() {
			if in["meta"].(map[string]any)["image"] == digest && in["health"] == "healthy" {
				firstBatch = in["name"].(string)
			}
		}
		return firstBatch != ""
	})
	second.Process.Signal(syscall.SIGKILL)
	second.Wait()
	third := start("run3.log")
	waitFor("every instance upgraded", 15*time.Minute, "run3.log", onNew)
	close(stop)
	counts := <-done
	if counts[1] > 0 || counts[0] < 10 {
		t.Errorf("through the balancer during the rolling upgrade: %d ok, %d failed: %v", counts[0], counts[1], errs)
	}
	ev := events()
	if strings.Count(ev, "upgrade-batch") != setSize || !strings.Contains(ev, "upgrade-done") || strings.Count(ev, "upgrade to "+digest[:19]) != 1 {
		t.Errorf("events of the upgrade: want one start, %d batches and its end\n%s", setSize, ev)
	}
	if _, ok := status()[firstBatch]; !ok {
		t.Errorf("%s, upgraded before the kill, is gone: the upgrade started over", firstBatch)
	}
	// A broken image (a blank disk: nothing boots): the upgrade stops after
	// its first batch, whose surge instance goes, and the set keeps serving
	// on the image before; --rollback writes that image back.
	third.Process.Signal(os.Interrupt)
	if err := third.Wait(); err != nil {
		t.Errorf("controller after an interrupt: %v\n%s", err, logOf("run3.log"))
	}
	fourth := start("run4.log", "--health-timeout", "90s", "--stop-balancers")
	blankImage(t, dir, "web2.qcow2", "broken.qcow2")
	if err := os.WriteFile(fleet, []byte(strings.Replace(upgraded, "./web2.qcow2", "./broken.qcow2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * time.Minute)
	for ev = events(); !strings.Contains(ev, "upgrade-stopped"); ev = events() {
		if time.Now().After(deadline) {
			t.Fatalf("the broken upgrade did not stop:\n%s\n%s", ev, logOf("run4.log"))
		}
		time.Sleep(5 * time.Second) // polling the controller's log
	}
	waitFor("the set on the image before, every instance serving", 3*time.Minute, "run4.log", onNew)
	if ok, errs := get(10); ok != 10 {
		t.Errorf("after the stopped upgrade: %d of 10 ok: %v", ok, errs)
	}
	if r := run(t, dir, env, "deploy", "upgrade", "fleet.yaml", "web", "--rollback", "--state-dir", state); r.code != 0 || !strings.Contains(r.stderr, "web2.qcow2") {
		t.Errorf("rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(fleet); !strings.Contains(string(b), "web2.qcow2") || strings.Contains(string(b), "broken.qcow2") {
		t.Errorf("after --rollback the fleet file names:\n%s", b)
	}
	waitFor("rolled back", 3*time.Minute, "run4.log", func(st map[string][2]string) bool {
		return strings.Contains(events(), "rolled-back") && onNew(st)
	})
	autoscaleOnLoad(t, dir, env, key, fleet, statusJSON, events, waitFor)
	inVM := balancerInVM(t, dir, uri, fleet, state, listen, get, events, func() string { return logOf("run4.log") })
	fifth := balancerVMSurvivesKill(t, inVM, state, func() { fourth.Process.Signal(syscall.SIGKILL); fourth.Wait() },
		func() *exec.Cmd { return start("run5.log", "--stop-balancers") }, get, events)
	// Interrupted, the controller stops its balancer (--stop-balancers).
	fifth.Process.Signal(os.Interrupt)
	if err := fifth.Wait(); err != nil {
		t.Errorf("controller after an interrupt: %v\n%s", err, logOf("run5.log"))
	}
	if _, err := inVM.Stats(context.Background()); err == nil {
		t.Errorf("the balancer in web-lb still answers after the controller stopped with --stop-balancers")
	}
}

// autoscaleOnLoad gives the fleet's set an autoscale profile on CPU, then
// burns CPU in every guest (a niced busy loop, started over SSH): the set
// scales out by one, and once the load stops it scales in again after the
// cooldown, once each way.
func autoscaleOnLoad(t *testing.T, dir string, env []string, key *guestssh.Key, fleet string,
	statusJSON func() []map[string]any, events func() string,
	waitFor func(string, time.Duration, string, func(map[string][2]string) bool)) {
	t.Helper()
	b, err := os.ReadFile(fleet)
	if err != nil {
		t.Fatal(err)
	}
	// An availability set's instances are placed by hand: the set becomes
	// a scale set, spread as before (its instances stay, kind is not part
	// of what they are made from), with an autoscale profile.
	scaleSet := strings.Replace(string(b), "kind: AvailabilitySet\n", "kind: ScaleSet\nfaultDomains: 3\n", 1)
	profile := fmt.Sprintf("autoscale:\n  minimum: %d\n  maximum: %d\n  interval: 10s\n  rules:\n", setSize, setSize+1) +
		"    - {metric: cpu, timeWindow: 30s, operator: '>', threshold: 30, direction: out, cooldown: 30s}\n" +
		"    - {metric: cpu, timeWindow: 30s, operator: '<', threshold: 20, direction: in, cooldown: 30s}\n"
	if scaleSet == string(b) {
		t.Fatalf("the fleet file is no availability set:\n%s", b)
	}
	before := map[string]bool{}
	for _, in := range statusJSON() {
		before[in["name"].(string)] = true
	}
	if err := os.WriteFile(fleet, []byte(scaleSet+profile), 0o644); err != nil {
		t.Fatal(err)
	}
	guestRun := func(name, port, command string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, err := guestssh.Dial(ctx, "127.0.0.1:"+port, "ops", key, nil)
		if err != nil {
			t.Fatalf("ssh to %s on port %s: %v", name, port, err)
		}
		defer c.Close()
		if out, code, err := c.Run(ctx, command); err != nil || code != 0 {
			t.Fatalf("%s: %s: exit %d %v\n%s", name, command, code, err, out)
		}
	}
	loaded := map[string]string{}
	for _, in := range statusJSON() {
		if !before[in["name"].(string)] {
			t.Fatalf("%s is new: the change of kind replaced instances (before: %v)", in["name"], before)
		}
		name, port := in["name"].(string), fmt.Sprint(in["ports"].(map[string]any)["22"])
		guestRun(name, port, "sudo systemd-run --quiet --unit=kiln-burn --nice=19 sh -c 'while :; do :; done'")
		loaded[name] = port
	}
	waitFor("a scale-out on CPU load", 5*time.Minute, "run4.log", func(map[string][2]string) bool {
		return strings.Contains(events(), "autoscale scaled out")
	})
	for name, port := range loaded {
		guestRun(name, port, "sudo systemctl stop kiln-burn")
	}
	serving := func(n int) func(map[string][2]string) bool {
		return func(st map[string][2]string) bool {
			in := 0
			for _, v := range st {
				if v == [2]string{"healthy", "in"} {
					in++
				}
			}
			return len(st) == n && in == n
		}
	}
	waitFor(fmt.Sprintf("%d instances serving after the scale-out", setSize+1), 8*time.Minute, "run4.log", serving(setSize+1))
	scaledOut := map[string]bool{}
	for _, in := range statusJSON() {
		scaledOut[in["name"].(string)] = true
	}
	for name := range before {
		if !scaledOut[name] {
			t.Errorf("%s went in the scale-out (now %v)", name, scaledOut)
		}
	}
	waitFor("a scale-in once the load stopped", 5*time.Minute, "run4.log", func(st map[string][2]string) bool {
		return strings.Contains(events(), "autoscale scaled in") && serving(setSize)(st)
	})
	ev := events()
	if strings.Count(ev, "autoscale scaled out") != 1 || strings.Count(ev, "autoscale scaled in") != 1 {
		t.Errorf("autoscale events: want one scale-out and one scale-in\n%s", ev)
	}
	if b, _ := os.ReadFile(fleet); !strings.Contains(string(b), fmt.Sprintf("capacity: %d", setSize)) {
		t.Errorf("after the scale-in the fleet file says:\n%s", b)
	}
	// setSize of them remain (the highest ordinal goes first): nothing
	// was replaced on the way.
	for _, in := range statusJSON() {
		if !scaledOut[in["name"].(string)] {
			t.Errorf("after the scale-in %s remains, not one of %v", in["name"], scaledOut)
		}
	}
	// The profile goes again: what follows scales by hand.
	if err := os.WriteFile(fleet, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tcpPort(t *testing.T) int {
	t.Helper()
	p, err := qemu.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newImage writes the image src again as dst, compressed another way (the
// same guest, another digest), with its manifest; it returns dst's digest.
func newImage(t *testing.T, dir, src, dst string) string {
	t.Helper()
	out, err := exec.Command(testutil.NeedTool(t, "qemu-img"), "convert", "-O", "qcow2", "-c", "-o", "compression_type=zlib",
		filepath.Join(dir, src), filepath.Join(dir, dst)).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	m, err := manifest.Read(manifest.PathFor(filepath.Join(dir, src)))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := digest.File(filepath.Join(dir, dst))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, dst))
	m.Artifacts[0].Name, m.Artifacts[0].SHA256, m.Artifacts[0].Size = dst, sum.String(), st.Size()
	m.Disk.Compression, m.Disk.FileSize = "zlib", st.Size()
	if err := manifest.Write(manifest.PathFor(filepath.Join(dir, dst)), m); err != nil {
		t.Fatal(err)
	}
	return sum.String()
}

// blankImage writes a blank disk of src's size as dst, with src's manifest
// made to fit it: an image that boots nothing.
func blankImage(t *testing.T, dir, src, dst string) {
	t.Helper()
	m, err := manifest.Read(manifest.PathFor(filepath.Join(dir, src)))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testutil.NeedTool(t, "qemu-img"), "create", "-f", "qcow2", filepath.Join(dir, dst), fmt.Sprint(m.Disk.VirtualSize)).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	sum, err := digest.File(filepath.Join(dir, dst))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, dst))
	m.Artifacts[0].Name, m.Artifacts[0].SHA256, m.Artifacts[0].Size = dst, sum.String(), st.Size()
	m.Disk.FileSize = st.Size()
	if err := manifest.Write(manifest.PathFor(filepath.Join(dir, dst)), m); err != nil {
		t.Fatal(err)
	}
}
