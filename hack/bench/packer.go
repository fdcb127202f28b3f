package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// packerVersion is the Packer core the plugin's tests build into the test
// cache (cmd/packer-plugin-kiln/internal/testpacker).
const packerVersion = "v1.12.0"

// benchPacker compares the same work done two ways, on one kiln cache
// warmed first (base and packages), each baking the image again (no cache
// for the image), twice, the faster run of each counted:
//
//	packer build examples/packer/web.pkr.hcl   (the kiln builder, kiln-push into an OCI layout, the kiln-seed data source)
//	kiln bake examples/app-host.yaml, then kiln push into an OCI layout
//
// Target: Packer's overhead at most 10% of kiln's time, or 10 s, whichever
// is larger.
func benchPacker() ([]string, error) {
	packer := os.Getenv("PACKER")
	if packer == "" {
		packer = filepath.Join(testutil.CacheRoot(), "packer-"+packerVersion, "packer")
	}
	if _, err := os.Stat(packer); err != nil {
		return nil, fmt.Errorf("no Packer core at %s: make plugin-test builds one there, or set PACKER", packer)
	}
	kiln, err := filepath.Abs("_output/bin/kiln")
	if err != nil {
		return nil, err
	}
	plugin, err := filepath.Abs("_output/bin/packer-plugin-kiln")
	if err != nil {
		return nil, err
	}
	template, err := filepath.Abs("examples/packer/web.pkr.hcl")
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kiln-bench-packer")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	cache := filepath.Join(work, "cache")
	kilnRun := func(noCache bool) (time.Duration, error) {
		start := time.Now()
		bake := []string{"bake", "examples/app-host.yaml", "-o", filepath.Join(work, "app-host.qcow2"), "--cache-dir", cache}
		if noCache {
			bake = append(bake, "--no-cache")
		}
		for _, args := range [][]string{bake,
			{"push", filepath.Join(work, "app-host.qcow2"), "oci:" + filepath.Join(work, "store") + ":app-host", "--annotation", "org.opencontainers.image.title=app-host", "--cache-dir", cache},
		} {
			if out, err := exec.Command(kiln, args...).CombinedOutput(); err != nil {
				return 0, fmt.Errorf("kiln %s: %v\n%s", args[0], err, out)
			}
		}
		return time.Since(start), nil
	}
	// Warm the cache: the base and packages are downloaded once, here.
	if _, err := kilnRun(false); err != nil {
		return nil, err
	}

	home := filepath.Join(work, "packer-home")
	env := append(os.Environ(), "HOME="+home, "PACKER_CONFIG_DIR="+filepath.Join(home, ".config", "packer"),
		"PACKER_PLUGIN_PATH="+filepath.Join(home, ".config", "packer", "plugins"), "PACKER_CACHE_DIR="+filepath.Join(home, "cache"),
		"CHECKPOINT_DISABLE=1", "PACKER_NO_COLOR=1")
	install := exec.Command(packer, "plugins", "install", "--path", plugin, "github.com/kiln-project/kiln")
	install.Env = env
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("packer plugins install: %v\n%s", err, out)
	}
	packerRun := func() (time.Duration, error) {
		dir, err := os.MkdirTemp(work, "packer")
		if err != nil {
			return 0, err
		}
		start := time.Now()
		build := exec.Command(packer, "build", "-color=false", "-var", "cache_dir="+cache, "-var", "no_cache=true", template)
		build.Dir, build.Env = dir, env
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("packer build: %v\n%s", err, out)
		}
		return time.Since(start), nil
	}

	kilnTook, packerTook := time.Duration(1<<62), time.Duration(1<<62)
	for i := 0; i < 2; i++ {
		k, err := kilnRun(true)
		if err != nil {
			return nil, err
		}
		p, err := packerRun()
		if err != nil {
			return nil, err
		}
		kilnTook, packerTook = min(kilnTook, k), min(packerTook, p)
	}
	overhead := packerTook - kilnTook
	limit := max(kilnTook/10, 10*time.Second)
	return []string{
		fmt.Sprintf("bake (image not cached) and push app-host, best of 2: packer build %s, kiln bake + kiln push %s", packerTook.Round(100*time.Millisecond), kilnTook.Round(100*time.Millisecond)),
		fmt.Sprintf("Packer's overhead %s (%.1f%%)   (target <= max(10%%, 10 s) = %s: %s)", overhead.Round(100*time.Millisecond), 100*overhead.Seconds()/kilnTook.Seconds(), limit.Round(100*time.Millisecond), okIf(overhead <= limit)),
	}, nil
}
