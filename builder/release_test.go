package builder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// releaseFile is the head of a Debian Release file, as mirrors serve it.
func releaseFile(suite, codename, version string) string {
	return fmt.Sprintf("Origin: Debian\nLabel: Debian\nSuite: %s\nVersion: %s\nCodename: %s\n"+
		"Date: Sat, 12 Sep 2026 07:55:41 UTC\nArchitectures: all amd64 arm64\nComponents: main contrib non-free-firmware non-free\n"+
		"Description: Debian %s\nMD5Sum:\n 0123456789abcdef0123456789abcdef 1234 main/binary-amd64/Packages\n"+
		"SHA256:\n %s 1234 main/binary-amd64/Packages\n", suite, version, codename, version, strings.Repeat("ab", 32))
}

// fakeMirror serves dists/<alias>/Release files on 127.0.0.1; codenames
// maps an alias to the codename its Release names, and may change.
type fakeMirror struct {
	*httptest.Server
	mu        sync.Mutex
	codenames map[string]string
	gets      int
}

func newFakeMirror(t *testing.T, codenames map[string]string) *fakeMirror {
	m := &fakeMirror{codenames: codenames}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.gets++
		alias, ok := strings.CutPrefix(r.URL.Path, "/debian/dists/")
		alias, ok2 := strings.CutSuffix(alias, "/Release")
		codename, known := m.codenames[alias]
		if !ok || !ok2 || !known {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, releaseFile(alias, codename, "13.7"))
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *fakeMirror) set(alias, codename string) {
	m.mu.Lock()
	m.codenames[alias] = codename
	m.mu.Unlock()
}

func TestReleaseCodename(t *testing.T) {
	ctx := context.Background()
	m := newFakeMirror(t, map[string]string{"stable": "trixie", "oldstable": "bookworm"})
	if !strings.HasPrefix(m.URL, "http://127.0.0.1:") {
		t.Fatalf("the fake mirror is not on loopback: %s", m.URL)
	}
	for alias, want := range map[string]string{"stable": "trixie", "oldstable": "bookworm"} {
		got, err := releaseCodename(ctx, m.URL+"/debian/", alias)
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", alias, got, err, want)
		}
	}
	_, err := releaseCodename(ctx, m.URL+"/debian", "testing")
	if err == nil || !strings.Contains(err.Error(), "/debian/dists/testing/Release: 404") {
		t.Errorf("missing Release: %v", err)
	}

	// A local mirror, by file: URL.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "dists", "stable"), 0o755)
	os.WriteFile(filepath.Join(dir, "dists", "stable", "Release"), []byte(releaseFile("stable", "trixie", "13.7")), 0o644)
	for _, u := range []string{"file://" + dir, "file:" + dir} {
		if got, err := releaseCodename(ctx, u, "stable"); err != nil || got != "trixie" {
			t.Errorf("%s: %q, %v", u, got, err)
		}
	}
	if _, err := releaseCodename(ctx, "ftp://mirror.example.org/debian", "stable"); err == nil || !strings.Contains(err.Error(), "not an http(s) or file: URL") {
		t.Errorf("ftp mirror: %v", err)
	}
}

func TestCodenameField(t *testing.T) {
	for body, want := range map[string]string{
		releaseFile("stable", "trixie", "13.7"):                    "trixie",
		"Suite: oldstable\nCodename:   bookworm  \n":               "bookworm",
		"Suite: stable\nMD5Sum:\n 00 1 Codename: x\nCodename: y\n": "error: no Codename field",
		"Suite: stable\n":                      "error: no Codename field",
		"Suite: stable\nCodename: Trixie 13\n": `error: Codename "Trixie 13" is not a release name`,
		"Suite: stable\nCodename:\n":           `error: Codename "" is not a release name`,
	} {
		got, err := codenameField(strings.NewReader(body))
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", body, got, want)
		}
	}
}

// TestReleaseCodenameBounded: a mirror that streams without end, or never
// answers, costs at most the size limit, or the context's time.
func TestReleaseCodenameBounded(t *testing.T) {
	var sent int64
	var mu sync.Mutex
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		line := []byte(strings.Repeat("X-Filler: padding", 4) + "\n")
		for r.Context().Err() == nil {
			if _, err := w.Write(line); err != nil {
				return
			}
			mu.Lock()
			sent += int64(len(line))
			done := sent > 64<<20
			mu.Unlock()
			if done {
				return
			}
		}
	}))
	defer endless.Close()
	_, err := releaseCodename(context.Background(), endless.URL, "stable")
	if err == nil || !strings.Contains(err.Error(), "no Codename field in its first 1024 KiB") {
		t.Errorf("endless Release: %v", err)
	}
	mu.Lock()
	if sent > 8<<20 {
		t.Errorf("the server sent %d bytes before kiln stopped reading", sent)
	}
	mu.Unlock()

	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer silent.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = releaseCodename(ctx, silent.URL, "stable")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("silent mirror: %v after %v", err, time.Since(start))
	}
}

// TestBakeAlias: debian:stable is built as the release the mirror names,
// the manifest records it, and the base follows the mirror when stable
// moves on; a codename kiln does not build is refused at the base field.
func TestBakeAlias(t *testing.T) {
	ctx := context.Background()
	cache, dir := t.TempDir(), t.TempDir()
	mirror := newFakeMirror(t, map[string]string{"stable": "trixie", "oldstable": "bookworm"})
	f := &fakeBake{}
	b := fakeBuilder(t, cache, f, Options{})
	b.opts.Mirror = mirror.URL + "/debian"
	out := filepath.Join(dir, "web.qcow2")

	stable, err := b.Bake(ctx, plan(t, dir, "base: debian:stable\n"), out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Read(stable.Manifest)
	if err != nil || m.Base.Ref != "debian:stable" || m.Base.Suite != "trixie" || !strings.HasSuffix(m.Base.Sources[0], "/debian trixie main") {
		t.Fatalf("manifest base %+v, %v", m.Base, err)
	}
	trixie, err := b.Bake(ctx, plan(t, dir, "base: debian:trixie\n"), out)
	if err != nil {
		t.Fatal(err)
	}
	if m2, _ := manifest.Read(trixie.Manifest); m2.Base.Suite != "trixie" || m2.Base.Key != m.Base.Key {
		t.Errorf("debian:trixie and debian:stable (trixie) do not share the base: %+v, %+v", m2.Base, m.Base)
	}

	// Stable moves on to a release kiln builds: another base, another image.
	mirror.set("stable", "bookworm")
	moved, err := b.Bake(ctx, plan(t, dir, "base: debian:stable\n"), out)
	if err != nil || moved.Cached || moved.Key == stable.Key {
		t.Fatalf("stable moved to bookworm: %+v %v", moved, err)
	}
	if m, _ := manifest.Read(moved.Manifest); m.Base.Suite != "bookworm" {
		t.Errorf("suite %q, want bookworm", m.Base.Suite)
	}

	// ... or to one it does not.
	mirror.set("stable", "forky")
	_, err = b.Bake(ctx, plan(t, dir, "base: debian:stable\n"), out)
	var re *recipes.Error
	if !errors.As(err, &re) || re.Path != "base" || re.Pos.Line != 3 || re.Pos.Col != 7 ||
		!strings.Contains(re.Msg, `debian:stable is "forky" on the mirror`) || !strings.HasSuffix(re.Msg, "name one it does: debian:trixie (Debian 13, the default), debian:bookworm (Debian 12)") {
		t.Errorf("forky: %v", err)
	}

	// An unreachable mirror fails the bake with the URL it tried.
	b.opts.Mirror = mirror.URL + "/nowhere"
	if _, err := b.Bake(ctx, plan(t, dir, "base: debian:oldstable\n"), out); err == nil ||
		!strings.Contains(err.Error(), "finding which release debian:oldstable is") || !strings.Contains(err.Error(), "/nowhere/dists/oldstable/Release: 404") {
		t.Errorf("no Release: %v", err)
	}
}
