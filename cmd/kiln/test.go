package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/builder"
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
commands in the guest), and powers the guest off.

Given a recipe, kiln bakes it first (a copy of the cached image when nothing
changed). Given an image, the checks come from the manifest beside it.

KVM is used only where it really works; otherwise TCG (--accel overrides).
A failure shows the last lines of the serial console.`,
		Example: `  kiln test examples/app-host.yaml
  kiln test app-host.qcow2 --firmware uefi
  kiln test web.yaml --output json`,
		Args: exactArgs(1),
		RunE: testAction,
	}
	addBuilderFlags(cmd)
	cmd.Flags().StringSlice("firmware", nil, "firmware to boot under: bios, uefi (default: the image's list)")
	cmd.Flags().String("accel", "", "accelerator: kvm or tcg (default: detect)")
	cmd.Flags().Int("memory", 512, "guest memory in MiB")
	cmd.Flags().Duration("boot-timeout", 0, "how long to wait for the guest (default 5m)")
	cmd.Flags().String("keep", "", "keep the VM's files (overlay, seed, console log) in this directory")
	cmd.Flags().StringSlice("data-disk", nil, "attach a blank data disk of this size (repeatable: /dev/vdb, /dev/vdc, ...)")
	return cmd
}

func testAction(cmd *cobra.Command, args []string) error {
	b, err := newBuilder(cmd)
	if err != nil {
		return err
	}
	target := args[0]
	var plan *recipes.Plan
	image := target
	if isRecipe(target) {
		var err error
		if plan, err = recipes.LoadPlan(target); err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "kiln-test-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		res, err := b.Bake(cmd.Context(), plan, filepath.Join(dir, plan.Recipe.Name+"."+plan.Recipe.Disk.Format))
		if err != nil {
			return err
		}
		image = res.Image
	}
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
	reports, err := b.Test(cmd.Context(), image, plan, builder.TestOptions{
		Firmware: cfg.GetStringSlice("firmware"), Accel: cfg.GetString("accel"), MemoryMiB: cfg.GetInt("memory"),
		BootTimeout: cfg.GetDuration("boot-timeout"), WorkDir: cfg.GetString("keep"), DataDisks: disks,
	})
	if err != nil {
		return err
	}
	ok := true
	for _, r := range reports {
		ok = ok && r.OK
	}
	if jsonOutput() {
		if err := printJSON(cmd.OutOrStdout(), map[string]any{"type": "result", "ok": ok, "reports": reports}); err != nil {
			return err
		}
	} else {
		printReports(cmd, reports)
	}
	if !ok {
		return silentFailure{errors.New("test failed")}
	}
	return nil
}

func printReports(cmd *cobra.Command, reports []builder.TestReport) {
	w := cmd.OutOrStdout()
	for _, r := range reports {
		if r.OK && r.Job != nil {
			fmt.Fprintf(w, "%s: ok — the job ran (%s, exit status %s) and the VM powered off after %.0fs\n", r.Firmware, r.Job.Result, r.Job.ExitStatus, r.BootSeconds)
			continue
		}
		if r.OK {
			fmt.Fprintf(w, "%s: ok — cloud-init %s after %.0fs, hostname %s, %d checks passed\n", r.Firmware, r.CloudInit.Status, r.BootSeconds, r.Hostname, len(r.Checks))
			continue
		}
		fmt.Fprintf(w, "%s: FAILED — %s\n", r.Firmware, r.Error)
		for _, c := range r.Checks {
			mark := "ok"
			if !c.OK {
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

func isRecipe(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	return ext == ".yaml" || ext == ".yml"
}

// silentFailure is a failure whose details were printed already (exit 1).
type silentFailure struct{ err error }

func (s silentFailure) Error() string { return s.err.Error() }
