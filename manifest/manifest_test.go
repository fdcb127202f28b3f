package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample() *Manifest {
	return &Manifest{
		Kiln:      Kiln{Version: "dev", ImageLayout: "kiln-image-v8"},
		Recipe:    Recipe{Name: "web", File: "web.yaml", Digest: "sha256:" + strings.Repeat("ab", 32), ImageKey: "k", Roles: []string{"app-host"}},
		Base:      Base{Ref: "debian:stable", Kind: BasePackages, Suite: "trixie", Key: "b"},
		OS:        OS{Distro: "debian", Release: "trixie", Kernel: "6.12.118+deb13-cloud-amd64", CloudInit: "25.1.4-1+deb13u1", Systemd: "257.13-1~deb13u1"},
		Disk:      Disk{Format: "qcow2", Compression: "zstd", Firmware: []string{"bios", "uefi"}, VirtualSize: 4 << 30, FileSize: 1 << 27},
		Packages:  []Package{{Name: "systemd", Version: "257.13-1~deb13u1", Arch: "amd64"}},
		Artifacts: []Artifact{{Name: "web.qcow2", Size: 1 << 27, SHA256: "sha256:" + strings.Repeat("cd", 32)}},
		Checks: []Check{
			{Name: "http :80/", HTTP: &HTTPCheck{Port: 80, Path: "/", Status: 200}, Timeout: Duration(2 * time.Minute)},
			{Name: "db", Command: &CommandCheck{Run: "pg_isready -h 127.0.0.1"}, Timeout: Duration(90 * time.Second)},
		},
		Build: Build{Mode: "offline", Duration: Duration(74500 * time.Millisecond)},
	}
}

func TestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "web.manifest.json")
	if err := Write(p, sample()); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	for _, want := range []string{`"schemaVersion": 1`, `"suite": "trixie"`, `"timeout": "2m"`, `"timeout": "1m30s"`, `"duration": "1m14.5s"`, `"exitCode": 0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("written manifest lacks %s:\n%s", want, b)
		}
	}
	m, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if m.Checks[1].Timeout.D() != 90*time.Second || m.Build.Duration.D() != 74500*time.Millisecond || m.Package("systemd") != "257.13-1~deb13u1" || m.Base.Suite != "trixie" {
		t.Errorf("read back %+v", m)
	}
}

// TestNoGoFieldNames: every key kiln writes is camelCase, and empty lists
// are [], never null.
func TestNoGoFieldNames(t *testing.T) {
	m := sample()
	m.Checks, m.Recipe.Roles, m.Packages = nil, nil, nil
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "null") {
		t.Errorf("null in %s", b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, `"`) && strings.Contains(line, `":`) {
			key := line[1 : strings.Index(line[1:], `"`)+1]
			if key[0] < 'a' || key[0] > 'z' {
				t.Errorf("key %q is not camelCase", key)
			}
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	for name, edit := range map[string]func(m *Manifest){
		"no artifacts":      func(m *Manifest) { m.Artifacts = nil },
		"bad digest":        func(m *Manifest) { m.Artifacts[0].SHA256 = "md5:1" },
		"two probes":        func(m *Manifest) { m.Checks[0].TCP = &TCPCheck{Port: 1} },
		"no probe":          func(m *Manifest) { m.Checks[0].HTTP = nil },
		"port 0":            func(m *Manifest) { m.Checks[0].HTTP.Port = 0 },
		"unknown format":    func(m *Manifest) { m.Disk.Format = "vmdk" },
		"unknown firmware":  func(m *Manifest) { m.Disk.Firmware = []string{"coreboot"} },
		"artifact with dir": func(m *Manifest) { m.Artifacts[0].Name = "../x.qcow2" },
		"suite not a name":  func(m *Manifest) { m.Base.Suite = "Debian 13" },
	} {
		m := sample()
		edit(m)
		if _, err := Marshal(m); err == nil || !strings.Contains(err.Error(), "does not match the manifest schema") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Marshal(sample()); err != nil {
		t.Fatalf("sample: %v", err)
	}
}

// TestReadV0: a manifest an earlier kiln wrote is converted.
func TestReadV0(t *testing.T) {
	m, err := Read("testdata/v0.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != SchemaVersion || len(m.Checks) != 4 || m.OS.Systemd == "" || m.Build.Duration.D() != 74500*time.Millisecond {
		t.Fatalf("%+v", m)
	}
	c := m.Checks
	if c[0].HTTP == nil || c[0].HTTP.Port != 8080 || c[0].HTTP.Contains != "ok" || c[0].Timeout.D() != 2*time.Minute ||
		c[1].TCP == nil || c[1].TCP.Port != 5432 || c[1].Timeout.String() != "1m30s" ||
		c[2].Command == nil || c[2].Command.Run != "systemctl is-active 'web app'" ||
		c[3].Command.Run != "test -s /etc/x" || c[3].Command.ExitCode != 1 {
		t.Errorf("checks %+v %+v %+v %+v", c[0], c[1], c[2], c[3])
	}
	// What it converts to passes the current schema.
	if _, err := Marshal(m); err != nil {
		t.Error(err)
	}
}

func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"newer":   `{"schemaVersion": 2}`,
		"unknown": `{"schemaVersion": 0}`,
		"not v0":  `{"name": "x"}`,
		"garbage": `not json`,
		"invalid": `{"schemaVersion": 1, "kiln": {}}`,
	} {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(body), 0o644)
		_, err := Read(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
		if name == "newer" && !strings.Contains(err.Error(), "newer kiln") {
			t.Errorf("newer: %v", err)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{2 * time.Minute: "2m", 90 * time.Second: "1m30s", time.Hour: "1h", 1500 * time.Millisecond: "1.5s", 0: "0s", 3*time.Hour + 5*time.Second: "3h0m5s"} {
		if got := Duration(d).String(); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(want); err != nil || back != d {
			t.Errorf("%q does not read back as %v", want, d)
		}
	}
}

// TestDocsCoverSchema: docs/manifest.md describes every field the schema has.
func TestDocsCoverSchema(t *testing.T) {
	doc, err := os.ReadFile("../docs/manifest.md")
	if err != nil {
		t.Fatal(err)
	}
	fs, err := fields()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		key := f[strings.LastIndex(f, "/")+1:]
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("docs/manifest.md does not describe %s", f)
		}
	}
}

func TestRelativeFile(t *testing.T) {
	dir := t.TempDir()
	mp := filepath.Join(dir, "out", "web.manifest.json")
	rel := RelativeFile(filepath.Join(dir, "recipes", "web.yaml"), mp)
	if rel != "../recipes/web.yaml" {
		t.Errorf("%q", rel)
	}
	m := &Manifest{Recipe: Recipe{File: rel}}
	if got := m.RecipePath(mp); got != filepath.Join(dir, "recipes", "web.yaml") {
		t.Errorf("RecipePath %q", got)
	}
}
