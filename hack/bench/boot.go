package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/recipes"
)

// benchBoot measures boot-to-ready — seed applied (cloud-init done) and the
// role's checks green — of each role's example image, against the same
// image baked without kiln's boot-time tuning (no pinned datasource list,
// cloud-init's default modules, default host key types). Each pair boots
// back to back under the same firmware (BIOS) and accelerator.
// Target: kiln's image ready at least 25% sooner.
func benchBoot() ([]string, error) {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "kiln-bench-boot")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	cache := benchCache()
	secrets := recipes.MapResolver(map[string]string{"env:APP_DB_PASSWORD": "bench-password"})
	lan := []builder.TestNIC{{Net: "10.10.0.0/24"}}
	roles := []struct {
		example string
		nics    []builder.TestNIC
	}{
		{"app-host", nil}, {"cron-runner", nil}, {"job-runner", nil}, {"database", nil}, {"proxy", nil}, {"network", lan},
	}
	var lines []string
	worst := 1.0
	for _, r := range roles {
		plan, err := recipes.LoadPlan(filepath.Join("examples", r.example+".yaml"))
		if err != nil {
			return nil, err
		}
		var ready [2]float64
		for i, tuned := range []bool{true, false} {
			b := builder.New(builder.Options{CacheDir: cache, NoBootTuning: !tuned})
			img := filepath.Join(work, fmt.Sprintf("%s-%v.qcow2", r.example, tuned))
			if _, err := b.Bake(ctx, plan, img); err != nil {
				return nil, fmt.Errorf("%s: bake: %w", r.example, err)
			}
			reps, err := b.Test(ctx, img, plan, builder.TestOptions{Firmware: []string{"bios"}, NICs: r.nics, Resolver: secrets, BootTimeout: 10 * time.Minute})
			if err != nil {
				return nil, fmt.Errorf("%s: test: %w", r.example, err)
			}
			rep := reps[0]
			switch {
			case rep.Job != nil: // ready = the job ran and the VM stopped
				ready[i] = rep.BootSeconds
			case rep.OK:
				ready[i] = rep.ReadySeconds
			default:
				return nil, fmt.Errorf("%s (tuned=%v) did not pass kiln test: %s", r.example, tuned, rep.Error)
			}
		}
		gain := 1 - ready[0]/ready[1]
		worst = min(worst, gain)
		lines = append(lines, fmt.Sprintf("%-12s kiln %5.1fs, untuned %5.1fs: ready %3.0f%% sooner (target >= 25%%): %s",
			r.example, ready[0], ready[1], 100*gain, verdict(gain >= 0.25)))
	}
	lines = append(lines, fmt.Sprintf("worst role: %.0f%% sooner", 100*worst))
	return lines, nil
}
