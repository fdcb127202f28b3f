package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/recipes"
)

// TestAliasesOnHostMirror: on the build host's own mirror, each alias kiln
// accepts names the release kiln's table gives it (debian:stable is trixie).
func TestAliasesOnHostMirror(t *testing.T) {
	testutil.Integration(t)
	m, err := HostMirrors("/etc/apt")
	if err != nil {
		testutil.Unavailable(t, "no Debian mirror in the host's apt sources: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range recipes.Releases() {
		got, err := releaseCodename(ctx, m.Archive, r.Alias)
		if err != nil {
			t.Fatal(err)
		}
		if got != r.Codename {
			t.Errorf("the mirror's %s is %s; kiln's release table says %s", r.Alias, got, r.Codename)
		}
	}
}

// TestReleaseTableOnMirror proves the release table: for each supported
// release, the base kiln builds (from the shared test cache, or built now)
// refreshes its package lists from the host's mirror, and apt says which
// version of each tabled package it would install. Its upstream version
// must begin with the table's major or major.minor.
func TestReleaseTableOnMirror(t *testing.T) {
	var pkgs []string
	for _, s := range recipes.TrackedSoftware() {
		pkgs = append(pkgs, s.Package)
	}
	forEachReleaseBase(t, func(ctx context.Context, t *testing.T, r recipes.Release, tree root) {
		// Today's index, not the one the cached base was built with:
		// point releases move versions (bookworm's dnsmasq went 2.89 -> 2.90).
		resolv, _ := os.ReadFile("/etc/resolv.conf")
		if err := tree.writeFile("/etc/resolv.conf", resolv, 0o644, 0, 0); err != nil {
			t.Fatal(err)
		}
		ch := &chroot{dir: tree.dir}
		if _, err := ch.run(ctx, "apt-get update", nil, "apt-get", "-q", "update"); err != nil {
			t.Fatal(err)
		}
		out, err := ch.run(ctx, "apt-cache policy", nil, append([]string{"apt-cache", "policy"}, pkgs...)...)
		if err != nil {
			t.Fatal(err)
		}
		candidates := policyCandidates(out)
		for _, p := range pkgs {
			want, got := r.Versions[p], candidates[p]
			if !versionIs(got, want) {
				t.Errorf("%s on %s: the mirror serves %q; kiln's table says %s", p, r.Codename, got, want)
			} else {
				t.Logf("%s %s: %s (table: %s)", r.Codename, p, got, want)
			}
		}
	})
}

// policyCandidates reads apt-cache policy's output: package -> candidate.
func policyCandidates(out string) map[string]string {
	c := map[string]string{}
	pkg := ""
	for _, line := range strings.Split(out, "\n") {
		if line != "" && line[0] != ' ' && strings.HasSuffix(line, ":") {
			pkg = strings.TrimSuffix(line, ":")
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && pkg != "" {
			c[pkg] = v
		}
	}
	return c
}

// versionIs reports whether the upstream part of a Debian version (no epoch,
// no revision) is want or begins with it: "17+278+deb13u1" is 17,
// "1.1.3-1" is 1.1, "2.91-1" is not 2.9.
func versionIs(debian, want string) bool {
	if want == "" || debian == "" || debian == "(none)" {
		return false
	}
	if _, v, ok := strings.Cut(debian, ":"); ok {
		debian = v
	}
	if i := strings.LastIndexByte(debian, '-'); i > 0 {
		debian = debian[:i]
	}
	rest, ok := strings.CutPrefix(debian, want)
	return ok && (rest == "" || strings.ContainsAny(rest[:1], ".+~"))
}

func TestVersionIs(t *testing.T) {
	for _, c := range []struct {
		debian, want string
		ok           bool
	}{
		{"17+278+deb13u1", "17", true},
		{"15+248+deb12u2", "15", true},
		{"1.1.3-1", "1.1", true},
		{"3.0.11-1+deb13u5", "3.0", true},
		{"2.91-1+deb13u2", "2.91", true},
		{"2.91-1+deb13u2", "2.9", false},
		{"2.90-4~deb12u2", "2.89", false},
		{"6.12.118-1", "6.12", true},
		{"6.12.118-1", "6.1", false},
		{"1:257.13-1~deb13u1", "257", true},
		{"3.13.5-1", "3.13", true},
		{"(none)", "3.13", false},
		{"", "3.13", false},
	} {
		if got := versionIs(c.debian, c.want); got != c.ok {
			t.Errorf("versionIs(%q, %q) = %v", c.debian, c.want, got)
		}
	}
}

// TestGuestCloudInitAcceptsExamples: the cloud-init of each supported
// release — its own `cloud-init schema`, run inside the release's base —
// accepts every stage of every example as kiln renders it. (The host's
// cloud-init checks the same in examples; this is the guests' view, and
// the check that kiln's embedded 25.1 schema matches trixie's.)
func TestGuestCloudInitAcceptsExamples(t *testing.T) {
	all, _ := filepath.Glob("../examples/*.yaml")
	examples := slices.DeleteFunc(all, func(f string) bool { return strings.HasPrefix(filepath.Base(f), "fleet") }) // fleets are no recipes
	if len(examples) == 0 {
		t.Fatal("no examples")
	}
	forEachReleaseBase(t, func(ctx context.Context, t *testing.T, r recipes.Release, tree root) {
		var docs []string
		for _, f := range examples {
			plan, err := recipes.LoadPlan(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, stage := range []recipes.Stage{recipes.StageBoot, recipes.StageBake, recipes.StageFull} {
				seed, err := plan.Seed(recipes.Instance{}, stage, recipes.PlaceholderResolver())
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("/tmp/%s-%s.yaml", strings.TrimSuffix(filepath.Base(f), ".yaml"), stage)
				if err := tree.writeFile(name, seed.UserData, 0o600, 0, 0); err != nil {
					t.Fatal(err)
				}
				docs = append(docs, name)
			}
		}
		ch := &chroot{dir: tree.dir}
		for _, d := range docs {
			out, err := ch.run(ctx, "cloud-init schema "+d, nil, "cloud-init", "schema", "-c", d)
			if err != nil || !strings.Contains(out, "Valid schema") && !strings.Contains(out, "Valid cloud-config") {
				t.Errorf("%s's cloud-init (%s) rejects %s: %v\n%s", r.Codename, r.Versions["cloud-init"], d, err, out)
			}
		}
	})
}

// forEachReleaseBase runs f, as a subtest per supported release, on a tree
// of the base kiln builds for it from the host's mirror (from the shared
// test cache, or built now).
func forEachReleaseBase(t *testing.T, f func(ctx context.Context, t *testing.T, r recipes.Release, tree root)) {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedRoot(t)
	for _, tool := range []string{"mmdebstrap", "unshare", "tar"} {
		testutil.NeedTool(t, tool)
	}
	mirrors, err := HostMirrors("/etc/apt")
	if err != nil {
		testutil.Unavailable(t, "no Debian mirror in the host's apt sources: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b := New(Options{CacheDir: testutil.CacheDir(t)})
	for _, r := range recipes.Releases() {
		t.Run(r.Codename, func(t *testing.T) {
			tree := root{dir: filepath.Join(t.TempDir(), "root")}
			if err := b.ensureBase(ctx, newPackageBase(r.Codename, mirrors), tree.dir); err != nil {
				t.Fatal(err)
			}
			f(ctx, t, r, tree)
		})
	}
}
