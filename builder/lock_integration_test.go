package builder

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
)

// TestLockOnLoopbackMirror proves package locks against a mirror the test
// controls: a signed Debian repository on 127.0.0.1, made with
// dpkg-scanpackages from the very packages an image of the test recipe
// holds. A locked rebuild — its base built again from the mirror — is the
// same bytes as the image the lock was taken from. Then the mirror moves
// one package to a new version (the recipe's own, tree), and the locked
// bake fails naming it.
func TestLockOnLoopbackMirror(t *testing.T) {
	needBakeTools(t)
	for _, tool := range []string{"dpkg-scanpackages", "dpkg-deb", "gpg", "gpgconf"} {
		testutil.NeedTool(t, tool)
	}
	ctx := context.Background()
	dir := t.TempDir()
	plan := recipeVariant(t)
	// The packages: an ordinary bake from the host's mirror leaves every
	// .deb of the image in the shared package cache.
	hb := newTestBuilder(t, nil)
	host, err := hb.Bake(ctx, plan, filepath.Join(dir, "host.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	suite := host.Info.Base.Suite
	debs := hb.cache.entryPath(KindPackages, packagesKey)
	if len(missingDebs(debs, host.Info.Packages)) > 0 {
		// A base cached by a kiln that did not keep the essential set's
		// packages: build it again, once, and they are kept.
		hb = New(Options{CacheDir: testutil.CacheDir(t), Boot: hb.opts.Boot, RefreshBase: true, NoCache: true})
		if host, err = hb.Bake(ctx, plan, filepath.Join(dir, "host.qcow2")); err != nil {
			t.Fatal(err)
		}
		if missing := missingDebs(debs, host.Info.Packages); len(missing) > 0 {
			t.Fatalf("the package cache lacks packages the image holds: %v", missing)
		}
	}
	key := newTestSigningKey(t)
	var root atomic.Value
	root.Store(testRepo(t, key, suite, debs, host.Info.Packages, ""))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.FileServer(http.Dir(root.Load().(string))).ServeHTTP(w, r)
	}))
	defer srv.Close()

	// A cache of its own: nothing of this mirror reaches the shared one.
	opts := Options{CacheDir: filepath.Join(dir, "cache"), Mirror: srv.URL, SecurityMirror: "none", MirrorKeyring: key.public}
	a, err := New(opts).Bake(ctx, plan, filepath.Join(dir, "a.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	lock := manifest.NewLock(a.Info)
	if len(lock.Releases) != 2 || lock.Releases[0].Suite != suite || lock.Releases[0].Date != testRepoDate {
		t.Errorf("the lock records releases %+v; want the loopback mirror's %s and %s-updates of %s", lock.Releases, suite, suite, testRepoDate)
	}
	treeVersion := ""
	for _, p := range lock.Packages {
		if p.Name == "tree" {
			treeVersion = p.Version
		}
	}
	if treeVersion == "" {
		t.Fatalf("the lock does not hold the recipe's package tree: %v", lock.Pins())
	}
	lockFile := filepath.Join(dir, "web.lock")
	if err := manifest.WriteLock(lockFile, lock); err != nil {
		t.Fatal(err)
	}
	lock, sum, err := manifest.ReadLock(lockFile)
	if err != nil {
		t.Fatal(err)
	}

	// Locked: the base is built again from the mirror, pinned.
	locked := opts
	locked.Lock, locked.LockFile, locked.LockDigest = lock, lockFile, sum
	ev := &events{}
	locked.Progress = ev
	b, err := New(locked).Bake(ctx, plan, filepath.Join(dir, "b.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if !ev.saw("base", progress.Note, "pinned by the package lock") {
		t.Error("the locked bake did not build a pinned base")
	}
	if b.Info.Recipe.Lock != sum {
		t.Errorf("manifest records lock %q, want %q", b.Info.Recipe.Lock, sum)
	}
	if b.Info.Artifacts[0].SHA256 != a.Info.Artifacts[0].SHA256 {
		t.Errorf("the image rebuilt from its lock is %s, not %s, the image it was locked from", b.Info.Artifacts[0].SHA256, a.Info.Artifacts[0].SHA256)
	}

	// The mirror moves on: tree has a new version, the locked one is gone.
	root.Store(testRepo(t, key, suite, debs, host.Info.Packages, "tree"))
	locked.RefreshBase, locked.NoCache, locked.Progress = true, true, nil // as on a machine with nothing cached
	out := filepath.Join(dir, "c.qcow2")
	_, err = New(locked).Bake(ctx, plan, out)
	want := fmt.Sprintf("tree (amd64): locked at %s, but the mirror offers %s+kiln1", treeVersion, treeVersion)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), lockFile) {
		t.Fatalf("locked bake on a mirror without the locked version: %v; want an error naming %s and saying %q", err, lockFile, want)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a bake that broke its lock left an image: %v", err)
	}
}

// debName is the file name apt gives a package it downloads.
func debName(p manifest.Package) string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Arch)
}

// missingDebs lists the packages of pkgs that dir has no .deb of.
func missingDebs(dir string, pkgs []manifest.Package) []string {
	var out []string
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, debName(p))); err != nil {
			out = append(out, debName(p))
		}
	}
	return out
}

// testRepoDate is the Date of the test repository's Release files.
const testRepoDate = "Sun, 01 Nov 2026 00:00:00 UTC"

// testKey is a throwaway OpenPGP signing key.
type testKey struct{ home, public string }

func newTestSigningKey(t *testing.T) testKey {
	t.Helper()
	home, err := os.MkdirTemp("", "kiln-gpg-") // short: gpg-agent's socket path is bounded
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	os.Chmod(home, 0o700)
	k := testKey{home: home, public: filepath.Join(t.TempDir(), "kiln-test-mirror.gpg")}
	run(t, "", "gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", "kiln test mirror <mirror@kiln.invalid>", "ed25519", "sign", "never")
	run(t, "", "gpg", "--homedir", home, "--batch", "--yes", "--output", k.public, "--export")
	return k
}

// testRepo makes a signed repository of suite and suite-updates (empty)
// holding exactly the packages listed, from the package cache. bump names a
// package that the repository holds at its version plus "+kiln1" instead.
func testRepo(t *testing.T, key testKey, suite, debs string, pkgs []manifest.Package, bump string) string {
	t.Helper()
	repo := t.TempDir()
	pool := filepath.Join(repo, "pool")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		name := debName(p)
		src := filepath.Join(debs, name)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("the package cache lacks %s, which the image holds: %v", name, err)
		}
		if p.Name != bump {
			if err := os.Link(src, filepath.Join(pool, name)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		tree := filepath.Join(t.TempDir(), "deb")
		run(t, "", "dpkg-deb", "-R", src, tree)
		control := filepath.Join(tree, "DEBIAN", "control")
		c, err := os.ReadFile(control)
		if err != nil {
			t.Fatal(err)
		}
		c = []byte(strings.Replace(string(c), "\nVersion: "+p.Version+"\n", "\nVersion: "+p.Version+"+kiln1\n", 1))
		if err := os.WriteFile(control, c, 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "", "dpkg-deb", "--root-owner-group", "-b", tree, filepath.Join(pool, fmt.Sprintf("%s_%s+kiln1_%s.deb", p.Name, p.Version, p.Arch)))
	}
	index := run(t, repo, "dpkg-scanpackages", "--multiversion", "pool")
	for _, s := range []struct{ name, packages string }{{suite, index}, {suite + "-updates", ""}} {
		dist := filepath.Join(repo, "dists", s.name)
		bin := filepath.Join(dist, "main", "binary-amd64")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		var gz strings.Builder
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(s.packages))
		zw.Close()
		release := fmt.Sprintf("Origin: kiln-test\nLabel: kiln-test\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: amd64\nComponents: main\nSHA256:\n", s.name, s.name, testRepoDate)
		for file, data := range map[string]string{"Packages": s.packages, "Packages.gz": gz.String()} {
			if err := os.WriteFile(filepath.Join(bin, file), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			release += fmt.Sprintf(" %x %d main/binary-amd64/%s\n", sha256.Sum256([]byte(data)), len(data), file)
		}
		if err := os.WriteFile(filepath.Join(dist, "Release"), []byte(release), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, dist, "gpg", "--homedir", key.home, "--batch", "--yes", "--clearsign", "--output", "InRelease", "Release")
	}
	return repo
}

// run runs a tool in dir and returns its standard output.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
