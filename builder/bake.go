package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/disk"
	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/lint"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
)

// imageLayout names how kiln lays out images; bump it when sysprep or the
// disk layout change, so cached images are rebuilt. (What boot-time tuning
// writes is digested into cache keys by itself: tuningKey.)
const imageLayout = "kiln-image-v14"

// Result is a finished bake.
type Result struct {
	Image    string             `json:"image"`
	Manifest string             `json:"manifest"`
	Cached   bool               `json:"cached"` // reused from the cache: nothing was rebuilt
	Key      string             `json:"key"`
	Info     *manifest.Manifest `json:"-"`
}

// bakeState is what the steps of one bake share.
type bakeState struct {
	plan     *recipes.Plan
	base     recipes.Base
	key      string // cache key of the finished image
	seed     string // what the disk's identifiers derive from: key, without a lock's pins
	work     string // work directory (in the cache's tmp)
	tree     root
	mirrors  Mirrors
	pbase    packageBase
	rootUUID string
	raw      string
	image    string // converted image in work
	manifest *manifest.Manifest
	started  time.Time
	// epoch is the image's SOURCE_DATE_EPOCH (treeEpoch), from where.
	epoch     time.Time
	epochFrom string
}

// Bake builds the golden image of a plan at output (qcow2 or raw, as the
// recipe's disk section says) with its manifest beside it. Package bases
// are baked offline, image bases by booting them once (see bake.mode). An
// unchanged recipe re-bakes as a copy of the cached image; a changed bake
// section reuses the cached base. Output appears atomically, or not at all.
func (b *Builder) Bake(ctx context.Context, plan *recipes.Plan, output string) (*Result, error) {
	base, err := recipes.ParseBase(plan.Recipe.Base)
	if err != nil {
		return nil, err
	}
	if freed := b.cache.cleanStale(); freed > 0 {
		b.note("cache", "removed %d MiB left by interrupted builds", freed>>20)
	}
	key, cached, err := b.ensureImage(ctx, plan, base)
	if err != nil {
		return nil, err
	}
	return b.fromCache(ctx, plan, key, output, cached)
}

// ensureImage bakes plan into the cache unless it is there already
// (cached), and returns its cache key.
func (b *Builder) ensureImage(ctx context.Context, plan *recipes.Plan, base recipes.Base) (key string, cached bool, err error) {
	mode := plan.Recipe.Bake.Mode
	if b.opts.Lock != nil && (base.Kind != recipes.BasePackages || mode == "vm") {
		return "", false, fmt.Errorf("%s: package locks pin offline bakes of package bases (debian:<suite>); this recipe is baked in a VM: remove the lock, or bake it offline", b.opts.LockFile)
	}
	switch {
	case base.Kind == recipes.BasePackages && mode != "vm":
		return b.ensureOffline(ctx, plan, base)
	case base.Kind == recipes.BasePackages:
		// vm mode on a package base: the base as a bootable image first
		// (offline, cached), then booted once to apply the recipe.
		img, err := b.packageBaseImage(ctx, plan, base)
		if err != nil {
			return "", false, err
		}
		defer img.release()
		return b.ensureVM(ctx, plan, img)
	case mode == "offline":
		return "", false, &recipes.Error{Pos: plan.Recipe.Position("bake.mode"), Path: "bake.mode",
			Msg: fmt.Sprintf("an offline bake works on a package base (debian:<suite>); %s is an image, baked by booting it: use bake.mode vm or auto", base)}
	default:
		img, err := b.resolveImageBase(ctx, plan, base)
		if err != nil {
			return "", false, err
		}
		defer img.release()
		return b.ensureVM(ctx, plan, img)
	}
}

// packageBaseImage bakes the recipe's package base, with nothing of the
// recipe applied, into a cached bootable image.
func (b *Builder) packageBaseImage(ctx context.Context, plan *recipes.Plan, base recipes.Base) (*imageBase, error) {
	r := &recipes.Recipe{APIVersion: recipes.APIVersion, Name: plan.Recipe.Name + "-base", Base: plan.Recipe.Base,
		Bake: recipes.Bake{Mirror: plan.Recipe.Bake.Mirror}, Disk: plan.Recipe.Disk}
	recipes.Default(r)
	bp, err := recipes.Compile(r)
	if err != nil {
		return nil, err
	}
	key, _, err := b.ensureOffline(ctx, bp, base)
	if err != nil {
		return nil, err
	}
	// Held until the VM bake is done with it: a prune keeps it.
	release, err := b.cache.use(ctx, KindImage, key)
	if err != nil {
		return nil, err
	}
	dir := b.cache.entryPath(KindImage, key)
	m, err := manifest.Read(filepath.Join(dir, "manifest.json"))
	if err != nil {
		release()
		return nil, err
	}
	img, err := b.vetBase(ctx, plan, base, filepath.Join(dir, m.Artifacts[0].Name), strings.TrimPrefix(m.Artifacts[0].SHA256, "sha256:"),
		image.WithMaxVirtualSize(m.Disk.VirtualSize))
	if err != nil {
		release()
		return nil, err
	}
	img.done = release
	img.Suite = m.Base.Suite
	return img, nil
}

// ensureOffline bakes a package-based plan offline into the cache, unless
// it is there already (cached), and returns its cache key.
func (b *Builder) ensureOffline(ctx context.Context, plan *recipes.Plan, base recipes.Base) (key string, cached bool, err error) {
	st := &bakeState{plan: plan, base: base, started: time.Now()}
	if st.mirrors, err = b.mirrors(plan); err != nil {
		return "", false, err
	}
	suite, err := b.resolveSuite(ctx, plan, base, st.mirrors)
	if err != nil {
		return "", false, err
	}
	st.pbase = newPackageBase(suite, st.mirrors)
	imageKey := func() string {
		return shortDigest([]byte(strings.Join([]string{imageLayout, plan.ImageKey, st.pbase.Key(), strings.Join(b.opts.Datasources, ","), fmt.Sprint(b.opts.NoBootTuning),
			tuningKey(b.opts.Datasources, !b.opts.NoBootTuning), fmt.Sprint(b.epoch.Unix())}, "\n")))
	}
	// The disk's identifiers derive from the key without the lock: the
	// image rebuilt from its lock is the same bytes as the one it was
	// locked from.
	st.seed = imageKey()
	if l := b.opts.Lock; l != nil {
		if l.Suite != suite {
			return "", false, fmt.Errorf("%s was locked on debian:%s, but %s is debian:%s now: run kiln lock update", b.opts.LockFile, l.Suite, plan.Recipe.Base, suite)
		}
		st.pbase.Pins = l.Pins()
	}
	st.key = imageKey()
	inCache := func() bool {
		_, err := os.Stat(filepath.Join(b.cache.entryPath(KindImage, st.key), "manifest.json"))
		return err == nil && !b.opts.NoCache
	}
	if inCache() {
		return st.key, true, nil
	}
	unlock, err := b.cache.build(ctx, KindImage, st.key)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if inCache() { // baked by another kiln while we waited
		return st.key, true, nil
	}
	if st.work, err = b.cache.tempDir("bake"); err != nil {
		return "", false, err
	}
	defer os.RemoveAll(st.work) // a no-op once committed to the cache
	for _, s := range b.offline() {
		if err := ctx.Err(); err != nil {
			return "", false, err
		}
		if err := s.run(ctx, st); err != nil {
			if ctx.Err() != nil {
				return "", false, ctx.Err()
			}
			return "", false, diskFull(err)
		}
	}
	if err := b.dropWork(st); err != nil {
		return "", false, err
	}
	if err := b.cache.commit(st.work, KindImage, st.key); err != nil {
		return "", false, err
	}
	return st.key, false, nil
}

// bakeStep is one step of the offline bake.
type bakeStep struct {
	name string
	run  func(context.Context, *bakeState) error
}

// offlineSteps is the offline bake, in order. Each step reports its own
// progress; the state carries what they share.
func (b *Builder) offlineSteps() []bakeStep {
	return []bakeStep{
		{"base", b.stepBase},
		{"bake", b.stepBake},
		{"sysprep", b.stepSysprep},
		{"assemble", b.stepAssemble},
		{"convert", b.stepConvert},
		{"lint", b.stepLint},
		{"manifest", b.stepManifest},
	}
}

// dropWork removes what the cache entry does not keep: the tree and the
// raw disk, or moves them aside with KeepWorkDir.
func (b *Builder) dropWork(st *bakeState) error {
	if b.opts.KeepWorkDir {
		kept := b.cache.entryPath(KindKept, st.key)
		os.RemoveAll(kept)
		if err := os.MkdirAll(kept, 0o755); err != nil {
			return err
		}
		if err := os.Rename(st.tree.dir, filepath.Join(kept, "root")); err != nil {
			return err
		}
		os.Rename(st.raw, filepath.Join(kept, "disk.raw"))
		b.note("bake", "tree and raw disk kept in %s", kept)
		return nil
	}
	os.Remove(st.raw)
	return os.RemoveAll(st.tree.dir)
}

// KeptDir is where KeepWorkDir leaves the tree and raw disk of a bake.
func (b *Builder) KeptDir(key string) string { return b.cache.entryPath(KindKept, key) }

func (b *Builder) mirrors(plan *recipes.Plan) (Mirrors, error) {
	m, err := b.archiveMirrors(plan)
	if err != nil {
		return m, err
	}
	switch sec := b.opts.SecurityMirror; sec {
	case "":
	case "none":
		m.Security = ""
	default:
		m.Security = strings.TrimSuffix(sec, "/")
	}
	return m, nil
}

func (b *Builder) archiveMirrors(plan *recipes.Plan) (Mirrors, error) {
	if m := plan.Recipe.Bake.Mirror; m != "" {
		host, _ := HostMirrors(b.opts.AptDir)
		return Mirrors{Archive: strings.TrimSuffix(m, "/"), Security: host.Security}, nil
	}
	if b.opts.Mirror != "" {
		host, _ := HostMirrors(b.opts.AptDir)
		return Mirrors{Archive: strings.TrimSuffix(b.opts.Mirror, "/"), Security: host.Security}, nil
	}
	return HostMirrors(b.opts.AptDir)
}

func (b *Builder) stepBase(ctx context.Context, st *bakeState) error {
	st.tree = root{dir: filepath.Join(st.work, "root")}
	return b.ensureBase(ctx, st.pbase, st.tree.dir)
}

func (b *Builder) stepBake(ctx context.Context, st *bakeState) error {
	step := progress.Begin(b.sink, "bake", int64(len(st.plan.Packages)), "applying the recipe's bake section offline")
	st.rootUUID = disk.RootUUID(st.seed)
	ds := append([]string{"NoCloud"}, b.opts.Datasources...)
	ds = append(ds, "None")
	if err := tuneImage(st.tree, st.rootUUID, ds, !b.opts.NoBootTuning); err != nil {
		return err
	}
	// apt's archive lock is per directory: bakes sharing the package cache
	// take turns installing (and a prune waits for them).
	unlock, err := b.cache.build(ctx, KindPackages, packagesKey)
	if err != nil {
		return err
	}
	defer unlock()
	debs := b.cache.entryPath(KindPackages, packagesKey)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	// What the bake's commands stamp with the time (shadow's password
	// dates, bytecode) takes the base's epoch, not the clock.
	when, _, err := b.treeEpoch(st.tree)
	if err != nil {
		return err
	}
	ob := &offlineBake{plan: st.plan, root: st.tree, step: step,
		chroot: &chroot{dir: st.tree.dir, binds: []bind{{host: debs, guest: "/var/cache/apt/archives"}}, env: epochEnv(when)}}
	if err := ob.run(ctx); err != nil {
		return err
	}
	step.End("")
	return nil
}

func (b *Builder) stepSysprep(ctx context.Context, st *bakeState) error {
	step := progress.Begin(b.sink, "sysprep", 0, "cleaning the image: machine-id, host keys, caches, logs, histories")
	m, err := b.describe(st.plan, os.DirFS(st.tree.dir), true)
	if err != nil {
		return err
	}
	m.Recipe.ImageKey = st.key
	m.Recipe.Lock = b.opts.LockDigest
	m.Base = st.manifestBase()
	if m.Base.Releases, err = aptReleases(st.tree); err != nil {
		return err
	}
	if err := b.checkLock(m.Packages); err != nil {
		return err
	}
	st.manifest = m
	// The packages are final: the image's epoch is known. The initramfs is
	// built with it, and the tree's times are clamped to it below.
	if st.epoch, st.epochFrom, err = b.treeEpoch(st.tree); err != nil {
		return err
	}
	tuned := !b.opts.NoBootTuning
	if tuned {
		if err := settleCaches(ctx, &chroot{dir: st.tree.dir}); err != nil {
			return err
		}
		if err := rebuildInitramfs(ctx, &chroot{dir: st.tree.dir, env: epochEnv(st.epoch)}); err != nil {
			return err
		}
		if err := dropStartChecks(st.tree); err != nil {
			return err
		}
	}
	if err := sysprep(st.tree, machineID(tuned)); err != nil {
		return err
	}
	// Clamped before the bytecode headers record their sources' times and
	// the stamps /usr's.
	if err := clampTimes(st.tree, st.epoch); err != nil {
		return err
	}
	if tuned {
		if err := timestampPycs(st.tree); err != nil {
			return err
		}
		// Last: nothing may touch /usr after the stamps say it is settled.
		if err := writeUpdateStamps(st.tree); err != nil {
			return err
		}
	}
	step.End("")
	return nil
}

// manifestBase is the manifest's record of a package base: the recipe's
// ref, the release built (an alias resolved), its key and sources.
func (st *bakeState) manifestBase() manifest.Base {
	return manifest.Base{Ref: st.base.String(), Kind: manifest.BasePackages, Suite: st.pbase.Suite, Key: st.pbase.Key(), Sources: st.pbase.Sources}
}

func (b *Builder) stepAssemble(ctx context.Context, st *bakeState) error {
	st.raw = filepath.Join(st.work, "disk.raw")
	res, err := disk.Assemble(ctx, disk.Spec{Path: st.raw, Size: int64(st.plan.Recipe.Disk.Size), RootTree: st.tree.dir, Seed: st.seed,
		Cmdline: kernelCmdline(!b.opts.NoBootTuning), Epoch: st.epoch}, b.sink)
	if err != nil {
		return err
	}
	st.manifest.Disk.RootUUID = res.RootUUID
	return nil
}

func (b *Builder) stepConvert(ctx context.Context, st *bakeState) error {
	d := st.plan.Recipe.Disk
	if d.Format == "raw" {
		st.image = filepath.Join(st.work, "image.raw")
		return os.Rename(st.raw, st.image)
	}
	st.image = filepath.Join(st.work, "image.qcow2")
	compression := d.Compression
	if compression == "none" {
		compression = ""
	}
	step := progress.Begin(b.sink, "convert", 100, "qcow2, "+d.Compression+" compression")
	raw := qemu.Image{Path: st.raw, Format: "raw"}
	err := b.opts.QemuImg.ConvertImage(ctx, raw, st.image, qemu.ConvertOptions{DstFormat: "qcow2", Compression: compression,
		Progress: func(p float64) { step.Advance(int64(p), 100) }})
	if err != nil {
		return err
	}
	if err := b.opts.QemuImg.Check(ctx, st.image); err != nil {
		return fmt.Errorf("the converted image fails qemu-img check: %w", err)
	}
	// The qcow2 must hold exactly the disk that was assembled.
	if err := b.opts.QemuImg.CompareImages(ctx, raw, qemu.Image{Path: st.image, Format: "qcow2"}); err != nil {
		return fmt.Errorf("the converted image differs from the assembled disk: %w", err)
	}
	step.End("")
	return nil
}

// stepLint holds kiln's own image to the hygiene rules it checks others by.
func (b *Builder) stepLint(ctx context.Context, st *bakeState) error {
	return b.lintImage(ctx, st.image, int64(st.plan.Recipe.Disk.Size))
}

// lintImage lints a baked image of up to size bytes.
func (b *Builder) lintImage(ctx context.Context, path string, size int64) error {
	step := progress.Begin(b.sink, "lint", 0, "checking the image's hygiene offline")
	rep, err := lint.Image(ctx, path, image.WithMaxVirtualSize(size))
	if err != nil {
		return err
	}
	var lines []string
	for _, v := range rep.Violations {
		if b.opts.NoBootTuning && (v.Rule == "datasource-list" || v.Rule == "first-boot-work") {
			continue // the baseline leaves these as a stock image has them, on purpose
		}
		lines = append(lines, v.String())
	}
	if len(lines) > 0 {
		return fmt.Errorf("the baked image fails kiln lint (a bake command may have left these behind):\n    %s", strings.Join(lines, "\n    "))
	}
	step.End(fmt.Sprintf("clean: %d rules", len(rep.Rules)))
	return nil
}

func (b *Builder) stepManifest(ctx context.Context, st *bakeState) error {
	d := st.plan.Recipe.Disk
	sum, err := digest.File(st.image)
	if err != nil {
		return err
	}
	m := st.manifest
	m.Disk.Format, m.Disk.Compression, m.Disk.Firmware = d.Format, d.Compression, d.Firmware
	m.Disk.VirtualSize, m.Disk.FileSize = int64(d.Size), sum.Size
	m.Artifacts = []manifest.Artifact{{Name: filepath.Base(st.image), Size: sum.Size, SHA256: sum.String()}}
	m.Build = manifest.Build{Mode: "offline", Duration: manifest.Duration(time.Since(st.started).Round(100 * time.Millisecond)),
		SourceDateEpoch: st.epoch.Unix(), SourceDateEpochFrom: st.epochFrom}
	return manifest.Write(filepath.Join(st.work, "manifest.json"), m)
}

// fromCache places the cached image key at output, with its manifest
// beside it naming plan (a boot-only change reuses an image baked from an
// earlier version of the recipe; the manifest names the current one). It
// returns errNotCached when the cache has no such image.
func (b *Builder) fromCache(ctx context.Context, plan *recipes.Plan, key, output string, cached bool) (*Result, error) {
	release, err := b.cache.use(ctx, KindImage, key)
	if err != nil {
		return nil, err
	}
	defer release()
	dir := b.cache.entryPath(KindImage, key)
	m, err := manifest.Read(filepath.Join(dir, "manifest.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errNotCached
		}
		return nil, err
	}
	if len(m.Artifacts) != 1 {
		return nil, fmt.Errorf("cached manifest lists %d artifacts", len(m.Artifacts))
	}
	src := filepath.Join(dir, m.Artifacts[0].Name)
	if err := atomicfile.Copy(src, output, 0o644); err != nil {
		return nil, err
	}
	// The copy is checked against the manifest: a cache entry damaged on
	// disk is never handed out as a good image.
	if sum, err := digest.File(output); err != nil || sum.String() != m.Artifacts[0].SHA256 || sum.Size != m.Artifacts[0].Size {
		os.Remove(output)
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cached image %s does not match its manifest", key)
	}
	m.Artifacts[0].Name = filepath.Base(output)
	mpath := manifest.PathFor(output)
	b.nameRecipe(m, plan, mpath)
	if err := manifest.Write(mpath, m); err != nil {
		return nil, err
	}
	if cached {
		b.note("cache", "recipe unchanged: reused cached image %s", key)
	}
	return &Result{Image: output, Manifest: mpath, Cached: cached, Key: key, Info: m}, nil
}
