package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/imagetest"
	"github.com/kiln-project/kiln/recipes"
	"github.com/spf13/cobra"
)

func newTestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test RECIPE|IMAGE",
		Short: "Boot an image with an instance seed and run its checks",
		Long: `Boots the image under QEMU — once per firmware — with an instance seed, logs in
over SSH with an ephemeral key (an extra user, kiln-test, exists only in this
test seed), waits for cloud-init and requires it to finish without errors,
checks the hostname and users the seed asked for, runs the checks of the
recipe and its roles (HTTP and TCP through ports forwarded to 127.0.0.1,
commands in the guest), and powers the guest off. The image itself is never
written: the guest writes to a throwaway overlay.

Given a recipe, kiln bakes it first (a copy of the cached image when nothing
changed) and tests it with that recipe's instance seed.

Given an image, the instance seed comes from the recipe it was baked from,
which its manifest names (the recipe is used when its digest still matches,
or when only its boot section changed), or from --recipe. Without a recipe
the seed has no boot section: checks of roles that configure users, files or
secrets at first boot cannot be meaningful, and are skipped with a note.

An image kiln did not make is checked before anything opens it: qcow2 or raw
only, no backing file, a sane size. A registry or layout reference
(oci://registry.example.com/team/web:1.2, oci:./store:web) is pulled first,
verified (see kiln pull); its recipe is then taken from --recipe.

KVM is used only where it really works; otherwise TCG (--accel overrides).
A failure shows the last lines of the serial console.`,
		Example: `  kiln test examples/app-host.yaml
  kiln test app-host.qcow2 --firmware uefi
  kiln test db.qcow2 --recipe db.yaml
  kiln test web.yaml --output json`,
		Args: exactArgs(1),
		RunE: testAction,
	}
	addBuilderFlags(cmd)
	addRegistryFlags(cmd)
	cmd.Flags().String("recipe", "", "recipe to make the instance seed and checks from (default: the one the image's manifest names)")
	cmd.Flags().StringSlice("firmware", nil, "firmware to boot under: bios, uefi (default: the image's list)")
	cmd.Flags().String("accel", "", "accelerator: kvm or tcg (default: detect)")
	cmd.Flags().Int("memory", 512, "guest memory in MiB")
	cmd.Flags().Duration("boot-timeout", 0, "how long to wait for the guest (default 5m)")
	cmd.Flags().String("keep", "", "keep the VM's files (overlay, seed, console log) in this directory")
	addMaxSizeFlag(cmd)
	cmd.Flags().StringSlice("data-disk", nil, "attach a blank data disk of this size (repeatable: /dev/vdb, /dev/vdc, ...; default: the disks the recipe's roles expect)")
	return cmd
}

func testAction(cmd *cobra.Command, args []string) error {
	for _, fw := range cfg.GetStringSlice("firmware") {
		if fw != "bios" && fw != "uefi" {
			return usageError{fmt.Errorf("--firmware %q: want bios or uefi", fw)}
		}
	}
	if a := cfg.GetString("accel"); a != "" && a != "kvm" && a != "tcg" {
		return usageError{fmt.Errorf("--accel %q: want kvm or tcg", a)}
	}
	var disks []int64
	for _, d := range cfg.GetStringSlice("data-disk") {
		size, err := recipes.ParseSize(d)
		if err != nil || size <= 0 {
			return usageError{fmt.Errorf("--data-disk %q: want a size like 1GiB", d)}
		}
		disks = append(disks, int64(size))
	}
	when, err := buildEpoch()
	if err != nil {
		return err
	}
	maxSize, err := maxSizeFlag()
	if err != nil {
		return err
	}
	target, cleanup, err := testTarget(cmd, args[0])
	if err != nil {
		return err
	}
	defer cleanup()
	reports, err := imagetest.Run(cmd.Context(), target, imagetest.Options{
		Firmware: cfg.GetStringSlice("firmware"), Accel: cfg.GetString("accel"), MemoryMiB: cfg.GetInt("memory"),
		BootTimeout: cfg.GetDuration("boot-timeout"), WorkDir: cfg.GetString("keep"), DataDisks: disks,
		Progress: newRenderer(cmd.ErrOrStderr()), Epoch: when, MaxSize: maxSize,
	})
	var ve *imagetest.VetError
	if errors.As(err, &ve) {
		return invalidInput{err}
	}
	if err != nil {
		return err
	}
	ok := true
	for _, r := range reports {
		ok = ok && r.OK
	}
	data := map[string]any{"reports": list(reports)}
	if !jsonOutput() {
		printReports(cmd, reports)
	}
	if !ok {
		return printFailure(cmd, data, errors.New("the image failed its test"), exitFailure)
	}
	if jsonOutput() {
		return printResult(cmd, data)
	}
	return nil
}

// testTarget is what kiln test tests: a recipe is baked first; an image is
// tested with the recipe its manifest names, or --recipe.
func testTarget(cmd *cobra.Command, arg string) (*imagetest.Target, func(), error) {
	none := func() {}
	if isImageRef(arg) || !isRecipe(arg) {
		path, cleanup, err := pullForUse(cmd, arg)
		if err != nil {
			return nil, none, err
		}
		t, err := imagetest.Resolve(path, cfg.GetString("recipe"))
		if errors.Is(err, imagetest.ErrNoImage) {
			cleanup()
			return nil, none, invalidInput{err}
		}
		if err != nil {
			cleanup()
			return nil, none, err
		}
		return t, cleanup, nil
	}
	if cfg.GetString("recipe") != "" {
		return nil, none, usageError{fmt.Errorf("--recipe is for testing an image; %s is a recipe already", arg)}
	}
	plan, err := recipes.LoadPlan(arg)
	if err != nil {
		return nil, none, err
	}
	b, err := newBuilder(cmd)
	if err != nil {
		return nil, none, err
	}
	dir, err := os.MkdirTemp("", "kiln-test-image-")
	if err != nil {
		return nil, none, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	res, err := b.Bake(cmd.Context(), plan, filepath.Join(dir, plan.Recipe.Name+"."+plan.Recipe.Disk.Format))
	if err != nil {
		cleanup()
		return nil, none, err
	}
	return imagetest.ForPlan(res.Image, plan), cleanup, nil
}

func printReports(cmd *cobra.Command, reports []imagetest.Report) {
	w := cmd.OutOrStdout()
	for _, r := range reports {
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: note: %s\n", r.Firmware, n)
		}
		if r.OK && r.Job != nil {
			fmt.Fprintf(w, "%s: ok — the job ran (%s, exit status %s) and the VM powered off after %s\n", r.Firmware, r.Job.Result, r.Job.ExitStatus, r.BootTime)
			continue
		}
		if r.OK {
			fmt.Fprintf(w, "%s: ok — cloud-init %s after %s, hostname %s, %s\n", r.Firmware, r.CloudInit.Status, r.BootTime, r.Hostname, checkSummary(r.Checks))
			continue
		}
		fmt.Fprintf(w, "%s: FAILED — %s\n", r.Firmware, r.Error)
		for _, c := range r.Checks {
			mark := "ok"
			switch {
			case c.Skipped:
				mark = "skipped: " + c.Detail
			case !c.OK:
				mark = "FAILED: " + c.Detail
			}
			fmt.Fprintf(w, "  check %s: %s\n", c.Name, mark)
		}
		if d := strings.TrimSpace(r.Diagnostics); d != "" {
			fmt.Fprintf(w, "  the guest reports:\n    %s\n", strings.ReplaceAll(d, "\n", "\n    "))
		}
		if r.ConsoleTail != "" {
			fmt.Fprintf(w, "  last console lines:\n    %s\n", strings.ReplaceAll(strings.TrimRight(r.ConsoleTail, "\n"), "\n", "\n    "))
		}
	}
}

func checkSummary(cs []imagetest.CheckResult) string {
	passed, skipped := 0, 0
	for _, c := range cs {
		switch {
		case c.Skipped:
			skipped++
		case c.OK:
			passed++
		}
	}
	s := fmt.Sprintf("%d checks passed", passed)
	if skipped > 0 {
		s += fmt.Sprintf(", %d skipped (they need the recipe: --recipe)", skipped)
	}
	return s
}

func isRecipe(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

// invalidInput is an input that is missing or not what the command takes
// (exit 2), without a usage hint: the call itself was right.
type invalidInput struct{ err error }

func (i invalidInput) Error() string { return i.err.Error() }
func (i invalidInput) Unwrap() error { return i.err }

// addMaxSizeFlag adds --max-size, the bound on images kiln did not make.
func addMaxSizeFlag(cmd *cobra.Command) {
	cmd.Flags().String("max-size", "1TiB", "largest virtual size accepted of an image (images are checked before anything opens them)")
}

func maxSizeFlag() (int64, error) {
	s := cfg.GetString("max-size")
	n, err := recipes.ParseSize(s)
	if err != nil || n <= 0 {
		return 0, usageError{fmt.Errorf("--max-size %q: want a size like 1TiB or 200GiB", s)}
	}
	return int64(n), nil
}
