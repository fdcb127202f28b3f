package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/registry"
)

// writeTemplate writes files into a temp dir and returns it.
func writeTemplate(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const requirePlugin = `packer {
  required_plugins {
    kiln = {
      version = ">= 0.1.0"
      source  = "github.com/kiln-project/kiln"
    }
  }
}
`

// TestBadInput: each mistake is a clear error from packer validate, with
// the recipe's file:line:col where the recipe is wrong, and no output.
func TestBadInput(t *testing.T) {
	p := newPacker(t)
	badRecipe := "apiVersion: kiln/v1\nname: web\nbake:\n  pakages: [htop]\n"
	cases := []struct {
		name     string
		template string
		want     []string // regexps the output must match
	}{
		{"missing recipe", `source "kiln" "web" { recipe = "nope.yaml" }`,
			[]string{`nope\.yaml: cannot read recipe`}},
		{"recipe and recipe_content", `source "kiln" "web" {
  recipe         = "web.yaml"
  recipe_content = "name: web"
}`, []string{`recipe and recipe_content are exclusive`}},
		{"neither", `source "kiln" "web" {}`, []string{`recipe or recipe_content is required`}},
		{"recipe error", `source "kiln" "web" { recipe = "bad.yaml" }`,
			[]string{`bad\.yaml:4:3: bake\.pakages: unknown key.*packages`}},
		{"inline recipe error", `source "kiln" "web" { recipe_content = file("bad.yaml") }`,
			[]string{`recipe_content:4:3: bake\.pakages`}},
		{"bad override", `source "kiln" "web" {
  recipe    = "web.yaml"
  disk_size = "huge"
}`, []string{`disk_size: `}},
		{"unknown HCL key", `source "kiln" "web" {
  recipe  = "web.yaml"
  recipee = "web.yaml"
}`, []string{`Unsupported argument`, `"recipee" is not expected`}},
		{"bad ref", `source "kiln" "web" { recipe = "web.yaml" }
build {
  sources = ["source.kiln.web"]
  post-processor "kiln-push" { ref = "ftp://example.com/x" }
}`, []string{`ref: image reference "ftp://example.com/x": unknown scheme`}},
		{"bad format", `source "kiln" "web" { recipe = "web.yaml" }
build {
  sources = ["source.kiln.web"]
  post-processor "kiln-push" {
    ref    = "oci:./store:web"
    format = "vmdk"
  }
}`, []string{`format: unknown format "vmdk"`}},
		{"seed stage", `data "kiln-seed" "x" {
  recipe = "web.yaml"
  stage  = "later"
}
source "file" "x" {
  content = data.kiln-seed.x.meta_data
  target  = "x"
}
build { sources = ["source.file.x"] }`, []string{`stage: unknown stage "later"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl := c.template
			if !strings.Contains(tmpl, "build {") {
				tmpl += "\nbuild { sources = [\"source.kiln.web\"] }\n"
			}
			dir := writeTemplate(t, map[string]string{
				"t.pkr.hcl": requirePlugin + tmpl,
				"bad.yaml":  badRecipe,
				"web.yaml":  "apiVersion: kiln/v1\nname: web\n",
			})
			out, err := run(t, p, dir, "validate", "-evaluate-datasources", "t.pkr.hcl")
			if err == nil {
				t.Fatalf("packer validate passed:\n%s", out)
			}
			t.Logf("packer validate:\n%s", out)
			for _, w := range c.want {
				if !regexp.MustCompile(w).MatchString(out) {
					t.Errorf("output does not match %q:\n%s", w, out)
				}
			}
			if ents, _ := filepath.Glob(filepath.Join(dir, "output-*")); len(ents) > 0 {
				t.Errorf("validate left %v", ents)
			}
		})
	}
}

// TestPushFails: with the registry down, the build fails naming the push,
// and the registry holds nothing of it once it is back.
func TestPushFails(t *testing.T) {
	p := newPacker(t)
	reg := testregistry.Start(t, testregistry.Options{})
	dir := examples(t)
	ref := reg.Host + "/kiln/app-host:down"
	reg.Stop()
	out, err := run(t, p, dir, "build", "-color=false", "-only=web.kiln.app-host",
		"-var", "ref="+ref, "-var", "cache_dir="+testutil.CacheDir(t), "web.pkr.hcl")
	if err == nil {
		t.Fatalf("packer build passed with the registry down:\n%s", out)
	}
	if !strings.Contains(out, "push to "+ref) {
		t.Errorf("the error does not name the push:\n%s", out)
	}
	reg.Restart(t)
	c := registry.New(registry.Options{})
	if info, err := c.Inspect(context.Background(), mustRef(t, ref)); err == nil {
		t.Errorf("the registry holds %s after a failed push: %s", ref, info.Digest)
	}
}

// TestInterrupt: Ctrl-C in the middle of a bake (no_cache, so it really
// bakes, offline) stops it: packer fails, the output directory is gone,
// kiln's cache keeps no work directory of it, and no plugin process is
// left.
func TestInterrupt(t *testing.T) {
	testutil.NeedRoot(t)
	p := newPacker(t)
	cache := testutil.CacheDir(t)
	recipe, err := filepath.Abs(filepath.Join("..", "..", "examples", "app-host.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeTemplate(t, map[string]string{"t.pkr.hcl": requirePlugin + `
source "kiln" "web" {
  recipe           = "` + recipe + `"
  cache_dir        = "` + cache + `"
  no_cache         = true
  output_directory = "out"
}
build { sources = ["source.kiln.web"] }
`})
	before := map[string]bool{}
	tmpEntries := func() []string {
		ents, _ := os.ReadDir(filepath.Join(cache, "tmp"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	for _, n := range tmpEntries() {
		before[n] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd, out := p.Command(ctx, dir, "build", "-color=false", "t.pkr.hcl")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := regexp.MustCompile(`kiln\.web: (bake|sysprep|assemble)\b`)
	for !started.MatchString(out.String()) {
		if cmd.ProcessState != nil || ctx.Err() != nil {
			t.Fatalf("the bake never started:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Ctrl-C in a terminal interrupts the foreground process group:
	// Packer (whose panicwrap parent leaves signals to the group), the
	// plugin and whatever the plugin runs.
	interrupted := time.Now()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	t.Logf("packer exited %v, %s after the interrupt:\n%s", err, time.Since(interrupted).Round(100*time.Millisecond), out)
	if err == nil {
		t.Errorf("an interrupted build succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("the output directory survived the interrupt: %v", err)
	}
	for _, n := range tmpEntries() {
		if !before[n] && ownerGone(n) {
			t.Errorf("kiln's cache keeps a work directory of the interrupted bake: tmp/%s", n)
		}
	}
	if procs := processesUnder(p.Home); len(procs) > 0 {
		t.Errorf("processes of this Packer home still run: %v", procs)
	}
}

// ownerGone says whether the process named in a kiln work directory's
// name (NAME.PID.RANDOM) has exited.
func ownerGone(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) < 3 {
		return false
	}
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		return false
	}
	_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
	return os.IsNotExist(err)
}

// processesUnder lists processes whose command line names dir (the
// plugin Packer installed there).
func processesUnder(dir string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestImageTest: test = true runs kiln test's checks on the baked image
// in a real guest (one firmware: one boot). The app-host image passes, and the artifact is kept; a
// boot that cannot finish in time (a 5 s bound under TCG) fails the build
// with the test's report, keeps no artifact, and leaves no QEMU running.
func TestImageTest(t *testing.T) {
	testutil.NeedGuest(t)
	p := newPacker(t)
	cache := testutil.CacheDir(t)
	recipe, err := filepath.Abs(filepath.Join("..", "..", "examples", "app-host.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	template := func(timeout string) string {
		return requirePlugin + `
source "kiln" "web" {
  recipe            = "` + recipe + `"
  cache_dir         = "` + cache + `"
  output_directory  = "out"
  test              = true
  test_firmware     = ["bios"]
  test_boot_timeout = "` + timeout + `"
}
build { sources = ["source.kiln.web"] }
`
	}
	dir := writeTemplate(t, map[string]string{"t.pkr.hcl": template("10m")})
	out, err := run(t, p, dir, "build", "-color=false", "t.pkr.hcl")
	if err != nil {
		t.Fatalf("packer build with test = true: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`test \w+: ok, cloud-init done after .*, \d+ checks passed`).MatchString(out) {
		t.Errorf("the build does not report the test:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "app-host.qcow2")); err != nil {
		t.Errorf("no artifact after a passing test: %v", err)
	}

	dir = writeTemplate(t, map[string]string{"t.pkr.hcl": template("5s")})
	qemus := qemuProcesses()
	out, err = run(t, p, dir, "build", "-color=false", "t.pkr.hcl")
	if err == nil {
		t.Fatalf("a test that cannot boot in 5 s passed:\n%s", out)
	}
	if !strings.Contains(out, "the image failed its test, so no artifact is kept") {
		t.Errorf("the failure does not say the test failed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("the output directory survived the failed test: %v", err)
	}
	if procs := processesUnder(dir); len(procs) > 0 {
		t.Errorf("processes of the failed build still run: %v", procs)
	}
	for pid := range qemuProcesses() {
		if !qemus[pid] {
			t.Errorf("a QEMU the failed build started still runs: pid %d", pid)
		}
	}
}

// qemuProcesses are the pids of the QEMU processes running now.
func qemuProcesses() map[int]bool {
	found := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil && strings.HasPrefix(string(comm), "qemu-system") {
			found[pid] = true
		}
	}
	return found
}

// TestBakeFails: a recipe whose bake cannot succeed (a package no mirror
// has) fails the build with kiln's error, and keeps no output.
func TestBakeFails(t *testing.T) {
	p := newPacker(t)
	dir := writeTemplate(t, map[string]string{
		"web.yaml": "apiVersion: kiln/v1\nname: web\nbake:\n  packages: [kiln-no-such-package]\n",
		"t.pkr.hcl": requirePlugin + `
source "kiln" "web" {
  recipe           = "web.yaml"
  cache_dir        = "` + testutil.CacheDir(t) + `"
  output_directory = "out"
}
build { sources = ["source.kiln.web"] }
`})
	out, err := run(t, p, dir, "build", "-color=false", "t.pkr.hcl")
	if err == nil {
		t.Fatalf("a bake of a missing package passed:\n%s", out)
	}
	if !strings.Contains(out, "kiln-no-such-package") {
		t.Errorf("the error does not name the package:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("the output directory survived the failed bake: %v", err)
	}
}
