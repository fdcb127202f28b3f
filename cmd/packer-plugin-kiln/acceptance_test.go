package main

// Acceptance tests: a real Packer core (internal/testpacker, Packer
// v1.12.0 built once into the test cache) loads this plugin, installed with
// `packer plugins install --path`, and validates and builds
// examples/packer/*.pkr.hcl against a real docker-registry on 127.0.0.1
// (internal/testregistry). Bakes are offline (package bases) and share the
// kiln test cache, so an unchanged example recipe is a copy. No VM boots.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/internal/testpacker"
	"github.com/kiln-project/kiln/cmd/packer-plugin-kiln/version"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
	kilnseed "github.com/kiln-project/kiln/seed"
)

// source is the plugin's source address in templates.
const source = "github.com/kiln-project/kiln"

var (
	pluginOnce sync.Once
	pluginBin  string
	pluginErr  error
	pluginOut  []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pluginBin != "" {
		os.RemoveAll(filepath.Dir(pluginBin))
	}
	os.Exit(code)
}

// pluginBinary builds this plugin once per test process, as make plugin does.
func pluginBinary(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "packer-plugin-kiln-test-")
		if err != nil {
			pluginErr = err
			return
		}
		pluginBin = filepath.Join(dir, "packer-plugin-kiln")
		cmd := exec.Command("go", "build", "-o", pluginBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		pluginOut, pluginErr = cmd.CombinedOutput()
	})
	if pluginErr != nil {
		t.Fatalf("go build the plugin: %v\n%s", pluginErr, pluginOut)
	}
	return pluginBin
}

// newPacker is a Packer core with this plugin installed, in a home of its own.
func newPacker(t *testing.T) *testpacker.Packer {
	t.Helper()
	testutil.Integration(t)
	p := testpacker.New(t)
	p.Install(t, pluginBinary(t), source)
	return p
}

// examples copies examples/ (recipes and packer/) into a temp dir and
// returns the copy's packer/ directory: builds write beside the template.
func examples(t *testing.T) string {
	t.Helper()
	root := filepath.Join("..", "..", "examples")
	dst := t.TempDir()
	for _, pattern := range []string{"*.yaml", "packer/*.pkr.hcl"} {
		files, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil || len(files) == 0 {
			t.Fatalf("no %s in %s: %v", pattern, root, err)
		}
		for _, f := range files {
			rel, _ := filepath.Rel(root, f)
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dst, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(dst, "packer")
}

func run(t *testing.T, p *testpacker.Packer, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := p.Run(ctx, dir, args...)
	t.Logf("packer %s: %s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
	return out, err
}

// TestWebExample is the newcomer's path of docs/packer.md: validate and
// build examples/packer/web.pkr.hcl, pushing to a registry; the image in
// the registry is the one baked, and the second build got the seed.
func TestWebExample(t *testing.T) {
	p := newPacker(t)
	reg := testregistry.Start(t, testregistry.Options{})
	dir := examples(t)
	ref := reg.Host + "/kiln/app-host:1"
	vars := []string{"-var", "ref=" + ref, "-var", "cache_dir=" + testutil.CacheDir(t)}

	if out, err := run(t, p, dir, append(append([]string{"validate"}, vars...), "web.pkr.hcl")...); err != nil {
		t.Fatalf("packer validate: %v\n%s", err, out)
	}
	out, err := run(t, p, dir, append(append([]string{"build", "-color=false"}, vars...), "web.pkr.hcl")...)
	if err != nil {
		t.Fatalf("packer build: %v\n%s", err, out)
	}
	t.Logf("packer build output:\n%s", out)

	// The builder's artifact: the image and its manifest, as kiln bake
	// writes them.
	image := filepath.Join(dir, "output-app-host", "app-host.qcow2")
	m, err := manifest.Read(manifest.PathFor(image))
	if err != nil {
		t.Fatalf("the kiln builder's manifest: %v", err)
	}
	sum, err := digest.File(image)
	if err != nil || sum.String() != m.Artifacts[0].SHA256 {
		t.Fatalf("image %s: digest %v (%v), manifest says %s", image, sum, err, m.Artifacts[0].SHA256)
	}
	if !strings.Contains(out, sum.String()) {
		t.Errorf("packer's output does not name the image digest %s", sum)
	}

	// kiln-push: the registry holds that image, pinned by the digest
	// the post-processor reported, and it pulls back byte for byte.
	m1 := regexp.MustCompile(`pushed \S+: (\S+@sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m1 == nil {
		t.Fatalf("packer's output names no pushed digest reference:\n%s", out)
	}
	pinned, err := registry.ParseRef(m1[1])
	if err != nil {
		t.Fatal(err)
	}
	c := registry.New(registry.Options{})
	info, err := c.Inspect(context.Background(), mustRef(t, ref))
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	if "sha256:"+strings.SplitN(m1[1], "@sha256:", 2)[1] != info.Digest {
		t.Errorf("kiln-push reported %s, the registry's tag points at %s", m1[1], info.Digest)
	}
	if info.Annotations["org.opencontainers.image.title"] != "app-host" {
		t.Errorf("annotations: %v", info.Annotations)
	}
	pulled := filepath.Join(t.TempDir(), "pulled.qcow2")
	if _, err := c.Pull(context.Background(), registry.PullRequest{Ref: pinned, Out: pulled}); err != nil {
		t.Fatalf("pull %s: %v", pinned, err)
	}
	if got, err := digest.File(pulled); err != nil || got.String() != sum.String() {
		t.Errorf("pulled %v (%v), baked %s", got, err, sum)
	}

	// kiln-seed into the file source: the user-data kiln seed would write.
	plan, err := recipes.LoadPlan(filepath.Join(dir, "..", "app-host.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sd, err := plan.Seed(recipes.Instance{Name: "web-1", Index: 1}, recipes.StageBoot, plan.Recipe.EnvResolver())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "output-seed", "user-data")); err != nil || string(got) != string(sd.UserData) {
		t.Errorf("the file source's user-data is not kiln's (%v):\n%s\nwant:\n%s", err, got, sd.UserData)
	}
	iso, err := os.ReadFile(filepath.Join(dir, "output-seed", "web-1.iso"))
	if err != nil {
		t.Fatalf("kiln-seed output: %v", err)
	}
	want := filepath.Join(t.TempDir(), "want.iso")
	if _, err := kilnseed.Write(want, sd, kilnseed.Options{}); err != nil {
		t.Fatal(err)
	}
	if w, _ := os.ReadFile(want); string(w) != string(iso) {
		t.Errorf("kiln-seed's ISO differs from kiln seed's for the same instance")
	}
}

func mustRef(t *testing.T, s string) registry.Ref {
	t.Helper()
	r, err := registry.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPluginCheck: packer-sdc plugin-check accepts the binary, and
// describe reports the version and the three components.
func TestPluginCheck(t *testing.T) {
	testutil.Integration(t)
	bin := pluginBinary(t)
	sdc := filepath.Join(t.TempDir(), "packer-sdc")
	cmd := exec.Command("go", "build", "-o", sdc, "github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build packer-sdc: %v\n%s", err, out)
	}
	// plugin-check wants the binary's name as Packer names plugins
	// (packer-plugin-*), relative to its working directory.
	check := exec.Command(sdc, "plugin-check", filepath.Base(bin))
	check.Dir = filepath.Dir(bin)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("packer-sdc plugin-check: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "describe").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version":"` + version.PluginVersion.String() + `"`, `"builders":["-packer-default-plugin-name-"]`, `"post_processors":["push"]`, `"datasources":["seed"]`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("describe: want %s in %s", want, out)
		}
	}
}
