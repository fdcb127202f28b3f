package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// The bake's cache decisions, with the offline steps replaced by fakes
// that write an image and its manifest: fast, no root, no mmdebstrap.

// fakeBake counts runs of the offline pipeline and can fail one step.
type fakeBake struct {
	runs  atomic.Int32
	fail  error
	block chan struct{} // when set, the first step waits on it
}

func (f *fakeBake) steps(b *Builder) func() []bakeStep {
	return func() []bakeStep {
		return []bakeStep{
			{"base", func(ctx context.Context, st *bakeState) error {
				f.runs.Add(1)
				if f.block != nil {
					<-f.block
				}
				return nil
			}},
			{"convert", func(ctx context.Context, st *bakeState) error {
				if f.fail != nil {
					return f.fail
				}
				st.image = filepath.Join(st.work, "image.qcow2")
				return os.WriteFile(st.image, []byte("image of "+st.plan.ImageKey), 0o644)
			}},
			{"manifest", func(ctx context.Context, st *bakeState) error {
				sum, err := digest.File(st.image)
				if err != nil {
					return err
				}
				m, err := b.describe(st.plan, os.DirFS(st.work), false)
				if err != nil {
					return err
				}
				m.Recipe.ImageKey = st.key
				m.Base = st.manifestBase()
				m.Disk = manifest.Disk{Format: "qcow2", Compression: "zstd", Firmware: []string{"bios"}, VirtualSize: 1 << 30, FileSize: sum.Size}
				m.Artifacts = []manifest.Artifact{{Name: "image.qcow2", Size: sum.Size, SHA256: sum.String()}}
				m.Build = manifest.Build{Mode: "offline"}
				return manifest.Write(filepath.Join(st.work, "manifest.json"), m)
			}},
		}
	}
}

func fakeBuilder(t *testing.T, cache string, f *fakeBake, opts Options) *Builder {
	t.Helper()
	opts.CacheDir, opts.Mirror = cache, "http://example.org/debian"
	opts.AptDir = t.TempDir() // no host sources needed: the mirror is given
	b := New(opts)
	b.offline = f.steps(b)
	return b
}

func plan(t *testing.T, dir, body string) *recipes.Plan {
	t.Helper()
	p := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: kiln/v1\nname: web\n"+body), 0o644); err != nil {
		t.Fatal(err)
	}
	pl, err := recipes.LoadPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestBakeCacheDecisions(t *testing.T) {
	ctx := context.Background()
	cache, dir := t.TempDir(), t.TempDir()
	f := &fakeBake{}
	b := fakeBuilder(t, cache, f, Options{})
	out := filepath.Join(dir, "web.qcow2")

	first, err := b.Bake(ctx, plan(t, dir, "bake: {packages: [htop]}\n"), out)
	if err != nil || first.Cached || f.runs.Load() != 1 {
		t.Fatalf("first bake: %+v %v, %d runs", first, err, f.runs.Load())
	}
	// The output and its manifest, which names the recipe beside it.
	m, err := manifest.Read(manifest.PathFor(out))
	if err != nil || m.Recipe.File != "web.yaml" || m.Artifacts[0].Name != "web.qcow2" {
		t.Fatalf("manifest %+v %v", m, err)
	}

	// Unchanged: a copy of the cache, no step runs.
	again, err := b.Bake(ctx, plan(t, dir, "bake: {packages: [htop]}\n"), out)
	if err != nil || !again.Cached || again.Key != first.Key || f.runs.Load() != 1 {
		t.Fatalf("unchanged recipe rebaked: %+v %v", again, err)
	}
	// A boot-only change: the same image, a manifest with the new digest.
	bootOnly := plan(t, dir, "bake: {packages: [htop]}\nboot: {hostname: \"web-{index}\"}\n")
	res, err := b.Bake(ctx, bootOnly, out)
	if err != nil || !res.Cached || f.runs.Load() != 1 {
		t.Fatalf("boot-only change rebaked: %+v %v", res, err)
	}
	if m, _ := manifest.Read(res.Manifest); m.Recipe.Digest != bootOnly.Digest {
		t.Errorf("manifest digest %s, want the current recipe's %s", m.Recipe.Digest, bootOnly.Digest)
	}
	// A bake change: a new key, a new bake.
	changed, err := b.Bake(ctx, plan(t, dir, "bake: {packages: [htop, tree]}\n"), out)
	if err != nil || changed.Cached || changed.Key == first.Key || f.runs.Load() != 2 {
		t.Fatalf("bake change: %+v %v", changed, err)
	}
	// --no-cache: baked again though cached.
	nc := fakeBuilder(t, cache, f, Options{NoCache: true})
	if res, err := nc.Bake(ctx, plan(t, dir, "bake: {packages: [htop]}\n"), out); err != nil || res.Cached || f.runs.Load() != 3 {
		t.Fatalf("--no-cache: %+v %v", res, err)
	}
	// Another SOURCE_DATE_EPOCH makes another image.
	ep := fakeBuilder(t, cache, f, Options{Epoch: time.Unix(1700000000, 0)})
	if res, err := ep.Bake(ctx, plan(t, dir, "bake: {packages: [htop]}\n"), out); err != nil || res.Key == first.Key {
		t.Fatalf("another epoch reused the image: %+v %v", res, err)
	}
}

// TestBakeFailureLeavesNothing: a failing step leaves no cache entry, no
// work directory and no output; the next bake runs the pipeline again.
func TestBakeFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	cache, dir := t.TempDir(), t.TempDir()
	boom := errors.New("boom")
	f := &fakeBake{fail: boom}
	b := fakeBuilder(t, cache, f, Options{})
	out := filepath.Join(dir, "web.qcow2")
	if _, err := b.Bake(ctx, plan(t, dir, ""), out); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	for _, p := range []string{out, manifest.PathFor(out)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", p)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "images")); len(entries) != 0 {
		t.Errorf("a cache entry for a failed bake: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "tmp")); len(entries) != 0 {
		t.Errorf("work directories left: %v", entries)
	}
	f.fail = nil
	if res, err := b.Bake(ctx, plan(t, dir, ""), out); err != nil || res.Cached || f.runs.Load() != 2 {
		t.Fatalf("after a failure: %+v %v", res, err)
	}
}

// TestBakeConcurrent: two bakes of one recipe at once build it once; the
// second waits and copies.
func TestBakeConcurrent(t *testing.T) {
	ctx := context.Background()
	cache, dir := t.TempDir(), t.TempDir()
	f := &fakeBake{block: make(chan struct{})}
	p := plan(t, dir, "")
	var wg sync.WaitGroup
	results := make([]*Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := fakeBuilder(t, cache, f, Options{})
			results[i], errs[i] = b.Bake(ctx, p, filepath.Join(dir, []string{"a.qcow2", "b.qcow2"}[i]))
		}()
	}
	// Let the first build proceed once it started; the other is waiting on
	// the image's lock by then or finds it cached.
	deadline := time.Now().Add(10 * time.Second)
	for f.runs.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(f.block)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || f.runs.Load() != 1 {
		t.Fatalf("errors %v, %d runs (want 1)", errs, f.runs.Load())
	}
	if results[0].Cached == results[1].Cached {
		t.Errorf("one bake should have built, the other copied: %v %v", results[0].Cached, results[1].Cached)
	}
}

// TestBakeDamagedCache: a cached image that no longer matches its
// manifest is never handed out; the entry is dropped.
func TestBakeDamagedCache(t *testing.T) {
	ctx := context.Background()
	cache, dir := t.TempDir(), t.TempDir()
	f := &fakeBake{}
	b := fakeBuilder(t, cache, f, Options{})
	out := filepath.Join(dir, "web.qcow2")
	res, err := b.Bake(ctx, plan(t, dir, ""), out)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cache, "images", res.Key, "image.qcow2"), []byte("bit rot"), 0o644)
	_, err = b.Bake(ctx, plan(t, dir, ""), filepath.Join(dir, "again.qcow2"))
	if err == nil || !strings.Contains(err.Error(), "does not match its manifest") {
		t.Fatalf("damaged cache: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "again.qcow2")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a damaged image was placed at the output")
	}
	if res, err := b.Bake(ctx, plan(t, dir, ""), filepath.Join(dir, "again.qcow2")); err != nil || res.Cached {
		t.Fatalf("after damage: %+v %v", res, err)
	}
}
