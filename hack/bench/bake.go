package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/recipes"
)

// benchBake measures the bake pipeline of issue 3 against plain mmdebstrap
// and qemu-img, on a role image (examples/proxy.yaml: haproxy on top of
// the base):
//
//	cold bake           <= 1.5x plain mmdebstrap of the same package set
//	warm re-bake        <  2 s (unchanged recipe, the kiln CLI)
//	bake-section change <= 40% of the cold bake
//	image size          within 10% of the same tree through mkfs.ext4 -d
//	                    and qemu-img convert -c -o compression_type=zstd
func benchBake() ([]string, error) {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "kiln-bench-bake")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	recipe := "examples/proxy.yaml"
	plan, err := recipes.LoadPlan(recipe)
	if err != nil {
		return nil, err
	}
	cache := filepath.Join(work, "cache")
	var lines []string
	say := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }

	// kiln first, with an empty cache: if the network path warms up, the
	// reference run after it gains, not kiln.
	b := builder.New(builder.Options{CacheDir: cache, KeepWorkDir: true})
	t0 := time.Now()
	res, err := b.Bake(ctx, plan, filepath.Join(work, "proxy.qcow2"))
	if err != nil {
		return nil, fmt.Errorf("cold bake: %w", err)
	}
	cold := time.Since(t0)

	mirrors, err := builder.HostMirrors("/etc/apt")
	if err != nil {
		return nil, err
	}
	// The release kiln built: examples/proxy.yaml names the default one.
	suite := res.Info.Base.Suite
	if suite == "" {
		suite = recipes.DefaultRelease
	}
	pkgs := append(builder.BasePackages(), plan.Packages...)
	args := []string{"--variant=apt", "--mode=root", "--include=" + strings.Join(pkgs, ","),
		"--aptopt=APT::Install-Recommends \"false\"", suite, filepath.Join(work, "reference.tar")}
	args = append(args, mirrors.SourceLines(suite)...)
	t0 = time.Now()
	if out, err := exec.CommandContext(ctx, "mmdebstrap", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("reference mmdebstrap: %v: %s", err, tail(out))
	}
	ref := time.Since(t0)
	ratio := cold.Seconds() / ref.Seconds()
	say("cold bake %s     %s (base, bake, disk, qcow2, lint, manifest)", filepath.Base(recipe), secs(cold))
	say("plain mmdebstrap, same packages  %s", secs(ref))
	say("ratio  %.2fx mmdebstrap's time (target <= 1.5x): %s", ratio, verdict(ratio <= 1.5))

	// Warm: the unchanged recipe through the CLI, process start included.
	kiln := "_output/bin/kiln"
	t0 = time.Now()
	if out, err := exec.Command(kiln, "bake", recipe, "-o", filepath.Join(work, "warm.qcow2"), "--cache-dir", cache).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("warm bake: %v: %s", err, tail(out))
	}
	warm := time.Since(t0)
	say("warm re-bake, unchanged recipe   %s (target < 2s): %s", secs(warm), verdict(warm < 2*time.Second))

	// A bake-section change: the base is reused, the rest rebuilt.
	src, _ := os.ReadFile(recipe)
	changed := filepath.Join(work, "proxy-changed.yaml")
	os.WriteFile(changed, append(src, []byte("bake:\n  files:\n    - {path: /etc/motd, content: \"changed\\n\"}\n")...), 0o644)
	t0 = time.Now()
	if out, err := exec.Command(kiln, "bake", changed, "-o", filepath.Join(work, "changed.qcow2"), "--cache-dir", cache).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("changed bake: %v: %s", err, tail(out))
	}
	rebake := time.Since(t0)
	pct := 100 * rebake.Seconds() / cold.Seconds()
	say("re-bake after a bake change      %s = %.0f%% of cold (target <= 40%%): %s", secs(rebake), pct, verdict(pct <= 40))

	// Size: the kept tree through plain mkfs.ext4 -d and qemu-img.
	kept := b.KeptDir(res.Key)
	refRaw, refQcow := filepath.Join(work, "ref.raw"), filepath.Join(work, "ref.qcow2")
	size := int64(plan.Recipe.Disk.Size)
	f, _ := os.Create(refRaw)
	f.Truncate(size)
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", filepath.Join(kept, "root"), refRaw).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("reference mkfs: %v: %s", err, tail(out))
	}
	if out, err := exec.Command("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", refRaw, refQcow).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("reference convert: %v: %s", err, tail(out))
	}
	ks, rs := fileSize(res.Image), fileSize(refQcow)
	sizeRatio := float64(ks) / float64(rs)
	du, _ := exec.Command("du", "-sb", filepath.Join(kept, "root")).Output()
	say("image size  kiln %s, reference %s: %.3fx (target <= 1.10x): %s; tree %s bytes uncompressed",
		mib(ks), mib(rs), sizeRatio, verdict(sizeRatio <= 1.10), strings.Fields(string(du) + " ?")[0])
	return lines, nil
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func secs(d time.Duration) string { return fmt.Sprintf("%6.1fs", d.Seconds()) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return s
}
