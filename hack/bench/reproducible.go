package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// benchReproducible measures what --check-reproducible costs: kiln bake
// --check-reproducible of the proxy example with its image cached, less the
// same bake without the check (a copy from the cache), against a warm bake
// from scratch (--no-cache, the base cached), best of 2 each. Target (issue
// 16): at most one extra warm bake, a ratio of at most 1.0 (comparing two
// identical images is comparing digests already computed).
func benchReproducible() ([]string, error) {
	kiln, err := filepath.Abs("_output/bin/kiln")
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kiln-bench-repro")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	out := filepath.Join(work, "proxy.qcow2")
	if err := bakeExample(kiln, "proxy", out); err != nil { // base and image cached
		return nil, err
	}
	best := func(args ...string) (time.Duration, error) {
		var d time.Duration
		for i := range 2 {
			start := time.Now()
			args := append([]string{"bake", "examples/proxy.yaml", "-o", out, "--cache-dir", benchCache()}, args...)
			if b, err := exec.Command(kiln, args...).CombinedOutput(); err != nil {
				return 0, fmt.Errorf("kiln %v: %v\n%s", args, err, b)
			}
			if took := time.Since(start); i == 0 || took < d {
				d = took
			}
		}
		return d, nil
	}
	warm, err := best("--no-cache")
	if err != nil {
		return nil, err
	}
	cached, err := best()
	if err != nil {
		return nil, err
	}
	check, err := best("--check-reproducible")
	if err != nil {
		return nil, err
	}
	extra := check - cached
	ratio := extra.Seconds() / warm.Seconds()
	return []string{
		fmt.Sprintf("proxy example: warm bake from scratch %s; with the image cached, bake %s, bake --check-reproducible %s",
			warm.Round(100*time.Millisecond), cached.Round(100*time.Millisecond), check.Round(100*time.Millisecond)),
		fmt.Sprintf("the check costs %s: %.2fx a warm bake   (target <= 1.0: %s)", extra.Round(100*time.Millisecond), ratio, okIf(ratio <= 1.0)),
	}, nil
}
