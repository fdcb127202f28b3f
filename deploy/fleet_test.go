package deploy

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy/autoscale"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/repair"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// workdir makes a directory holding what fleet files in tests refer to,
// and makes it the working directory, so errors read fleet.yaml:3:7:
//
//	web.yaml, same-host.yaml, broken.yaml   recipes (from testdata)
//	web.qcow2 + web.manifest.json           4GiB, bios and uefi
//	uefi.qcow2 + uefi.manifest.json         8GiB, uefi only
//	proxy.qcow2 + proxy.manifest.json       3GiB, bios, the proxy role
//	bare.qcow2                              no manifest beside it
//	store/                                  an OCI layout directory
func workdir(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"web.yaml", "same-host.yaml", "broken.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, f), string(b))
	}
	image(t, filepath.Join(dir, "web.qcow2"), 4<<30, "bios", "uefi")
	image(t, filepath.Join(dir, "uefi.qcow2"), 8<<30, "uefi")
	image(t, filepath.Join(dir, "proxy.qcow2"), 3<<30, "bios")
	m, err := manifest.Read(manifest.PathFor(filepath.Join(dir, "proxy.qcow2")))
	if err != nil {
		t.Fatal(err)
	}
	m.Recipe.Name, m.Recipe.Roles = "proxy", []string{"proxy"}
	if err := manifest.Write(manifest.PathFor(filepath.Join(dir, "proxy.qcow2")), m); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "bare.qcow2"), "not really qcow2")
	if err := os.Mkdir(filepath.Join(dir, "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// image writes a stand-in image file and the manifest kiln bake would put
// beside it; the loader reads only the manifest.
func image(t *testing.T, path string, size int64, firmware ...string) {
	t.Helper()
	write(t, path, "stand-in for a qcow2 image")
	digest := "sha256:" + strings.Repeat("ab", 32)
	m := &manifest.Manifest{
		Kiln:      manifest.Kiln{Version: "test", ImageLayout: "kiln-image-v8"},
		Recipe:    manifest.Recipe{Name: "web", File: "web.yaml", Digest: digest, ImageKey: "k"},
		Base:      manifest.Base{Ref: "debian:trixie", Kind: manifest.BasePackages, Suite: "trixie"},
		OS:        manifest.OS{Distro: "debian", Release: "trixie"},
		Disk:      manifest.Disk{Format: "qcow2", Compression: "zstd", Firmware: firmware, VirtualSize: size, FileSize: 1 << 20},
		Artifacts: []manifest.Artifact{{Name: filepath.Base(path), Size: 1 << 20, SHA256: digest}},
		Build:     manifest.Build{Mode: "offline"},
	}
	if err := manifest.Write(manifest.PathFor(path), m); err != nil {
		t.Fatal(err)
	}
}

const header = "apiVersion: kiln/v1\n"

func TestLoadFleet(t *testing.T) {
	workdir(t)
	write(t, "fleet.yaml", `# two sets, one with every default
apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./web.qcow2
recipe: ./web.yaml
capacity: 4
size: {vcpus: 2, memory: 1GiB, disk: 10GiB}
firmware: uefi
network: {mode: user, ports: [8080]}
updateDomains: 2
hosts: [qemu:///system, "qemu+ssh://kiln@host2.example.com/system?keyfile=/root/.ssh/id_ed25519"]
---
apiVersion: kiln/v1
kind: AvailabilitySet
name: db
image: oci://registry.example.com/team/db:1.2
recipe: web.yaml
`)
	f, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sets) != 2 || f.Set("web") != f.Sets[0] || f.Set("db") != f.Sets[1] || f.Set("nope") != nil {
		t.Fatalf("sets: %+v", f.Sets)
	}
	web, db := f.Sets[0], f.Sets[1]
	dir, _ := os.Getwd()
	if web.Kind != ScaleSet || web.Capacity != 4 || web.Firmware != "uefi" || web.FaultDomains != 2 || web.UpdateDomains != 2 ||
		web.Size != (Size{VCPUs: 2, Memory: 1 << 30, Disk: 10 << 30}) ||
		!reflect.DeepEqual(web.Network, Network{Mode: UserNetwork, Ports: []int{8080}}) ||
		web.Image.File != filepath.Join(dir, "web.qcow2") || !web.Image.IsFile() || web.Image.Manifest == nil ||
		web.RecipeFile != filepath.Join(dir, "web.yaml") || web.Recipe == nil || web.Recipe.Recipe.Name != "web" {
		t.Errorf("web: %+v", web)
	}
	// Defaults: capacity 1, 1 vCPU, 512MiB, three fault domains, five
	// update domains, the local system libvirt, the checks' ports. Disk and
	// firmware wait for the pulled image's manifest.
	if db.Kind != AvailabilitySet || db.Capacity != 1 || db.Size != (Size{VCPUs: 1, Memory: 512 << 20}) || db.Firmware != "" ||
		db.FaultDomains != 3 || db.UpdateDomains != 5 || !reflect.DeepEqual(db.Hosts, []string{"qemu:///system"}) ||
		!reflect.DeepEqual(db.Network, Network{Mode: UserNetwork, Ports: []int{22, 8080}}) ||
		db.Image.IsFile() || db.Image.Remote.String() != "oci://registry.example.com/team/db:1.2" || db.Image.Remote.IsLayout() {
		t.Errorf("db: %+v", db)
	}
	if web.Recipe != db.Recipe {
		t.Error("a recipe two sets share is loaded once")
	}
	if got := db.Position("size.memory").String(); got != "fleet.yaml:14:1" {
		t.Errorf("an unwritten field is placed at its document: %s", got)
	}
	if got := web.Position("hosts[1]").String(); got != "fleet.yaml:12:25" {
		t.Errorf("hosts[1] at %s", got)
	}
}

func TestLoadFleetDefaultsFromManifest(t *testing.T) {
	workdir(t)
	write(t, "fleet.yaml", header+"kind: ScaleSet\nname: web\nimage: uefi.qcow2\nrecipe: web.yaml\n---\n"+
		header+"kind: ScaleSet\nname: layout\nimage: oci:store:web\nrecipe: web.yaml\nnetwork: {mode: network, name: default}\n")
	f, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	web, layout := f.Sets[0], f.Sets[1]
	if web.Firmware != "uefi" || web.Size.Disk != 8<<30 || web.FaultDomains != 1 {
		t.Errorf("web takes firmware and disk from its manifest: %+v", web)
	}
	dir, _ := os.Getwd()
	if !layout.Image.Remote.IsLayout() || layout.Image.Remote.Layout != filepath.Join(dir, "store") || layout.Network.Ports != nil {
		t.Errorf("layout: %+v", layout)
	}
}

// TestLoadFleetErrors: every message names the file, line, column and
// field, and says what to write instead.
func TestLoadFleetErrors(t *testing.T) {
	set := header + "kind: ScaleSet\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\n" // lines 1-5
	for _, c := range []struct {
		name, fleet string
		want        []string
	}{
		{"unknown key", set + "capacty: 3\n", []string{
			`fleet.yaml:6:1: capacty: unknown key "capacty" (did you mean "capacity"?)`}},
		{"unknown nested key", set + "size: {cpus: 2}\n", []string{
			`fleet.yaml:6:8: size.cpus: unknown key "cpus" (did you mean "vcpus"?)`}},
		{"wrong type", set + "capacity: three\nhosts: qemu:///system\n", []string{
			`fleet.yaml:6:11: capacity: expected an integer, got "three"`,
			`fleet.yaml:7:8: hosts: expected a list, got "qemu:///system"`}},
		{"bad size", set + "size: {memory: 512 MB please}\n", []string{
			`fleet.yaml:6:16: size.memory: invalid size "512 MB please": write a whole number with a unit, like 4GiB or 512MiB`}},
		{"too little memory", set + "size: {memory: 64MiB, vcpus: 0}\n", []string{
			`fleet.yaml:6:16: size.memory: memory 64MiB is too little for a Linux guest with cloud-init; give at least 128MiB`,
			`fleet.yaml:6:30: size.vcpus: vcpus must be 1-64, got 0`}},
		{"memory in bytes", set + "size: {memory: 536870913B}\n", []string{
			`fleet.yaml:6:16: size.memory: memory 536870913B is not a whole number of MiB; write it like 512MiB or 2GiB`}},
		{"missing everything", "kind: ScaleSet\n", []string{
			`fleet.yaml:1:1: apiVersion: missing required field apiVersion (add apiVersion: kiln/v1)`,
			`fleet.yaml:1:1: name: missing required field name (a short DNS label like web or db; instances are named web-0, web-1, ...)`,
			`fleet.yaml:1:1: image: missing required field image (oci://registry.example.com/team/web:1.2, or ./web.qcow2 beside its web.manifest.json)`,
			`fleet.yaml:1:1: recipe: missing required field recipe (the recipe whose boot section makes each instance's seed, e.g. recipe: ./web.yaml)`}},
		{"bad kind and version", "apiVersion: kiln/v2\nkind: scaleset\nname: Web_1\nimage: ./web.qcow2\nrecipe: ./web.yaml\n", []string{
			`fleet.yaml:1:13: apiVersion: unsupported apiVersion "kiln/v2" (this kiln reads kiln/v1)`,
			`fleet.yaml:2:7: kind: unknown kind "scaleset": kinds are case-sensitive (ScaleSet or AvailabilitySet)`,
			`fleet.yaml:3:7: name: invalid name "Web_1": use lower-case letters, digits and dashes, at most 60 characters (instances add -0, -1, ...)`}},
		{"a recipe instead of a set", header + "kind: Recipe\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\n", []string{
			`fleet.yaml:2:7: kind: a recipe is not a set: name it from a set with recipe: ./file.yaml (kind: ScaleSet or AvailabilitySet)`}},
		{"capacity out of range", set + "capacity: 101\n---\n" + strings.Replace(set, "ScaleSet\nname: web", "AvailabilitySet\nname: db", 1) + "capacity: 0\n", []string{
			`fleet.yaml:6:11: capacity: capacity must be 0-100, got 101`,
			`fleet.yaml:13:11: capacity: an AvailabilitySet has 1-100 instances (a ScaleSet may scale to 0)`}},
		{"domains out of range", strings.Replace(set, "ScaleSet", "AvailabilitySet", 1) + "faultDomains: 4\nupdateDomains: 21\n", []string{
			`fleet.yaml:6:15: faultDomains: an AvailabilitySet has 1-3 fault domains, got 4`,
			`fleet.yaml:7:16: updateDomains: updateDomains must be 1-20 (instances are upgraded one update domain at a time), got 21`}},
		{"scale set fault domains", set + "faultDomains: 6\n", []string{
			`fleet.yaml:6:15: faultDomains: a ScaleSet has 1-5 fault domains, got 6`}},
		{"fault domains are hosts", set + "faultDomains: 3\nhosts: [qemu:///system, qemu+tcp://h2/system]\n", []string{
			`fleet.yaml:6:15: faultDomains: with several hosts a fault domain is a host: 2 hosts make 2 fault domains; remove faultDomains or list 3 hosts`}},
		{"too many hosts", strings.Replace(set, "ScaleSet", "AvailabilitySet", 1) + "hosts: [qemu+ssh://a/system, qemu+ssh://b/system, qemu+ssh://c/system, qemu+ssh://d/system]\n", []string{
			`fleet.yaml:6:8: hosts: an AvailabilitySet spreads over at most 3 fault domains, one per host; list at most 3 hosts`}},
		{"bad hosts", set + "hosts:\n- qemu:///system\n- xen://h/\n- qemu:///system\n- qemu+ssh:///system\n- qemu:///system?socket=/s\n" +
			"- qemu+unix:///system?socket=rel\n- qemu+ssh://h/system?colour=red\n- qemu://h/system\n- qemu:///sys\n- ''\n", []string{
			`fleet.yaml:7:1: hosts: a ScaleSet spreads over at most 5 fault domains, one per host; list at most 5 hosts`,
			`fleet.yaml:8:3: hosts[1]: libvirt URI "xen://h/" is not a QEMU driver URI kiln supports; write ` + hostForms,
			`fleet.yaml:9:3: hosts[2]: host "qemu:///system" is listed twice; each host is one fault domain`,
			`fleet.yaml:10:3: hosts[3]: libvirt URI "qemu+ssh:///system" names no host; write ` + hostForms,
			`fleet.yaml:11:3: hosts[4]: libvirt URI "qemu:///system?socket=/s" takes no parameters (a socket is given with qemu+unix:///system?socket=PATH); write ` + hostForms,
			`fleet.yaml:12:3: hosts[5]: libvirt URI "qemu+unix:///system?socket=rel": socket must be an absolute path`,
			`fleet.yaml:13:3: hosts[6]: libvirt URI "qemu+ssh://h/system?colour=red" has an unknown parameter "colour" (libvirt knows ` + strings.Join(libvirtParams, ", ") + `)`,
			`fleet.yaml:14:3: hosts[7]: libvirt URI "qemu://h/system" names a host: a remote host is reached with qemu+ssh:// or qemu+tcp://; write ` + hostForms,
			`fleet.yaml:15:3: hosts[8]: libvirt URI "qemu:///sys" must end in /system or /session; write ` + hostForms,
			`fleet.yaml:16:3: hosts[9]: invalid libvirt URI "": write ` + hostForms}},
		{"duplicate set names", set + "---\n" + set, []string{
			`fleet.yaml:9:7: name: set name "web" is already used at fleet.yaml:3:7; every set of a fleet needs its own name`}},
		{"bad image references", strings.Replace(set, "./web.qcow2", "web:1.2", 1) + "---\n" +
			strings.Replace(strings.Replace(set, "./web.qcow2", "oci://registry.example.com/Team/web:1.2", 1), "web\n", "b\n", 1) + "---\n" +
			strings.Replace(strings.Replace(set, "./web.qcow2", "https://example.com/web.qcow2", 1), "web\n", "c\n", 1), []string{
			`fleet.yaml:4:8: image: invalid image reference "web:1.2": no registry host; write it out, e.g. registry.example.com/web:1.2 (or oci:DIR:TAG for a local layout) (a local image file is written ./web.qcow2)`,
			`fleet.yaml:10:8: image: invalid image reference "oci://registry.example.com/Team/web:1.2": registry.example.com/Team/web:1.2 (a local image file is written ./web.qcow2)`,
			`fleet.yaml:16:8: image: invalid image reference "https://example.com/web.qcow2": unknown scheme; use REGISTRY/REPO:TAG, oci://REGISTRY/REPO:TAG or oci:DIR:TAG (a local image file is written ./web.qcow2)`}},
		{"missing files", strings.Replace(strings.Replace(set, "./web.qcow2", "./nope.qcow2", 1), "./web.yaml", "nope.yaml", 1) + "---\n" +
			strings.Replace(strings.Replace(set, "./web.qcow2", "./bare.qcow2", 1), "web\n", "b\n", 1) + "---\n" +
			strings.Replace(strings.Replace(set, "./web.qcow2", "oci:missing:web", 1), "web\n", "c\n", 1) + "---\n" +
			strings.Replace(strings.Replace(set, "./web.qcow2", "./store", 1), "web\n", "d\n", 1), []string{
			`fleet.yaml:4:8: image: image file "./nope.qcow2" not found (no such file or directory); paths are relative to the fleet file, a registry image is written oci://REGISTRY/REPO:TAG`,
			`fleet.yaml:5:9: recipe: recipe file "nope.yaml" not found (paths are relative to the fleet file)`,
			`fleet.yaml:10:8: image: no manifest beside "./bare.qcow2" (want bare.manifest.json): deploy reads firmware and disk size from the one kiln bake writes`,
			`fleet.yaml:16:8: image: OCI layout directory of "oci:missing:web" not found at missing (paths are relative to the fleet file)`,
			`fleet.yaml:22:8: image: "./store" is a directory: name the image file (web.qcow2), or an OCI layout as oci:DIR:TAG`}},
		{"image and disk do not fit", strings.Replace(set, "./web.qcow2", "./uefi.qcow2", 1) + "firmware: bios\nsize: {disk: 4GiB}\n", []string{
			`fleet.yaml:6:11: firmware: the image boots only under uefi (its manifest lists firmware [uefi]); set firmware: uefi or leave it out`,
			`fleet.yaml:7:14: size.disk: disk 4GiB is smaller than the image (8GiB); make it at least 8GiB or leave it out`}},
		{"unknown firmware", set + "firmware: efi\n", []string{
			`fleet.yaml:6:11: firmware: unknown firmware "efi" (want bios or uefi)`}},
		{"network", set + "network: {mode: network, ports: [80]}\n---\n" +
			strings.Replace(set, "web\n", "b\n", 1) + "network: {mode: bridge}\n---\n" +
			strings.Replace(set, "web\n", "c\n", 1) + "network: {name: default, ports: [0, 80, 80]}\n", []string{
			`fleet.yaml:6:10: network: mode network needs the libvirt network's name (name: default)`,
			`fleet.yaml:6:33: network.ports: ports are forwarded only in mode user; in mode network each instance is reached at its own address`,
			`fleet.yaml:13:17: network.mode: unknown network mode "bridge" (want user, or network with a libvirt network's name)`,
			`fleet.yaml:20:17: network.name: name is for mode network; remove it, or set mode: network`,
			`fleet.yaml:20:34: network.ports[0]: port must be 1-65535, got 0`,
			`fleet.yaml:20:41: network.ports[2]: port 80 is listed twice`}},
		{"the recipe's own errors, once", strings.Replace(set, "./web.yaml", "broken.yaml", 1) + "---\n" +
			strings.Replace(strings.Replace(set, "./web.yaml", "broken.yaml", 1), "web\n", "b\n", 1), []string{
			`broken.yaml:6:3: bake.pakages: unknown key "pakages" (did you mean "packages"?)`}},
		{"one host name for all", strings.Replace(set, "./web.yaml", "same-host.yaml", 1), []string{
			`fleet.yaml:5:9: recipe: the recipe's boot.hostname "single" gives instances of set web the same host name; put {instance} or {index} in it`}},
		{"no sets", "# nothing yet\n", []string{
			`fleet.yaml:1:1: fleet file has no sets; write one YAML document per set, each with apiVersion: kiln/v1, kind: ScaleSet or AvailabilitySet, name, image and recipe`}},
		{"syntax error in one document", set + "hosts: [qemu:///system\n---\n" + strings.Replace(set, "web\n", "b\n", 1) + "capacity: -1\n", []string{
			`fleet.yaml:6:1: YAML syntax: did not find expected ',' or ']'; this document was not checked: fix the syntax error first`,
			`fleet.yaml:13:11: capacity: capacity must be 0-100, got -1`}},
	} {
		t.Run(c.name, func(t *testing.T) { wantFleetErrors(t, c.fleet, c.want) })
	}
}

func TestLoadFleetFile(t *testing.T) {
	workdir(t)
	if err := os.Mkdir("dir.yaml", 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, "big.yaml", "# "+strings.Repeat("x", MaxFleetSize)+"\n")
	for file, want := range map[string]string{
		"none.yaml": "none.yaml: cannot read fleet file: no such file or directory",
		"dir.yaml":  "dir.yaml: is a directory, not a fleet file",
		"big.yaml":  "big.yaml: fleet file is more than 1048576 bytes; a fleet is a few short documents, one per set",
	} {
		_, err := LoadFleet(file)
		var el recipes.ErrorList
		if !errors.As(err, &el) || err.Error() != want {
			t.Errorf("%s: got %v, want %s", file, err, want)
		}
	}
}

// TestUseManifest: a registry image's manifest, known once it is pulled,
// fills the same defaults and finds the same problems as a local one's.
func TestUseManifest(t *testing.T) {
	workdir(t)
	write(t, "fleet.yaml", header+"kind: ScaleSet\nname: web\nimage: registry.example.com/web@sha256:"+strings.Repeat("ab", 32)+
		"\nrecipe: web.yaml\nsize: {disk: 2GiB}\n---\n"+header+"kind: ScaleSet\nname: b\nimage: registry.example.com/web:1\nrecipe: web.yaml\n")
	f, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Disk: manifest.Disk{Firmware: []string{"uefi", "bios"}, VirtualSize: 3 << 30}}
	err = f.Sets[0].UseManifest(m)
	if err == nil || err.Error() != "fleet.yaml:6:14: size.disk: disk 2GiB is smaller than the image (3GiB); make it at least 3GiB or leave it out" {
		t.Errorf("got %v", err)
	}
	b := f.Sets[1]
	if err := b.UseManifest(m); err != nil || b.Firmware != "uefi" || b.Size.Disk != 3<<30 || b.Image.Manifest != m {
		t.Errorf("defaults from the manifest: %v, %+v", err, b)
	}
}

// TestExampleFleet: the example in examples/ loads as it is.
func TestExampleFleet(t *testing.T) {
	f, err := LoadFleet("../examples/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sets) == 0 {
		t.Fatal("no sets")
	}
}

func TestCheckPorts(t *testing.T) {
	checks := []recipes.Check{
		{TCP: &recipes.TCPCheck{Port: 5432}},
		{HTTP: &recipes.HTTPCheck{Port: 80}},
		{Command: &recipes.CommandCheck{}},
		{HTTP: &recipes.HTTPCheck{Port: 80, Path: "/other"}},
	}
	if got := CheckPorts(checks); !reflect.DeepEqual(got, []int{80, 5432}) {
		t.Errorf("got %v", got)
	}
	if got := CheckPorts(nil); got != nil {
		t.Errorf("no checks: %v", got)
	}
}

// FuzzLoadFleet: no input makes the loader panic, and every failure is a
// list of recipe errors, each with a message and a place: a file, a line
// and a column of at least 1, within the input when it names the fleet
// file. What loads is placed and drawn without a panic either.
func FuzzLoadFleet(f *testing.F) {
	if b, err := os.ReadFile("../examples/fleet.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		"", "---\n", "# only a comment\n", header + "kind: ScaleSet\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\n",
		header + "kind: AvailabilitySet\nname: db\nimage: oci://r.example.com/db:1\nrecipe: /nonexistent/r.yaml\ncapacity: 0\nfaultDomains: 4\n",
		"kind: ScaleSet\nsize: {memory: 1XB, disk: 0}\nnetwork: {mode: network, ports: [0, 70000]}\nhosts: ['qemu+unix:///system?socket=x', '%zz']\n",
		"name: a\n---\nname: a\n---\n- list\n---\nname: [unclosed\n", "a: &a [*a]\n", "\xff\xfe", "name: a\x00\n",
		"%YAML 1.1\n---\nname: a\n...\n%YAML 1.1\n---\nname: b\n", "name: x\n\tcapacity: 1\n", "image: oci:./store:web\n",
	} {
		f.Add([]byte(s))
	}
	// Beside the fuzzed fleet: a recipe, so that some inputs load.
	dir := f.TempDir()
	b, err := os.ReadFile("testdata/web.yaml")
	if err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), b, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fleet.yaml")
		fleet, err := loadFleet(p, data)
		if err != nil {
			checkFleetError(t, err, p, data)
			return
		}
		for _, s := range fleet.Sets {
			if got := len(s.Placements()); got != s.Capacity {
				t.Fatalf("%s: %d placements for capacity %d", s.Name, got, s.Capacity)
			}
		}
		top := PlannedTopology(fleet)
		if top.Mermaid() == "" || top.DOT() == "" {
			t.Fatal("nothing drawn")
		}
	})
}

func checkFleetError(t *testing.T, err error, file string, data []byte) {
	t.Helper()
	var el recipes.ErrorList
	if !errors.As(err, &el) || len(el) == 0 {
		t.Fatalf("not a recipes.ErrorList (%T): %v", err, err)
	}
	// YAML breaks lines at \n, \r\n, \r, NEL, LS and PS.
	lines := 1 - strings.Count(string(data), "\r\n")
	for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		lines += strings.Count(string(data), brk)
	}
	for _, e := range el {
		switch {
		case e == nil || e.Msg == "":
			t.Fatalf("error without a message in %q", err.Error())
		case e.Pos.File == "" || e.Pos.Line < 1 || e.Pos.Col < 1:
			t.Fatalf("error without a file, line and column: %q (%+v)", e.Error(), e.Pos)
		case e.Pos.File == file && e.Pos.Line > lines:
			t.Fatalf("error at line %d of a %d-line input: %q", e.Pos.Line, lines, e.Error())
		}
	}
}

// TestLoadFleetOperations: health, load balancer and autoscale, with their
// defaults taken from the recipe's checks.
func TestLoadFleetOperations(t *testing.T) {
	workdir(t)
	write(t, "fleet.yaml", `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./web.qcow2
recipe: ./web.yaml
capacity: 2
loadBalancer: {listen: 127.0.0.1:8080}
upgradePolicy:
  mode: Rolling
  rollingUpgradePolicy: {maxBatchInstancePercent: 20, maxUnhealthyUpgradedInstancePercent: 0, maxSurge: true}
automaticRepairs: {enabled: true, gracePeriod: 30s}
autoscale:
  minimum: 1
  maximum: 4
  interval: 10s
  metrics:
    queue: {port: 9100, path: /queue}
  rules:
    - {metric: cpu, timeWindow: 1m, operator: ">", threshold: 70, direction: out}
    - {metric: queue, statistic: max, timeWindow: 1m, operator: "<", threshold: 5, direction: in, action: {type: percentChange, value: 50}, cooldown: 30s}
---
apiVersion: kiln/v1
kind: AvailabilitySet
name: db
image: ./web.qcow2
recipe: ./web.yaml
health:
  probe: {tcp: {port: 5432}}
  interval: 2s
  probes: 3
  gracePeriod: 1m
`)
	f, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	web, db := f.Sets[0], f.Sets[1]
	if h := web.Health; h.Probe.HTTP == nil || *h.Probe.HTTP != (health.HTTPProbe{Port: 8080, Path: "/healthz", Status: 200}) ||
		h.From != "checks[0]" || h.Config != (health.Config{Interval: 5 * time.Second, Probes: 2, GracePeriod: 10 * time.Second}) {
		t.Errorf("web's probe comes from the recipe's first HTTP check, with the defaults: %+v %+v", h, h.Probe.HTTP)
	}
	if web.LoadBalancer != (BalancerConfig{Listen: "127.0.0.1:8080", Port: 8080, Balance: RoundRobin, Placement: PlaceHost}) {
		t.Errorf("web's load balancer: %+v", web.LoadBalancer)
	}
	a := web.Autoscale
	if !a.Enabled() || a.Interval != 10*time.Second || a.Profile.Minimum != 1 || a.Profile.Maximum != 4 || a.Profile.Default != 1 ||
		len(a.Profile.Rules) != 2 || a.Metrics["queue"] != (health.HTTPProbe{Port: 9100, Path: "/queue", Status: 200}) {
		t.Fatalf("web's autoscale: %+v", a)
	}
	out, in := a.Profile.Rules[0], a.Profile.Rules[1]
	if out.Statistic != autoscale.Average || out.Action != (autoscale.Action{Type: autoscale.ChangeCount, Value: 1}) || out.Cooldown != DefaultCooldown || out.Direction != autoscale.ScaleOut {
		t.Errorf("rule defaults: %+v", out)
	}
	if in.Statistic != autoscale.Max || in.Action != (autoscale.Action{Type: autoscale.PercentChange, Value: 50}) || in.Cooldown != 30*time.Second || in.Operator != autoscale.Less {
		t.Errorf("rule as written: %+v", in)
	}
	if h := db.Health; h.Probe.TCP == nil || h.Probe.TCP.Port != 5432 || h.From != "health.probe" ||
		h.Config != (health.Config{Interval: 2 * time.Second, Probes: 3, GracePeriod: time.Minute}) {
		t.Errorf("db's probe as written: %+v", h)
	}
	if web.Upgrade != (upgrade.Policy{Mode: upgrade.Rolling, MaxBatchInstancePercent: 20, MaxUnhealthyInstancePercent: 20, MaxSurge: true}) {
		t.Errorf("web's upgrade policy (a written 0 is kept): %+v", web.Upgrade)
	}
	if web.Repairs != (repair.Policy{Enabled: true, GracePeriod: 30 * time.Second, Action: repair.Replace}) {
		t.Errorf("web's repairs: %+v", web.Repairs)
	}
	if db.Upgrade.Mode != upgrade.Manual || db.Upgrade.MaxUnhealthyUpgradedInstancePercent != 20 || db.Repairs.Enabled {
		t.Errorf("db's defaults: %+v %+v", db.Upgrade, db.Repairs)
	}
	if db.LoadBalancer.Enabled() || db.Autoscale.Enabled() {
		t.Errorf("db has neither load balancer nor autoscale: %+v %+v", db.LoadBalancer, db.Autoscale)
	}
}

// A load balancer in a VM of the proxy role: the fleet file's fields, and
// the domain it makes beside the set's instances.
func TestBalancerVM(t *testing.T) {
	workdir(t)
	write(t, "fleet.yaml", header+`kind: ScaleSet
name: web
image: ./web.qcow2
recipe: ./web.yaml
loadBalancer: {listen: 127.0.0.1:8080, placement: vm, image: ./proxy.qcow2}
`)
	f, err := LoadFleet("fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := f.Sets[0]
	if l := s.LoadBalancer; l.Placement != PlaceVM || l.MemoryMiB != 384 || !strings.HasSuffix(l.Image.File, "/proxy.qcow2") || l.Port != 8080 {
		t.Fatalf("load balancer: %+v", l)
	}
	// What Resolve makes of a local image (the stand-in has no real digest).
	resolved := func(bs *Set) *Resolved {
		if err := bs.UseManifest(bs.Image.Manifest); err != nil {
			t.Fatal(err)
		}
		return &Resolved{Set: bs, Path: bs.Image.File, Digest: "sha256:" + strings.Repeat("cd", 32)}
	}
	r := resolved(s.BalancerImageSet())
	d, err := BalancerVM(s, r, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ6d0VYXyZ9i7dVbn9ByM0T+Lz3ZrGQ4sL3OxWcFXq8R kiln")
	if err != nil {
		t.Fatal(err)
	}
	sp := d.Spec
	if sp.Name != "web-lb" || sp.Meta.Set != "web/lb" || d.Host != "qemu:///system" || sp.Firmware != "bios" || sp.DiskBytes != 3<<30 ||
		sp.MemoryMiB != 384 || !slices.Equal(sp.Ports, []int{22}) || sp.Listen[80] != "127.0.0.1:8080" {
		t.Errorf("balancer VM: %+v", sp)
	}
	if !bytes.Contains(sp.Seed, []byte("name: kiln-lb")) || !bytes.Contains(sp.Seed, []byte("AAAAC3NzaC1lZDI1NTE5AAAAIJ6d0VYXyZ9i7dVbn9ByM0T")) {
		t.Errorf("the seed lets kiln's account in with the key: %q", sp.Seed)
	}
	again, _ := BalancerVM(s, r, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ6d0VYXyZ9i7dVbn9ByM0T+Lz3ZrGQ4sL3OxWcFXq8R kiln")
	if again.Spec.Meta.Spec != sp.Meta.Spec {
		t.Error("the same set and key make another spec: the controller would replace its VM at every start")
	}
	// Apply leaves it to the controller; destroying the set removes it.
	lbVM := Instance{Name: "web-lb", Host: "qemu:///system", State: Running, Meta: sp.Meta}
	if p := Diff([]string{"web"}, nil, []Instance{lbVM}, true); len(p.Changes) != 0 {
		t.Errorf("apply (with --prune) touches the balancer VM: %+v", p.Changes)
	}
	if p := Diff([]string{"web", BalancerVMSet("web")}, nil, []Instance{lbVM}, false); len(p.Changes) != 1 || p.Changes[0].Op != OpDelete {
		t.Errorf("destroy keeps the balancer VM: %+v", p.Changes)
	}
	// Another set's image is not a proxy.
	other := *s.BalancerImageSet()
	other.Image = s.Image
	if _, err := BalancerVM(s, resolved(&other), "k"); err == nil || !strings.Contains(err.Error(), "fleet.yaml:6:62: loadBalancer.image: ./web.qcow2 was baked") || !strings.Contains(err.Error(), "not the proxy role") {
		t.Errorf("an image without the proxy role: %v", err)
	}
}

func TestLoadFleetOperationsErrors(t *testing.T) {
	set := header + "kind: ScaleSet\nname: web\nimage: ./web.qcow2\nrecipe: ./web.yaml\n" // lines 1-5
	as := strings.Replace(set, "ScaleSet", "AvailabilitySet", 1)
	for _, c := range []struct {
		name, fleet string
		want        []string
	}{
		{"bad probe", set + "health: {probe: {http: {port: 0, path: healthz}}, interval: 90s, probes: 0}\n", []string{
			`fleet.yaml:6:31: health.probe.http.port: port must be 1-65535, got 0`,
			`fleet.yaml:6:40: health.probe.http.path: path must start with / and hold no spaces, got "healthz"`,
			`fleet.yaml:6:61: health.interval: interval must be 1s-1m0s, got 1m30s`,
			`fleet.yaml:6:74: health.probes: probes must be 1-24, got 0`}},
		{"load balancer", set + "loadBalancer: {listen: localhost:80, balance: random}\n", []string{
			`fleet.yaml:6:24: loadBalancer.listen: listen must be IP:PORT, like 127.0.0.1:8080, got "localhost:80"`,
			`fleet.yaml:6:47: loadBalancer.balance: unknown balance "random" (want roundrobin or leastconn)`}},
		{"load balancer without listen", set + "loadBalancer: {port: 80}\n", []string{
			`fleet.yaml:6:15: loadBalancer: a load balancer needs listen: HOST:PORT (127.0.0.1:8080)`}},
		{"balancer vm without image", set + "loadBalancer: {listen: 127.0.0.1:80, placement: vm}\n", []string{
			`fleet.yaml:6:15: loadBalancer.image: missing required field loadBalancer.image (oci://registry.example.com/team/web:1.2, or ./web.qcow2 beside its web.manifest.json)`}},
		{"balancer vm of an image without the proxy role", set + "loadBalancer: {listen: 127.0.0.1:80, placement: vm, image: ./web.qcow2}\n", []string{
			`fleet.yaml:6:60: loadBalancer.image: ./web.qcow2 was baked from recipe "web" with roles [], not the proxy role: bake one from a recipe with roles: [proxy] (examples/proxy.yaml)`}},
		{"balancer vm too small, on IPv6", set + "loadBalancer: {listen: \"[::1]:80\", placement: vm, image: ./proxy.qcow2, memory: 64MiB}\n", []string{
			`fleet.yaml:6:24: loadBalancer.listen: placement vm forwards listen with QEMU user networking, which takes IPv4 only: use 127.0.0.1:PORT or 0.0.0.0:PORT`,
			`fleet.yaml:6:81: loadBalancer.memory: memory 64MiB is too small for a VM; give it at least 128MiB`}},
		{"balancer vm on a remote host", set + "loadBalancer: {listen: 127.0.0.1:80, placement: vm, image: ./proxy.qcow2}\nnetwork: {mode: network, name: default}\nhosts: [qemu+ssh://h2.example.com/system]\n", []string{
			`fleet.yaml:8:9: hosts[0]: loadBalancer: the balancer VM runs on the set's first host, qemu+ssh://h2.example.com/system, and kiln configures it through a port forwarded on that host's 127.0.0.1, which this host cannot reach; list a local host first (qemu:///system)`}},
		{"unknown placement", set + "loadBalancer: {listen: 127.0.0.1:80, placement: cloud}\n", []string{
			`fleet.yaml:6:49: loadBalancer.placement: unknown placement "cloud" (want host or vm)`}},
		{"image for the host's balancer", set + "loadBalancer: {listen: 127.0.0.1:80, image: ./proxy.qcow2}\n", []string{
			`fleet.yaml:6:15: loadBalancer.placement: image and memory are for placement: vm (a VM of kiln's proxy role); add it, or leave them out for the host's HAProxy`}},
		{"autoscale", set + "capacity: 9\nautoscale:\n  minimum: 1\n  maximum: 5\n  rules:\n  - {metric: disk, timeWindow: 1m, operator: '>', threshold: x, direction: up}\n", []string{
			`fleet.yaml:6:11: capacity: capacity 9 is outside autoscale's minimum and maximum (1-5)`,
			`fleet.yaml:11:14: autoscale.rules[0].metric: unknown metric "disk": cpu, or a name under autoscale.metrics`,
			`fleet.yaml:11:62: autoscale.rules[0].threshold: expected a number, got "x"`,
			`fleet.yaml:11:76: autoscale.rules[0].direction: unknown direction "up" (want out or in)`}},
		{"upgrade and repairs", set + "upgradePolicy: {mode: rolling, rollingUpgradePolicy: {maxBatchInstancePercent: 50}}\nautomaticRepairs: {enabled: true, repairAction: Rebuild}\n", []string{
			`fleet.yaml:6:23: upgradePolicy.mode: unknown mode "rolling" (did you mean Rolling?)`,
			`fleet.yaml:6:80: upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent: maxBatchInstancePercent 50 is above maxUnhealthyInstancePercent 20: a batch that large would breach it by itself (raise maxUnhealthyInstancePercent or lower maxBatchInstancePercent)`,
			`fleet.yaml:7:49: automaticRepairs.repairAction: unknown repairAction "Rebuild" (want Replace, Restart or Reimage)`}},
		{"a balancer cannot reach a remote host's loopback", set + "loadBalancer: {listen: 127.0.0.1:80}\nhosts: [qemu:///system, qemu+tcp://127.0.0.1:1600/system, qemu+ssh://h2.example.com/system]\n", []string{
			`fleet.yaml:7:59: hosts[2]: loadBalancer: instances on qemu+ssh://h2.example.com/system forward their ports on its own 127.0.0.1 (user networking), which this host cannot probe or balance; use network: {mode: network, name: ...} with addresses this host reaches, or local hosts only`}},
		{"autoscale of an availability set", as + "autoscale: {minimum: 1, maximum: 3}\n", []string{
			`fleet.yaml:6:12: autoscale: an availability set does not autoscale: its instances are placed by hand (use kind: ScaleSet)`}},
	} {
		t.Run(c.name, func(t *testing.T) { wantFleetErrors(t, c.fleet, c.want) })
	}
}

// wantFleetErrors loads fleet as fleet.yaml and wants exactly these errors.
func wantFleetErrors(t *testing.T, fleet string, want []string) {
	t.Helper()
	workdir(t)
	write(t, "fleet.yaml", fleet)
	_, err := LoadFleet("fleet.yaml")
	var el recipes.ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("want a recipes.ErrorList, got %T: %v", err, err)
	}
	if got := el.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}
