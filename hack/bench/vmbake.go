package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/iso"
	"github.com/kiln-project/kiln/recipes"
)

const vmBenchBake = `bake:
  packages: [tree]
  files:
    - {path: /etc/motd, content: "baked for the benchmark\n"}
  commands:
    - [sh, -c, "tree --version > /etc/tree-version"]
disk: {size: 4GiB, firmware: [bios]}
`

// benchVMBake compares, on one recipe applied to a cloud image (a kiln-made
// one, standing in for a vendor image):
//
//	kiln's VM bake                      (boot with the bake seed, cloud-init, in-guest sysprep,
//	                                     power-off, flatten + compress, lint, manifest)
//	a Packer-QEMU-style flow, by hand   (boot with a seed, wait for cloud-init to power
//	                                     off, qemu-img convert -c)
//	kiln's offline bake of the same bake section on the package base
//
// Targets: kiln's VM bake no slower than the hand-made flow; the offline bake
// at least 3x faster than either.
func benchVMBake() ([]string, error) {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "kiln-bench-vmbake")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	cache := benchCache()
	write := func(name, body string) string {
		p := filepath.Join(work, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	b := builder.New(builder.Options{CacheDir: cache})
	// The cloud image: a plain kiln image of the package base.
	basePlan, err := recipes.LoadPlan(write("plain.yaml", "apiVersion: kiln/v1\nname: bench-plain\ndisk: {size: 4GiB}\n"))
	if err != nil {
		return nil, err
	}
	if _, err := b.Bake(ctx, basePlan, filepath.Join(work, "cloud.qcow2")); err != nil {
		return nil, err
	}
	vmPlan, err := recipes.LoadPlan(write("vm.yaml", "apiVersion: kiln/v1\nname: bench-vm\nbase: ./cloud.qcow2\n"+vmBenchBake))
	if err != nil {
		return nil, err
	}
	offPlan, err := recipes.LoadPlan(write("offline.yaml", "apiVersion: kiln/v1\nname: bench-offline\n"+vmBenchBake))
	if err != nil {
		return nil, err
	}

	fresh := builder.New(builder.Options{CacheDir: cache, NoCache: true})
	t0 := time.Now()
	if _, err := fresh.Bake(ctx, vmPlan, filepath.Join(work, "kiln-vm.qcow2")); err != nil {
		return nil, fmt.Errorf("kiln VM bake: %w", err)
	}
	kilnVM := time.Since(t0)

	t0 = time.Now()
	if err := packerStyle(ctx, vmPlan, filepath.Join(work, "cloud.qcow2"), work); err != nil {
		return nil, fmt.Errorf("hand-made flow: %w", err)
	}
	byHand := time.Since(t0)

	t0 = time.Now()
	if _, err := fresh.Bake(ctx, offPlan, filepath.Join(work, "offline.qcow2")); err != nil {
		return nil, fmt.Errorf("offline bake: %w", err)
	}
	offline := time.Since(t0)

	ratio := kilnVM.Seconds() / byHand.Seconds()
	speedup := min(kilnVM, byHand).Seconds() / offline.Seconds()
	return []string{
		fmt.Sprintf("kiln VM bake (cloud image + recipe)    %s", secs(kilnVM)),
		fmt.Sprintf("Packer-QEMU-style flow by hand         %s", secs(byHand)),
		fmt.Sprintf("ratio  %.2fx the hand-made flow's time (target <= 1.0x): %s", ratio, verdict(ratio <= 1.0)),
		fmt.Sprintf("kiln offline bake, same bake section   %s: %.1fx faster than the faster VM flow (target >= 3x): %s", secs(offline), speedup, verdict(speedup >= 3)),
	}, nil
}

// packerStyle is what a Packer QEMU build does, by hand: an overlay on the
// cloud image, a seed with the bake as cloud-config and a power-off at the
// end, boot, wait for the power-off, qemu-img convert -c.
func packerStyle(ctx context.Context, plan *recipes.Plan, cloud, work string) error {
	img := qemu.Img{}
	overlay := filepath.Join(work, "packer-overlay.qcow2")
	if err := img.CreateOverlay(ctx, cloud, "qcow2", overlay, int64(plan.Recipe.Disk.Size)); err != nil {
		return err
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	seed, err := plan.Seed(recipes.Instance{Name: "packer", ID: "packer-" + hex.EncodeToString(nonce)}, recipes.StageBake, recipes.PlaceholderResolver())
	if err != nil {
		return err
	}
	userData := append(seed.UserData, []byte("power_state: {mode: poweroff, delay: now}\n")...)
	// The meta-data a Packer template writes: an instance-id and a host
	// name. kiln's own seeds also ask for cloud-init's local mode, one of
	// kiln's speed-ups, which a flow by hand would not have.
	metaData := []byte(fmt.Sprintf("instance-id: %s\nlocal-hostname: packer\n", seed.InstanceID))
	seedPath := filepath.Join(work, "packer-seed.iso")
	if err := iso.WriteFile(seedPath, 0o644, iso.Options{}, []iso.Entry{{Name: "meta-data", Data: metaData}, {Name: "user-data", Data: userData}}); err != nil {
		return err
	}
	accel, _ := qemu.DetectAccel()
	vmDir := filepath.Join(work, "packer-vm")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return err
	}
	m, err := qemu.Start(ctx, qemu.Config{Accel: accel, MemoryMiB: 1024,
		Drives: []qemu.Drive{{Path: overlay, Format: "qcow2", Backing: &qemu.Image{Path: cloud, Format: "qcow2"}}, {Path: seedPath, Format: "raw", ReadOnly: true}}, NICs: []qemu.NIC{{}}}, vmDir)
	if err != nil {
		return err
	}
	defer m.Kill()
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if err := m.Wait(waitCtx); err != nil {
		return fmt.Errorf("the VM did not power off: %v\n%s", err, m.ConsoleTail(20))
	}
	return img.ConvertImage(ctx, qemu.Image{Path: overlay, Format: "qcow2", Backing: &qemu.Image{Path: cloud, Format: "qcow2"}}, filepath.Join(work, "packer.qcow2"), qemu.ConvertOptions{DstFormat: "qcow2", Compression: "zstd"})
}
