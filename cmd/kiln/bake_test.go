package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
)

// slowRecipe is a recipe whose bake runs a command long enough to be
// interrupted; marker names the command so the test can look for it.
func slowRecipe(t *testing.T, marker string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "slow.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf(`apiVersion: kiln/v1
name: kiln-it-slow
bake:
  files:
    - {path: /etc/kiln-it/marker, content: "%s\n"}
  commands:
    - [sleep, "%s"]
disk: {size: 2GiB}
`, marker, marker)), 0o644)
	return p
}

func needBake(t *testing.T) {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedRoot(t)
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4", "qemu-img", "grub-mkimage", "unshare"} {
		testutil.NeedTool(t, tool)
	}
}

// startBake runs kiln bake with JSON events and returns once the bake step
// (the slow command) has started.
func startBake(t *testing.T, recipe, out, cache string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(kilnBin, "bake", recipe, "-o", out, "--cache-dir", cache, "--output", "json")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(20*time.Minute, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		var ev struct{ Step, Kind, Msg string }
		json.Unmarshal(sc.Bytes(), &ev)
		if ev.Step == "bake" && ev.Kind == "note" && strings.HasPrefix(ev.Msg, "run sleep") {
			// The command is starting in the chroot: wait until it runs.
			if err := pollUntil(30*time.Second, func() (bool, error) {
				p, err := processesWith(marker(recipe))
				return len(p) > 0, err
			}); err != nil {
				cmd.Process.Kill()
				t.Fatalf("the bake's command never ran: %v", err)
			}
			return cmd, sc
		}
	}
	t.Fatalf("bake never reached its command: %v", cmd.Wait())
	return nil, nil
}

// processesWith lists the processes running the slow recipe's command.
// pgrep exits 1 when there is none; any other failure is an error, so a
// missing pgrep cannot pass for "nothing left running".
func processesWith(marker string) ([]string, error) { return pgrep("sleep " + marker) }

// pgrep lists the processes whose command line matches pattern.
func pgrep(pattern string) ([]string, error) {
	out, err := exec.Command("pgrep", "-af", pattern).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgrep: %w", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

// marker is the sleep duration slowRecipe wrote into recipe.
func marker(recipe string) string {
	b, _ := os.ReadFile(recipe)
	_, after, _ := strings.Cut(string(b), `[sleep, "`)
	m, _, _ := strings.Cut(after, `"`)
	return m
}

// pollUntil calls cond until it reports true, fails, or d passes.
func pollUntil(d time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noneLeft fails the test when processes running marker's command remain
// after d.
func noneLeft(t *testing.T, marker string, d time.Duration) {
	t.Helper()
	var left []string
	err := pollUntil(d, func() (bool, error) {
		var err error
		left, err = processesWith(marker)
		return len(left) == 0, err
	})
	if err != nil {
		t.Errorf("processes left running: %v (%v)", left, err)
	}
}

func workDirsOf(cache string, pid int) []string {
	m, _ := filepath.Glob(filepath.Join(cache, "tmp", fmt.Sprintf("*.%d.*", pid)))
	return m
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/mounts")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir) {
			out = append(out, f[1])
		}
	}
	return out
}

// TestBakeSIGINT: an interrupted bake stops at once, removes its work,
// leaves no file at the output path and nothing running, and exits 130.
func TestBakeSIGINT(t *testing.T) {
	needBake(t)
	cache := testutil.CacheDir(t)
	marker := "3131"
	out := filepath.Join(t.TempDir(), "slow.qcow2")
	cmd, _ := startBake(t, slowRecipe(t, marker), out, cache)
	pid := cmd.Process.Pid
	if p, err := processesWith(marker); err != nil || len(p) == 0 {
		t.Fatalf("the bake's command is not running before the signal: %v %v", p, err)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want 130", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("a file was left at the output path")
	}
	noneLeft(t, marker, 5*time.Second)
	if d := workDirsOf(cache, pid); len(d) > 0 {
		t.Errorf("work directories left: %v", d)
	}
	if m := mountsUnder(filepath.Join(cache, "tmp")); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// TestBakeSIGKILL: a killed bake leaves no file at the output path and
// nothing running; the next bake cleans up after it and succeeds.
func TestBakeSIGKILL(t *testing.T) {
	needBake(t)
	cache := testutil.CacheDir(t)
	marker := "3232"
	out := filepath.Join(t.TempDir(), "slow.qcow2")
	recipe := slowRecipe(t, marker)
	cmd, _ := startBake(t, recipe, out, cache)
	pid := cmd.Process.Pid
	if p, err := processesWith(marker); err != nil || len(p) == 0 {
		t.Fatalf("the bake's command is not running before the signal: %v %v", p, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	noneLeft(t, marker, 10*time.Second)
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("a file was left at the output path")
	}
	if m := mountsUnder(filepath.Join(cache, "tmp")); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	// The next bake succeeds (with a quick command) and removes the dead
	// build's work directory.
	quick := strings.Replace(mustRead(t, recipe), `[sleep, "`+marker+`"]`, `["true"]`, 1)
	os.WriteFile(recipe, []byte(quick), 0o644)
	r := run(t, t.TempDir(), nil, "bake", recipe, "-o", out, "--cache-dir", cache)
	if r.code != 0 {
		t.Fatalf("bake after SIGKILL: %+v", r)
	}
	if d := workDirsOf(cache, pid); len(d) > 0 {
		t.Errorf("the killed build's work directories were not cleaned: %v", d)
	}
}

// TestBakeDiskFull runs a bake in a private mount namespace whose cache is
// a small tmpfs: the error says the disk is full, and no temp files remain.
func TestBakeDiskFull(t *testing.T) {
	needBake(t)
	cache := testutil.CacheDir(t)
	// Make sure the base is cached, then give a copy of it a tmpfs with too
	// little room to unpack it.
	recipe := slowRecipe(t, "0")
	if r := run(t, t.TempDir(), nil, "bake", recipe, "-o", filepath.Join(t.TempDir(), "x.qcow2"), "--cache-dir", cache); r.code != 0 {
		t.Fatalf("warm-up bake: %+v", r)
	}
	bases, _ := filepath.Glob(filepath.Join(cache, "bases", "*", "base.tar"))
	if len(bases) == 0 {
		t.Fatal("no cached base")
	}
	st, _ := os.Stat(bases[0])
	small := t.TempDir()
	script := fmt.Sprintf(`set -e
mount -t tmpfs -o size=%d tmpfs %s
mkdir -p %s/cache/bases
cp -a %s %s/cache/bases/
set +e
%s bake %s -o %s/out.qcow2 --cache-dir %s/cache --no-cache
echo "exit=$?"
echo "tmp=[$(ls -A %s/cache/tmp)]"
echo "out=[$(ls -A %s | grep -v cache)]"
`, st.Size()+64<<20, small, small, filepath.Dir(bases[0]), small, kilnBin, recipe, small, small, small, small)
	outb, _ := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script).CombinedOutput()
	o := string(outb)
	if !strings.Contains(strings.ToLower(o), "no space left on device") || !strings.Contains(o, "exit=1") {
		t.Fatalf("want a disk-full error and exit 1, got:\n%s", o)
	}
	if !strings.Contains(o, "tmp=[]") || !strings.Contains(o, "out=[]") {
		t.Fatalf("temp files left behind:\n%s", o)
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestVMBakeSIGINT: interrupting a VM bake kills QEMU, leaves no output and
// no work directory.
func TestVMBakeSIGINT(t *testing.T) {
	needBake(t)
	testutil.NeedGuest(t)
	cache := testutil.CacheDir(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "plain.yaml"), []byte("apiVersion: kiln/v1\nname: kiln-it-plain\ndisk: {size: 2GiB}\n"), 0o644)
	if r := run(t, dir, nil, "bake", "plain.yaml", "-o", "base.qcow2", "--cache-dir", cache); r.code != 0 {
		t.Fatalf("base: %+v", r)
	}
	testutil.VMSlot(t) // the kiln process boots a guest: one at a time on this machine
	os.WriteFile(filepath.Join(dir, "vm.yaml"), []byte("apiVersion: kiln/v1\nname: kiln-it-vmint\nbase: ./base.qcow2\nbake: {files: [{path: /etc/motd, content: \"interrupted\\n\"}]}\ndisk: {firmware: [bios]}\n"), 0o644)
	out := filepath.Join(dir, "vm.qcow2")
	cmd := exec.Command(kilnBin, "bake", "vm.yaml", "-o", out, "--cache-dir", cache, "--output", "json", "--no-cache")
	cmd.Dir = dir
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	sc := bufio.NewScanner(stdout)
	booted := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"step":"vm-bake","kind":"start"`) {
			booted = true
			break
		}
	}
	if !booted {
		t.Fatalf("the VM bake never started: %v", cmd.Wait())
	}
	qemuOf := fmt.Sprintf("qemu-system.*vmbake.%d", pid)
	if err := pollUntil(time.Minute, func() (bool, error) {
		p, err := pgrep(qemuOf)
		return len(p) > 0, err
	}); err != nil {
		cmd.Process.Kill()
		t.Fatalf("QEMU never started: %v", err)
	}
	cmd.Process.Signal(os.Interrupt)
	go func() {
		for sc.Scan() {
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want 130", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("a file was left at the output path")
	}
	if p, err := pgrep(qemuOf); err != nil || len(p) > 0 {
		t.Errorf("QEMU left running: %v %v", p, err)
	}
	if d := workDirsOf(cache, pid); len(d) > 0 {
		t.Errorf("work directories left: %v", d)
	}
}

// TestBakeCheckReproducible: --check-reproducible passes on a recipe whose
// bake is deterministic and removes its second image; on a recipe that
// writes random bytes, it exits 1 naming the file that differs, keeps the
// second image, and publishes nothing.
func TestBakeCheckReproducible(t *testing.T) {
	needBake(t)
	dir := t.TempDir()
	// A recipe no earlier run baked: the first image is this kiln's too,
	// never one an older build left in the test cache.
	run := time.Now().UnixNano()
	write := func(name, command string) string {
		p := filepath.Join(dir, name+".yaml")
		os.WriteFile(p, []byte(fmt.Sprintf(`apiVersion: kiln/v1
name: %s
bake:
  files:
    - {path: /etc/kiln-it/repro, content: "same every time (run %d)\n"}
  commands:
    - %s
disk: {size: 2GiB}
`, name, run, command)), 0o644)
		return p
	}
	bake := func(recipe, out string) (string, int) {
		cmd := exec.Command(kilnBin, "bake", recipe, "-o", out, "--cache-dir", testutil.CacheDir(t), "--check-reproducible")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return string(b), cmd.ProcessState.ExitCode()
	}

	good := filepath.Join(dir, "good.qcow2")
	out, code := bake(write("kiln-it-repro", "chmod 0600 /etc/kiln-it/repro"), good)
	if code != 0 || !strings.Contains(out, "reproducible: a second bake from scratch gave the same bytes") {
		t.Fatalf("deterministic recipe: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "good.rebuilt.qcow2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the second image of a reproducible bake was left behind: %v", err)
	}

	bad := filepath.Join(dir, "bad.qcow2")
	out, code = bake(write("kiln-it-unrepro", "head -c 16 /dev/urandom > /etc/kiln-it/random"), bad)
	if code != 1 || !strings.Contains(out, "~ /etc/kiln-it/random  content sha256:") || !strings.Contains(out, "not reproducible: a second bake of kiln-it-unrepro") {
		t.Fatalf("random recipe: exit %d, want 1 with the differing file named\n%s", code, out)
	}
	if strings.Contains(out, "/etc/kiln-it/repro ") {
		t.Errorf("a file that is the same in both was reported:\n%s", out)
	}
	second := filepath.Join(dir, "bad.rebuilt.qcow2")
	if _, err := os.Stat(second); err != nil || !strings.Contains(out, "kept at "+second) {
		t.Errorf("the second image is not kept (and named) for a closer look: %v\n%s", err, out)
	}
}

// TestBakeLockFile: --lock writes <recipe>.lock beside the recipe holding
// exactly the image's packages; a lock that does not read stops the next
// bake before any work, naming the file, line and column.
func TestBakeLockFile(t *testing.T) {
	needBake(t)
	dir := t.TempDir()
	recipe := filepath.Join(dir, "locked.yaml")
	os.WriteFile(recipe, []byte("apiVersion: kiln/v1\nname: kiln-it-locked\nbake:\n  files:\n    - {path: /etc/kiln-it/locked, content: \"x\\n\"}\ndisk: {size: 2GiB}\n"), 0o644)
	out := filepath.Join(dir, "locked.qcow2")
	cmd := exec.Command(kilnBin, "bake", recipe, "-o", out, "--cache-dir", testutil.CacheDir(t), "--lock")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bake --lock: %v\n%s", err, b)
	}
	lockPath := filepath.Join(dir, "locked.lock")
	if !strings.Contains(string(b), "lock      "+lockPath+" written") {
		t.Errorf("bake --lock does not say where it wrote the lock:\n%s", b)
	}
	lock, _, err := manifest.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Read(manifest.PathFor(out))
	if err != nil {
		t.Fatal(err)
	}
	if d := lock.Drift(m.Packages); !d.Empty() || lock.Recipe != "kiln-it-locked" || len(lock.Releases) == 0 {
		t.Errorf("the lock is not the image's package set and releases: %+v, drift %+v", lock, d)
	}

	// A lock beside the recipe holds the next bake, --lock or not: it says
	// so, and --lock leaves the lock as it was.
	before, _ := os.ReadFile(lockPath)
	cmd = exec.Command(kilnBin, "bake", recipe, "-o", filepath.Join(dir, "relocked.qcow2"), "--cache-dir", testutil.CacheDir(t), "--lock")
	if b, err = cmd.CombinedOutput(); err != nil {
		t.Fatalf("bake --lock with a lock: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "locked    "+lockPath+" (") || strings.Contains(string(b), " written") {
		t.Errorf("a locked bake does not say it held to %s, or wrote a lock:\n%s", lockPath, b)
	}
	if after, _ := os.ReadFile(lockPath); string(after) != string(before) {
		t.Errorf("bake --lock rewrote the lock it held to:\n%s\nnow:\n%s", before, after)
	}

	os.WriteFile(lockPath, []byte("{\n  \"lockVersion\": 1,\n  \"packages\": [oops]\n}\n"), 0o644)
	cmd = exec.Command(kilnBin, "bake", recipe, "-o", filepath.Join(dir, "again.qcow2"), "--cache-dir", testutil.CacheDir(t))
	b, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), lockPath+":3:16: ") || strings.Contains(string(b), "[base]") {
		t.Fatalf("a broken lock: %v; want an error at %s:3:16 before any work\n%s", err, lockPath, b)
	}
}
