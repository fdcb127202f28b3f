package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

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
	// For information: the whole CLI, recipe loading and schema checks included.
	cli, err := timeN(10, func() error {
		return exec.Command("_output/bin/kiln", "seed", "examples/app-host.yaml", "-o", filepath.Join(dir, "cli.iso")).Run()
	})
	if err != nil {
		return nil, fmt.Errorf("kiln seed CLI: %v (run make kiln)", err)
	}
	ratio := float64(reference) / float64(kiln)
	return []string{
		fmt.Sprintf("kiln in-process   %s per seed", ms(kiln)),
		fmt.Sprintf("cloud-localds     %s per seed", ms(reference)),
		fmt.Sprintf("ratio             %.0fx faster (target >= 20x): %s", ratio, verdict(ratio >= 20)),
		fmt.Sprintf("for information: kiln durable atomic write (fsync+rename) %s; kiln seed CLI, recipe to seed, %s", ms(durable), ms(cli)),
	}, nil
}
