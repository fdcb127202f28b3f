package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/boot"
	"github.com/kiln-project/kiln/disk"
	diskimage "github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/lazyre"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/seed"
)

// DefaultBakeTimeout bounds a VM bake: boot, packages, commands, sysprep.
const DefaultBakeTimeout = 30 * time.Minute

// ensureVM bakes an image base into the cache by booting it once under
// QEMU with a bake seed, unless it is there already (cached): cloud-init
// applies the recipe's bake section, kiln's finishing unit reports
// cloud-init's own result on the console, cleans the guest and powers it
// off; the overlay is then flattened and compressed into a standalone
// image.
func (b *Builder) ensureVM(ctx context.Context, plan *recipes.Plan, base *imageBase) (key string, cached bool, err error) {
	key = shortDigest([]byte(strings.Join([]string{imageLayout, "vm", plan.ImageKey, base.SHA256, fmt.Sprint(b.opts.NoBootTuning), strings.Join(b.opts.Datasources, ","),
		tuningKey(b.opts.Datasources, !b.opts.NoBootTuning), fmt.Sprint(b.epoch.Unix())}, "\n")))
	inCache := func() bool {
		_, err := os.Stat(filepath.Join(b.cache.entryPath(KindImage, key), "manifest.json"))
		return err == nil && !b.opts.NoCache
	}
	if inCache() {
		return key, true, nil
	}
	unlock, err := b.cache.build(ctx, KindImage, key)
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if inCache() { // baked by another kiln while we waited
		return key, true, nil
	}
	if err := b.vmBake(ctx, plan, base, key); err != nil {
		return "", false, err
	}
	return key, false, nil
}

// vmBake does the VM bake of ensureVM into the cache entry key, whose
// build lock the caller holds.
func (b *Builder) vmBake(ctx context.Context, plan *recipes.Plan, base *imageBase, key string) error {
	work, err := b.cache.tempDir("vmbake")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	started := time.Now()

	size := max(int64(plan.Recipe.Disk.Size), base.VirtualSize)
	if int64(plan.Recipe.Disk.Size) < base.VirtualSize {
		b.note("bake", "the base is %d MiB, more than disk.size %s: keeping the base's size", base.VirtualSize>>20, plan.Recipe.Disk.Size)
	}
	seedPath := filepath.Join(work, "bake-seed.iso")
	if err := b.writeBakeSeed(plan, seedPath); err != nil {
		return err
	}
	fw := qemu.BIOS
	if len(plan.Recipe.Disk.Firmware) > 0 {
		fw = qemu.Firmware(plan.Recipe.Disk.Firmware[0])
	}
	accel, why := qemu.DetectAccel()
	step := progress.Begin(b.sink, "vm-bake", 0, fmt.Sprintf("booting %s once under %s (%s: %s) to apply the bake section", base.Ref, fw, accel, why))
	// The VM writes to an overlay: the base is never modified.
	m, err := b.opts.Boot.Start(ctx, boot.Spec{Image: base.Path, Format: base.Format, Size: size, Seed: seedPath,
		Firmware: fw, Accel: accel, MemoryMiB: 1024, WorkDir: work})
	if err != nil {
		return err
	}
	defer m.Kill()
	overlay := m.Overlay
	followCtx, stopFollow := context.WithCancel(ctx)
	cleaned := make(chan struct{})
	go followConsole(followCtx, m, step, cleaned)
	timeout := b.opts.BakeTimeout
	if timeout == 0 {
		timeout = DefaultBakeTimeout
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	werr := b.waitPowerOff(waitCtx, m, step, cleaned)
	timedOut := errors.Is(waitCtx.Err(), context.DeadlineExceeded)
	cancel()
	stopFollow()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	tail := m.ConsoleTail(30)
	m.Kill() // a guest that would not power off is killed here, before its disk is read
	console, _ := os.ReadFile(m.SerialLog())
	if err := bakeVerdict(string(console), step, timedOut, werr, timeout); err != nil {
		return fmt.Errorf("%w\n  last console lines:\n    %s", err, strings.ReplaceAll(strings.TrimRight(tail, "\n"), "\n", "\n    "))
	}
	step.End("cloud-init done, guest cleaned and powered off")

	image, err := b.convertFlatten(ctx, plan, overlay, base, work)
	if err != nil {
		return err
	}
	if err := b.lintImage(ctx, image, max(int64(plan.Recipe.Disk.Size), base.VirtualSize)); err != nil {
		return err
	}
	m2, err := b.vmManifest(plan, base, key, image, started)
	if err != nil {
		return err
	}
	if err := manifest.Write(filepath.Join(work, "manifest.json"), m2); err != nil {
		return err
	}
	os.Remove(overlay)
	return b.cache.commit(work, KindImage, key)
}

// writeBakeSeed writes the seed of a VM bake: the bake section as
// cloud-config, then kiln's finishing unit, started last.
func (b *Builder) writeBakeSeed(plan *recipes.Plan, path string) error {
	nonce := make([]byte, 8)
	rand.Read(nonce)
	ds := append(append([]string{"NoCloud"}, b.opts.Datasources...), "None")
	// A stock base has no kiln-grow-root.service: cloud-init grows its root.
	// The stage layout of the base's cloud-init is known only inside the
	// guest: bake-finish applies the classic-only masks and the network
	// stage's skip where the units are the classic ones.
	tuning, masks, classicMasks := cloudConfigTuning(ds, true), strings.Join(tuningMasks, "\n")+"\n", strings.Join(classicStageMasks, "\n")+"\n"
	generators := strings.Join(generatorMasks, "\n") + "\n"
	if b.opts.NoBootTuning {
		tuning, masks, classicMasks, generators = "# Written by kiln: no boot-time tuning (a benchmark baseline).\n", "", "", ""
	}
	files := []recipes.PlanFile{
		{Path: "/var/lib/kiln-bake/99-kiln.cfg", Content: []byte(tuning), Mode: 0o644, Owner: "root:root"},
		{Path: "/var/lib/kiln-bake/mask", Content: []byte(masks), Mode: 0o644, Owner: "root:root"},
		{Path: "/var/lib/kiln-bake/mask-classic", Content: []byte(classicMasks), Mode: 0o644, Owner: "root:root"},
		{Path: "/var/lib/kiln-bake/mask-generators", Content: []byte(generators), Mode: 0o644, Owner: "root:root"},
		{Path: "/var/lib/kiln-bake/machine-id", Content: []byte(machineID(!b.opts.NoBootTuning)), Mode: 0o644, Owner: "root:root"},
		{Path: "/usr/local/lib/kiln/bake-finish", Content: []byte(asset("bake-finish")), Mode: 0o755, Owner: "root:root"},
		{Path: "/etc/systemd/system/kiln-bake-finish.service", Content: []byte(asset("bake-finish.service")), Mode: 0o644, Owner: "root:root"},
		{Path: "/var/lib/kiln-bake/" + snakeoilUnit, Content: []byte(asset(snakeoilUnit)), Mode: 0o644, Owner: "root:root"},
	}
	if !b.opts.NoBootTuning {
		for _, f := range tuningFiles() {
			files = append(files, recipes.PlanFile{Path: f.path, Content: []byte(f.content), Mode: recipes.Mode(f.mode), Owner: "root:root"})
		}
		// Staged: bake-finish installs them only where the network stage is
		// the classic `cloud-init init` unit they were written for.
		for _, f := range networkStageFiles() {
			files = append(files, recipes.PlanFile{Path: "/var/lib/kiln-bake/network-stage" + f.path, Content: []byte(f.content), Mode: recipes.Mode(f.mode), Owner: "root:root"})
		}
		// Staged too: bake-finish leaves a start check out only where it is
		// the unit's only ExecStartPre (startCheck.applies).
		for _, c := range startChecks {
			dir, f := "/var/lib/kiln-bake/start-checks/"+c.unit, c.dropIn()
			files = append(files,
				recipes.PlanFile{Path: dir + "/line", Content: []byte(c.line + "\n"), Mode: 0o644, Owner: "root:root"},
				recipes.PlanFile{Path: dir + "/tree" + f.path, Content: []byte(f.content), Mode: recipes.Mode(f.mode), Owner: "root:root"})
		}
	}
	s, err := plan.Seed(recipes.Instance{
		Name:        "kiln-bake",
		ID:          "kiln-bake-" + hex.EncodeToString(nonce), // a fresh instance for cloud-init, every build
		Hostname:    "kiln-bake",
		AppendFiles: files,
		// Ordered after cloud-final: it starts once cloud-init is done.
		AppendCommands: []recipes.Command{{Argv: []string{"systemctl", "start", "--no-block", "kiln-bake-finish.service"}}},
		EarlyCommands:  []recipes.Command{{Shell: bakePackageSpeedups}},
	}, recipes.StageBake, recipes.PlaceholderResolver())
	if err != nil {
		return err
	}
	_, err = seed.Write(path, s, seed.Options{ModTime: b.epoch})
	return err
}

// bakePackageSpeedups makes package installs in a VM bake cheaper where the
// guest uses dpkg and apt: no fsync per unpacked file (the bake syncs once
// before power-off), no translation indexes, no man-db index rebuild per
// trigger. bake-finish undoes all three.
const bakePackageSpeedups = `if [ -d /etc/dpkg/dpkg.cfg.d ]; then echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/kiln-bake; fi
if [ -d /etc/apt/apt.conf.d ]; then echo 'Acquire::Languages "none";' > /etc/apt/apt.conf.d/99kiln-bake; fi
if [ -e /var/lib/man-db/auto-update ]; then mv /var/lib/man-db/auto-update /var/lib/man-db/auto-update.kiln-bake; fi
`

var (
	bakeResultRE = lazyre.New(`KILN-BAKE-RESULT (\{.*\})`)
	consoleNote  = lazyre.New(`Cloud-init v\. \S+ (running '[^']+'|finished)|Setting up \S+|KILN-BAKE-|Failed to start|rror`)
)

// bakeVerdict reads the outcome of a VM bake from the console: cloud-init's
// own result as reported by the finishing unit, then the cleanup and the
// power-off.
func bakeVerdict(console string, step *progress.Step, timedOut bool, waitErr error, timeout time.Duration) error {
	m := bakeResultRE.FindAllStringSubmatch(console, -1)
	if len(m) == 0 {
		if timedOut {
			return fmt.Errorf("cloud-init never reported a result within %s: is cloud-init installed and enabled in the base image, and does it boot?", timeout)
		}
		return fmt.Errorf("the VM stopped before cloud-init reported a result (%v)", waitErr)
	}
	res, err := boot.ParseCloudInitResult([]byte(m[len(m)-1][1]))
	if err != nil {
		return err
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("cloud-init failed to apply the bake section:\n    %s", strings.Join(res.Errors, "\n    "))
	}
	// cloud-init's exit code 2: it finished, with recoverable errors.
	for _, w := range res.Warnings {
		step.Warn("cloud-init reported a recoverable " + w)
	}
	if !strings.Contains(console, "KILN-BAKE-CLEAN") {
		return errors.New("the guest reported its result but did not finish cleaning itself")
	}
	if errors.Is(waitErr, errNoPowerOff) {
		return waitErr
	}
	if timedOut {
		return fmt.Errorf("the guest did not power off within %s after its bake", timeout)
	}
	if waitErr != nil {
		return fmt.Errorf("QEMU: %w", waitErr)
	}
	return nil
}

// DefaultPowerOffGrace is how long a guest that has cleaned itself may take
// to power off before kiln presses its power button, and again before kiln
// gives up on it.
const DefaultPowerOffGrace = 2 * time.Minute

// errNoPowerOff: the guest cleaned itself but would not power off.
var errNoPowerOff = errors.New("the guest cleaned itself but did not power off")

// waitPowerOff waits for the guest to power off by itself once it has
// reported its cleanup on the console. A guest that does not within the
// grace period is asked through ACPI (a warning: the image is clean, its
// power-off path is not); one that ignores that too is an error.
func (b *Builder) waitPowerOff(ctx context.Context, m boot.Machine, step *progress.Step, cleaned <-chan struct{}) error {
	select {
	case <-m.Done():
		return m.Wait(ctx)
	case <-ctx.Done():
		return m.Wait(ctx)
	case <-cleaned:
	}
	grace := b.opts.PowerOffGrace
	if grace == 0 {
		grace = DefaultPowerOffGrace
	}
	graceCtx, cancel := context.WithTimeout(ctx, grace)
	err := m.Wait(graceCtx)
	cancel()
	select {
	case <-m.Done():
		return err
	default:
	}
	if ctx.Err() != nil {
		return m.Wait(ctx)
	}
	step.Warn(fmt.Sprintf("the guest cleaned itself but did not power off within %s: pressing its power button (ACPI)", grace))
	stopCtx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := m.Stop(stopCtx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w within %s, nor when asked through ACPI within %s (is poweroff.target masked or blocked in the base?); QEMU was killed: %v", errNoPowerOff, grace, grace, err)
	}
	return nil
}

// followConsole turns interesting console lines into progress notes and
// closes cleaned when the guest reports its cleanup done.
func followConsole(ctx context.Context, m boot.Machine, step *progress.Step, cleaned chan<- struct{}) {
	seen := false
	m.FollowConsole(ctx, func(line string) bool {
		if consoleNote.MatchString(line) && !strings.Contains(line, "KILN-BAKE-RESULT") {
			step.Note(truncate(strings.TrimSpace(line), 120))
		}
		if !seen && strings.Contains(line, "KILN-BAKE-CLEAN") {
			seen = true
			close(cleaned)
		}
		return true
	})
}

// convertFlatten writes the overlay with its base as one standalone,
// compressed image.
func (b *Builder) convertFlatten(ctx context.Context, plan *recipes.Plan, overlay string, base *imageBase, work string) (string, error) {
	d := plan.Recipe.Disk
	out := filepath.Join(work, "image."+d.Format)
	compression := d.Compression
	if compression == "none" || d.Format == "raw" {
		compression = ""
	}
	step := progress.Begin(b.sink, "convert", 100, "flattening into a standalone "+d.Format+" ("+d.Compression+")")
	// The chain is stated: the base's own header names nothing qemu-img opens.
	src := qemu.Image{Path: overlay, Format: "qcow2", Backing: &qemu.Image{Path: base.Path, Format: base.Format}}
	if err := b.opts.QemuImg.ConvertImage(ctx, src, out, qemu.ConvertOptions{DstFormat: d.Format, Compression: compression,
		Progress: func(p float64) { step.Advance(int64(p), 100) }}); err != nil {
		return "", err
	}
	if d.Format == "qcow2" {
		if err := b.opts.QemuImg.Check(ctx, out); err != nil {
			return "", fmt.Errorf("the converted image fails qemu-img check: %w", err)
		}
		if info, err := b.opts.QemuImg.Info(ctx, out); err != nil || info.BackingFile != "" {
			return "", fmt.Errorf("the converted image is not standalone (backing file %q): %v", info.BackingFile, err)
		}
	}
	step.End("")
	return out, nil
}

// vmManifest describes a VM-baked image, read from the image itself.
func (b *Builder) vmManifest(plan *recipes.Plan, base *imageBase, key, image string, started time.Time) (*manifest.Manifest, error) {
	root, closer, err := disk.OpenRoot(image, diskimage.WithMaxVirtualSize(max(int64(plan.Recipe.Disk.Size), base.VirtualSize)))
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	m, err := b.describe(plan, root, false) // not every base is Debian
	if err != nil {
		return nil, err
	}
	sum, err := digest.File(image)
	if err != nil {
		return nil, err
	}
	d := plan.Recipe.Disk
	m.Recipe.ImageKey = key
	m.Base = manifest.Base{Ref: base.Ref, Kind: manifest.BaseImage, Suite: base.Suite, Digest: "sha256:" + base.SHA256}
	m.Disk = manifest.Disk{Format: d.Format, Compression: d.Compression, Firmware: d.Firmware, VirtualSize: int64(d.Size), FileSize: sum.Size}
	m.Artifacts = []manifest.Artifact{{Name: filepath.Base(image), Size: sum.Size, SHA256: sum.String()}}
	m.Build = manifest.Build{Mode: "vm", Duration: manifest.Duration(time.Since(started).Round(100 * time.Millisecond)), SourceDateEpoch: b.epoch.Unix(),
		SourceDateEpochFrom: b.givenEpochFrom()}
	if info, err := b.opts.QemuImg.Info(context.Background(), image); err == nil {
		m.Disk.VirtualSize = info.VirtualSize
	}
	return m, nil
}
