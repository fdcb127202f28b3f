package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/lint"
	"github.com/spf13/cobra"
)

func newLintCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lint IMAGE...",
		Short: "Check images offline for hygiene violations",
		Long: `Opens each image (qcow2 or raw) in kiln itself — no VM, no mounts — finds its
Linux root filesystem and reports every hygiene violation by rule name:

` + ruleList() + `
Every argument is linted and reported, whatever the others hold. An image kiln
did not make is checked first: kiln reads qcow2 and raw images without backing
files only.

A registry or layout reference (oci://registry.example.com/team/web:1.2,
oci:./store:web) is pulled first, verified (see kiln pull).

Exits 0 when every image is clean, 1 when one has violations (or cannot be
linted), 2 when an argument is not a disk image kiln reads. kiln's own images
lint clean.`,
		Example: `  kiln lint web.qcow2
  kiln lint --output json debian-12-genericcloud-amd64.qcow2`,
		Args: minArgs(1),
		RunE: lintAction,
	}
	addMaxSizeFlag(cmd)
	addRegistryFlags(cmd)
	return cmd
}

func ruleList() string {
	s := ""
	for _, r := range lint.Rules {
		s += fmt.Sprintf("  %-17s %s\n", r.Name, r.Description)
	}
	return s + fmt.Sprintf("  %-17s %s\n", lint.FreeSpaceRule, "free filesystem space holds no old data (it was discarded)")
}

// lintResult is one argument's outcome.
type lintResult struct {
	*lint.Report
	Image string `json:"image"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func lintAction(cmd *cobra.Command, args []string) error {
	results := []lintResult{}
	maxSize, err := maxSizeFlag()
	if err != nil {
		return err
	}
	dirty, failed, invalid := 0, 0, 0
	w := cmd.OutOrStdout()
	for _, p := range args {
		path, cleanup, err := pullForUse(cmd, p)
		if err != nil {
			return err
		}
		rep, err := lint.Image(cmd.Context(), path, image.WithMaxVirtualSize(maxSize))
		cleanup()
		if cmd.Context().Err() != nil {
			return cmd.Context().Err()
		}
		res := lintResult{Report: rep, Image: p, OK: err == nil && rep.Clean()}
		var ie *lint.InputError
		switch {
		case errors.As(err, &ie):
			invalid++
			res.Error = notAnImage(p, err)
		case err != nil:
			failed++
			res.Error = err.Error()
		case !rep.Clean():
			dirty++
		}
		results = append(results, res)
		if jsonOutput() {
			continue
		}
		switch {
		case res.Error != "":
			fmt.Fprintf(w, "%s: %s\n", p, res.Error)
		case rep.Clean():
			fmt.Fprintf(w, "%s: clean (%s, %d rules)\n", p, rep.OS, len(rep.Rules))
		default:
			fmt.Fprintf(w, "%s: %d violations (%s)\n", p, len(rep.Violations), rep.OS)
			for _, v := range rep.Violations {
				fmt.Fprintf(w, "  %s\n", v)
			}
		}
	}
	data := map[string]any{"reports": results}
	switch {
	case invalid > 0:
		return printFailure(cmd, data, fmt.Errorf("%d of %d arguments could not be linted: not a disk image kiln reads, or refused", invalid, len(args)), exitInvalid)
	case dirty+failed > 0:
		return printFailure(cmd, data, fmt.Errorf("%d of %d images have violations or could not be linted", dirty+failed, len(args)), exitFailure)
	}
	if jsonOutput() {
		return printResult(cmd, data)
	}
	return nil
}

// notAnImage words why path is no image kiln lint takes.
func notAnImage(path string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "image: ")
	msg = strings.TrimPrefix(msg, path+": ")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "not a disk image: no such file"
	case errors.Is(err, image.ErrFormat):
		return "not a disk image kiln reads: " + msg
	}
	return "refused: " + msg
}
