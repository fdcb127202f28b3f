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
// from scratch (--no-cache, the base cached), 5 runs each, interleaved, medians. Target (issue
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
	bake := func(args ...string) (time.Duration, error) {
		start := time.Now()
		args = append([]string{"bake", "examples/proxy.yaml", "-o", out, "--cache-dir", benchCache()}, args...)
		if b, err := exec.Command(kiln, args...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("kiln %v: %v\n%s", args, err, b)
		}
		return time.Since(start), nil
	}
	// Interleaved, so a slow minute of this noisy machine hits both.
	var warms, cacheds, checks []time.Duration
	for range 5 {
		for _, run := range []struct {
			into *[]time.Duration
			args []string
		}{{&warms, []string{"--no-cache"}}, {&cacheds, nil}, {&checks, []string{"--check-reproducible"}}} {
			d, err := bake(run.args...)
			if err != nil {
				return nil, err
			}
			*run.into = append(*run.into, d)
		}
	}
	warm, cached, check := median(warms), median(cacheds), median(checks)
	extra := check - cached
	ratio := extra.Seconds() / warm.Seconds()
	return []string{
		fmt.Sprintf("proxy example: warm bake from scratch %s; with the image cached, bake %s, bake --check-reproducible %s",
			warm.Round(100*time.Millisecond), cached.Round(100*time.Millisecond), check.Round(100*time.Millisecond)),
		fmt.Sprintf("the check costs %s: %.2fx a warm bake   (target <= 1.0: %s)", extra.Round(100*time.Millisecond), ratio, okIf(ratio <= 1.0)),
	}, nil
}
