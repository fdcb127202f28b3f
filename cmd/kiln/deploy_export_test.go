package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/manifest"
)

// exportFixture makes a fleet file of one set, web, of two instances, on a
// stand-in image (export reads its manifest only), in a working directory
// of its own; recipe is the set's recipe.
func exportFixture(t *testing.T, recipe string) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("web.qcow2", []byte("stand-in for a qcow2 image"), 0o644)
	digest := "sha256:" + strings.Repeat("ab", 32)
	m := &manifest.Manifest{
		Kiln:      manifest.Kiln{Version: "test", ImageLayout: "test"},
		Recipe:    manifest.Recipe{Name: "web", File: "web.yaml", Digest: digest, ImageKey: "k"},
		Base:      manifest.Base{Ref: "debian:trixie", Kind: manifest.BasePackages, Suite: "trixie"},
		OS:        manifest.OS{Distro: "debian", Release: "trixie"},
		Disk:      manifest.Disk{Format: "qcow2", Compression: "zstd", Firmware: []string{"bios"}, VirtualSize: 64 << 20, FileSize: 1 << 20},
		Artifacts: []manifest.Artifact{{Name: "web.qcow2", Size: 1 << 20, SHA256: digest}},
		Build:     manifest.Build{Mode: "offline"},
	}
	if err := manifest.Write(manifest.PathFor(filepath.Join(dir, "web.qcow2")), m); err != nil {
		t.Fatal(err)
	}
	os.WriteFile("web.yaml", []byte(recipe), 0o644)
	os.WriteFile("fleet.yaml", []byte("apiVersion: kiln/v1\nkind: ScaleSet\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\ncapacity: 2\nnetwork: {ports: [8080]}\n"), 0o644)
}

const (
	exportRecipe       = "apiVersion: kiln/v1\nname: web\nboot:\n  hostname: \"web-{index}\"\n"
	exportSecretRecipe = exportRecipe + "  files:\n    - {path: /etc/app/token, secret: env:EXPORT_TOKEN}\n"
	exportDisk         = "web=registry.example.com/team/web-kubevirt:1.2"
)

// kiln deploy export as a user runs it: the objects go to a private file,
// or to standard output when no recipe secret is in them.
func TestDeployExport(t *testing.T) {
	exportFixture(t, exportSecretRecipe)
	t.Setenv("EXPORT_TOKEN", "token-for-test")
	r := runInProcess(t, "deploy", "export", "fleet.yaml", "--target", "kubevirt", "--containerdisk", exportDisk, "-o", "fleet.kubevirt.yaml")
	if r.code != 0 || r.stdout != "wrote fleet.kubevirt.yaml (0600): VirtualMachinePools web, 2 Secrets\n" {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	st, err := os.Stat("fleet.kubevirt.yaml")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("output: %v, %v; want mode 0600", st, err)
	}
	b, _ := os.ReadFile("fleet.kubevirt.yaml")
	for _, want := range []string{"kind: VirtualMachinePool\n", "image: registry.example.com/team/web-kubevirt:1.2\n", "name: web-cloudinit-1\n", "- port: 8080\n"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("output lacks %q:\n%s", want, b)
		}
	}

	// Resolved secrets are not printed.
	r = runInProcess(t, "deploy", "export", "fleet.yaml", "--containerdisk", exportDisk)
	if r.code != exitInvalid || r.stdout != "" || !strings.Contains(r.stderr, "which kiln does not print; write them to a file with -o FILE") {
		t.Errorf("secrets to stdout: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runInProcess(t, "deploy", "export", "fleet.yaml", "--containerdisk", exportDisk, "-o", "again.yaml", "-O", "json")
	env := envelopeOf(t, r)
	data, _ := env["data"].(map[string]any)
	if r.code != 0 || data["out"] != "again.yaml" || data["holdsSecrets"] != true || len(data["secrets"].([]any)) != 2 {
		t.Errorf("json: exit %d\n%s", r.code, r.stdout)
	}
	if again, _ := os.ReadFile("again.yaml"); !bytes.Equal(again, b) {
		t.Error("two exports of the same fleet differ")
	}
}

func TestDeployExportStdout(t *testing.T) {
	exportFixture(t, exportRecipe)
	r := runInProcess(t, "deploy", "export", "fleet.yaml", "--containerdisk", exportDisk)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "# KubeVirt objects of fleet.yaml") || strings.Count(r.stdout, "\n---\n") != 2 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Every mistake in how export is called is a usage error (exit 2) that says
// what to do.
func TestDeployExportErrors(t *testing.T) {
	exportFixture(t, exportRecipe)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "ovirt", "--containerdisk", exportDisk}, `--target "ovirt": want kubevirt`},
		{nil, "set web has no containerDisk: KubeVirt cannot boot a kiln image; push the set's image as one (kiln push IMAGE REGISTRY/REPO:TAG --format containerdisk) and name it with --containerdisk web=REGISTRY/REPO:TAG"},
		{[]string{"--containerdisk", exportDisk, "--containerdisk", "api=registry.example.com/team/api:1"}, `containerDisk for set "api": fleet.yaml has no such set (its sets: web)`},
		{[]string{"--containerdisk", "web=web-kubevirt:1.2"}, `containerDisk of set web: invalid reference "web-kubevirt:1.2": no registry host`},
		{[]string{"--containerdisk", "registry.example.com/team/web-kubevirt:1.2"}, `--containerdisk "registry.example.com/team/web-kubevirt:1.2": want SET=REF`},
		{[]string{"--containerdisk", exportDisk, "--containerdisk", exportDisk}, "set web is given twice"},
	} {
		r := runInProcess(t, append([]string{"deploy", "export", "fleet.yaml"}, c.args...)...)
		if r.code != exitInvalid || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "Run 'kiln deploy export --help' for usage.") {
			t.Errorf("export %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	// A fleet file's own problems are placed in it, like deploy plan's.
	os.WriteFile("fleet.yaml", []byte("apiVersion: kiln/v1\nkind: ScaleSet\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\ncapacty: 2\n"), 0o644)
	if r := runInProcess(t, "deploy", "export", "fleet.yaml", "--containerdisk", exportDisk); r.code != exitInvalid || !strings.HasPrefix(r.stderr, "fleet.yaml:6:1: ") {
		t.Errorf("invalid fleet: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDeployExportHelp(t *testing.T) {
	r := runInProcess(t, "deploy", "export", "--help")
	for _, want := range []string{"kiln deploy export FILE --target kubevirt", "--containerdisk", "kiln push IMAGE REF --format containerdisk", "mode 0600", "kiln.dev/fault-domains", "Examples:"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
}
