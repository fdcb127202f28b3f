package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/kiln-project/kiln/iso"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/seed"
)

// benchSeed: seed ISO generation for one instance, kiln in-process versus
// cloud-localds on the same three files. Target: kiln at least 20x faster.
func benchSeed() ([]string, error) {
	localds, err := exec.LookPath("cloud-localds")
	if err != nil {
		return nil, fmt.Errorf("cloud-localds not found (make deps)")
	}
	dir, err := os.MkdirTemp("", "kiln-bench-seed")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	plan, err := recipes.LoadPlan("examples/network.yaml") // all three documents
	if err != nil {
		return nil, err
	}
	sd, err := plan.Seed(recipes.Instance{Name: "bench-1"}, recipes.StageBoot, recipes.PlaceholderResolver())
	if err != nil {
		return nil, err
	}
	files, err := seed.WriteDir(filepath.Join(dir, "in"), sd)
	if err != nil {
		return nil, err
	}
	entries := seed.Files(sd)
	out := filepath.Join(dir, "kiln.iso")
	// Like cloud-localds: generate the image into a file, no fsync.
	kiln, err := timeN(500, func() error {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if err := iso.Write(f, iso.Options{}, entries); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return nil, err
	}
	// What kiln seed does: the same, made durable and atomic (fsync + rename).
	durable, err := timeN(100, func() error { return iso.WriteFile(out, 0o644, iso.Options{}, entries) })
	if err != nil {
		return nil, err
	}
	ref := filepath.Join(dir, "ref.iso")
	localdsArgs := []string{"-N", files[1], ref, files[2], files[0]} // network-config, out, user-data, meta-data
	reference, err := timeN(20, func() error {
		if out, err := exec.Command(localds, localdsArgs...).CombinedOutput(); err != nil {
			return fmt.Errorf("cloud-localds: %v: %s", err, out)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ratio := float64(reference) / float64(kiln)
	return []string{
		fmt.Sprintf("kiln in-process   %s per seed", ms(kiln)),
		fmt.Sprintf("cloud-localds     %s per seed", ms(reference)),
		fmt.Sprintf("ratio             %.0fx faster (target >= 20x): %s", ratio, verdict(ratio >= 20)),
		fmt.Sprintf("for information: kiln durable atomic write (fsync+rename) %s (whole processes: seed-cli)", ms(durable)),
	}, nil
}

// Whole-process targets: kiln seed run once per instance (a shell loop, a
// provisioning script) at least twice as fast as cloud-localds, and the
// commands that touch no recipe under 20 ms.
const (
	seedCLITarget = 2.0
	startupTarget = 20 * time.Millisecond
)

// benchSeedCLI times kiln as a shell loop runs it: one `kiln seed RECIPE
// -o x.iso --instance bench-i` process per seed, recipe loading, rendering,
// schema validation and the durable write included, paired with one
// `cloud-localds` process on the documents kiln rendered for that recipe.
// The pair's order alternates from run to run, so neither tool always goes
// first; medians are compared. It also times `kiln version` and `kiln roles`
// as whole processes: the start-up cost every command pays.
func benchSeedCLI() ([]string, error) {
	kiln, err := filepath.Abs("_output/bin/kiln")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(kiln); err != nil {
		return nil, fmt.Errorf("%s missing (make kiln)", kiln)
	}
	localds, err := exec.LookPath("cloud-localds")
	if err != nil {
		return nil, fmt.Errorf("cloud-localds not found (make deps)")
	}
	recipe, err := filepath.Abs("examples/app-host.yaml")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kiln-bench-seed-cli")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	docs := filepath.Join(dir, "docs")
	if err := runIn(dir, kiln, "render", recipe, "--instance", "bench-0", "-o", docs); err != nil {
		return nil, err
	}
	refArgs := []string{filepath.Join(dir, "ref.iso"), filepath.Join(docs, "user-data"), filepath.Join(docs, "meta-data")}
	if _, err := os.Stat(filepath.Join(docs, "network-config")); err == nil {
		refArgs = append([]string{"-N", filepath.Join(docs, "network-config")}, refArgs...)
	}

	n := cliSamples()
	var kilnT, refT []time.Duration
	for i := 0; i < n; i++ {
		k := func() error {
			d, err := timeRun(dir, kiln, "seed", recipe, "-o", filepath.Join(dir, "kiln.iso"), "--instance", fmt.Sprintf("bench-%d", i))
			kilnT = append(kilnT, d)
			return err
		}
		r := func() error {
			d, err := timeRun(dir, localds, refArgs...)
			refT = append(refT, d)
			return err
		}
		first, second := k, r
		if i%2 == 1 {
			first, second = r, k
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
	}
	kSeed, rSeed := median(kilnT), median(refT)
	ratio := float64(rSeed) / float64(kSeed)
	lines := []string{
		fmt.Sprintf("kiln seed (whole process)    %s per seed, median of %d", ms(kSeed), n),
		fmt.Sprintf("cloud-localds (same docs)    %s per seed, median of %d", ms(rSeed), n),
		fmt.Sprintf("speed-up (cloud-localds/kiln) %.2fx (target >= %.0fx): %s", ratio, seedCLITarget, verdict(ratio >= seedCLITarget)),
	}

	// Start-up: commands that read no recipe, interleaved likewise.
	startup := [][]string{{"version"}, {"roles"}}
	times := make([][]time.Duration, len(startup))
	for i := 0; i < n; i++ {
		for j := range startup {
			j = (j + i) % len(startup)
			d, err := timeRun(dir, kiln, startup[j]...)
			if err != nil {
				return nil, err
			}
			times[j] = append(times[j], d)
		}
	}
	for j, args := range startup {
		m := median(times[j])
		lines = append(lines, fmt.Sprintf("kiln %-23s %s, median of %d (target < %s): %s",
			args[0], ms(m), n, startupTarget, verdict(m < startupTarget)))
	}
	return lines, nil
}

// timeRun runs a command in dir, output discarded, and returns its wall time.
// timeRun times one run of bin as a whole process, from fork to exit. Its
// output goes to a file, not a pipe: no reader goroutines in the way of
// the measurement.
func timeRun(dir, bin string, args ...string) (time.Duration, error) {
	out, err := os.CreateTemp(dir, "out-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		b, _ := os.ReadFile(out.Name())
		return took, fmt.Errorf("%s %v: %v: %s", filepath.Base(bin), args, err, tail(b))
	}
	return took, nil
}

func runIn(dir, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v: %s", filepath.Base(bin), args, err, tail(out))
	}
	return nil
}

// median of ds (not empty); ds is left as it was.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cliSamples is how many runs each whole-process figure takes the median
// of: $KILN_BENCH_RUNS, or 20.
func cliSamples() int {
	if n, err := strconv.Atoi(os.Getenv("KILN_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return 20
}
