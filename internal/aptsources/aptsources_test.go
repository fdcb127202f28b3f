package aptsources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostMirrors(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "sources.list.d", "debian.sources"), []byte(`Types: deb
# a comment
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
`), 0o644)
	os.WriteFile(filepath.Join(dir, "sources.list.d", "other.list"), []byte("deb [arch=amd64] https://vendor.example.com/apt stable main\n"), 0o644)
	m, err := HostMirrors(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Archive != "http://mirror.example.org/debian" || m.Security != "http://security.example.org/debian-security" {
		t.Fatalf("mirrors: %+v", m)
	}
	got := strings.Join(m.SourceLines("trixie"), "\n")
	want := "deb http://mirror.example.org/debian trixie main\ndeb http://mirror.example.org/debian trixie-updates main\ndeb http://security.example.org/debian-security trixie-security main"
	if got != want {
		t.Errorf("lines:\n%s", got)
	}
}

func TestHostMirrorsOneLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sources.list"), []byte("# deb http://old.example.org/debian bookworm main\ndeb http://one.example.org/debian bookworm main\ndeb-src http://one.example.org/debian bookworm main\n"), 0o644)
	m, err := HostMirrors(dir)
	if err != nil || m.Archive != "http://one.example.org/debian" || m.Security != "" {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := HostMirrors(t.TempDir()); err == nil || !strings.Contains(err.Error(), "bake.mirror") {
		t.Fatalf("no sources: %v", err)
	}
}
