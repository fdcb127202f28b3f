package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln/boot"
	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/imagetest"
	"github.com/kiln-project/kiln/recipes"
)

// benchBoot measures boot-to-ready — seed applied (cloud-init done) and the
// role's checks green — of each role's example image, against the same
// image baked without kiln's boot-time tuning (no pinned datasource list,
// cloud-init's default modules, default host key types). Each pair boots
// back to back under the same firmware (BIOS) and accelerator.
// Target: kiln's image ready at least 25% sooner. Each image boots
// bootSamples times, interleaved with its pair, and its best boot counts.
func benchBoot() ([]string, error) {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "kiln-bench-boot")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	cache := benchCache()
	secrets := recipes.MapResolver(map[string]string{"env:APP_DB_PASSWORD": "bench-password"})
	lan := []boot.NIC{{Net: "10.10.0.0/24"}}
	roles := []struct {
		example string
		nics    []boot.NIC
	}{
		{"app-host", nil}, {"cron-runner", nil}, {"job-runner", nil}, {"database", nil}, {"proxy", nil}, {"network", lan},
	}
	var lines []string
	worst := 1.0
	only := benchRoles()
	for _, r := range roles {
		if only != nil && !only[r.example] {
			continue
		}
		plan, err := recipes.LoadPlan(filepath.Join("examples", r.example+".yaml"))
		if err != nil {
			return nil, err
		}
		// Bake both variants first, then boot them interleaved, samples
		// times each: the best boot of each variant is compared, so one
		// slow moment of this noisy machine does not decide the ratio.
		var imgs [2]string
		var bakers [2]*builder.Builder
		for i, tuned := range []bool{true, false} {
			bakers[i] = builder.New(builder.Options{CacheDir: cache, NoBootTuning: !tuned})
			imgs[i] = filepath.Join(work, fmt.Sprintf("%s-%v.qcow2", r.example, tuned))
			if _, err := bakers[i].Bake(ctx, plan, imgs[i]); err != nil {
				return nil, fmt.Errorf("%s: bake: %w", r.example, err)
			}
		}
		ready := [2]float64{math.Inf(1), math.Inf(1)}
		var samples [2][]string
		for range bootSamples() {
			for i := range imgs {
				reps, err := imagetest.Run(ctx, imagetest.ForPlan(imgs[i], plan), imagetest.Options{Firmware: []string{"bios"}, NICs: r.nics, Resolver: secrets, BootTimeout: 10 * time.Minute})
				if err != nil {
					return nil, fmt.Errorf("%s: test: %w", r.example, err)
				}
				rep := reps[0]
				var secs float64
				switch {
				case rep.Job != nil: // ready = the job ran and the VM stopped
					secs = rep.Boot().Seconds()
				case rep.OK:
					secs = rep.Ready().Seconds()
				default:
					return nil, fmt.Errorf("%s (tuned=%v) did not pass kiln test: %s", r.example, i == 0, rep.Error)
				}
				// A line per boot on stderr: the whole benchmark runs for
				// over an hour, and its table comes at the end.
				fmt.Fprintf(os.Stderr, "boot %s (%s): ready in %.1fs\n", r.example, []string{"kiln", "untuned"}[i], secs)
				ready[i] = min(ready[i], secs)
				samples[i] = append(samples[i], fmt.Sprintf("%.1f", secs))
			}
		}
		gain := 1 - ready[0]/ready[1]
		worst = min(worst, gain)
		lines = append(lines, fmt.Sprintf("%-12s kiln %5.1fs, untuned %5.1fs: ready %3.0f%% sooner (target >= 25%%): %s  [boots: kiln %s; untuned %s]",
			r.example, ready[0], ready[1], 100*gain, verdict(gain >= 0.25), strings.Join(samples[0], " "), strings.Join(samples[1], " ")))
	}
	lines = append(lines, fmt.Sprintf("worst role: %.0f%% sooner (best of %d boots per image)", 100*worst, bootSamples()))
	return lines, nil
}

// bootSamples is how many times each image boots: $KILN_BENCH_BOOTS, or 3.
// These machines slow down for minutes at a time (one image's boots took
// from 116 s to 243 s within an hour); with three boots each, a slow spell
// seldom takes every boot of one variant.
func bootSamples() int {
	if n, err := strconv.Atoi(os.Getenv("KILN_BENCH_BOOTS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// benchRoles limits the boot benchmark to the examples named in
// $KILN_BENCH_ROLES (comma-separated); nil means all.
func benchRoles() map[string]bool {
	v := os.Getenv("KILN_BENCH_ROLES")
	if v == "" {
		return nil
	}
	m := map[string]bool{}
	for _, r := range strings.Split(v, ",") {
		m[strings.TrimSpace(r)] = true
	}
	return m
}
