package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/disk/imagediff"
)

func newDiffCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show what differs between two images: packages, then files",
		Long: `Compares two disk images offline, read by kiln itself (qcow2 or raw, GPT,
ext4 — no VM, no mounts): first the packages dpkg records as installed
(added, removed, another version), then every file of the root filesystem
(added, removed, or changed in type, mode, owner, size, link target or
content). Modification times are not compared. Links are compared, never
followed.

An argument is an image file or a registry or layout reference
(oci://registry.example.com/team/web:1.2, oci:./store:web), pulled first and
verified (see kiln pull). An image kiln did not make is checked before it is
opened: no backing file, a bounded size (--max-size).

Prints nothing and exits 0 when the images are the same; prints the
differences and exits 1 when they are not; exits 2 when an argument is not
an image kiln reads. Two bakes of one recipe from the same packages are the
same: this is how to find what made them differ.`,
		Example: `  kiln diff web-1.4.qcow2 web-1.5.qcow2
  kiln diff web.qcow2 oci://registry.example.com/team/web:1.4
  kiln diff -O json a.qcow2 b.qcow2 | jq '.data.files[] | select(.change == "changed")'`,
		Args: exactArgs(2),
		RunE: diffAction,
	}
	addMaxSizeFlag(cmd)
	addRegistryFlags(cmd)
	return cmd
}

func diffAction(cmd *cobra.Command, args []string) error {
	maxSize, err := maxSizeFlag()
	if err != nil {
		return err
	}
	var paths []string
	for _, arg := range args {
		path, cleanup, err := pullForUse(cmd, arg)
		if err != nil {
			return err
		}
		defer cleanup()
		paths = append(paths, path)
	}
	r, err := imagediff.Images(cmd.Context(), paths[0], paths[1], image.WithMaxVirtualSize(maxSize))
	var oe *imagediff.OpenError
	switch {
	case errors.As(err, &oe):
		return invalidInput{fmt.Errorf("%s: %w", argOf(args, paths, oe.Path), oe.Err)}
	case err != nil:
		return err
	}
	data := map[string]any{"a": args[0], "b": args[1], "same": r.Empty(), "packages": r.Packages, "files": r.Files}
	if !jsonOutput() {
		printDiff(cmd.OutOrStdout(), r)
	}
	if !r.Empty() {
		return printFailure(cmd, data, fmt.Errorf("the images differ: %d packages, %d files", len(r.Packages), len(r.Files)), exitFailure)
	}
	if jsonOutput() {
		return printResult(cmd, data)
	}
	return nil
}

// argOf is the argument a (possibly pulled) path came from.
func argOf(args, paths []string, path string) string {
	for i, p := range paths {
		if p == path {
			return args[i]
		}
	}
	return path
}

// printDiff writes a report for a person: one line per package and per
// file, "+" added, "-" removed, "~" changed.
func printDiff(w io.Writer, r *imagediff.Report) {
	printPackageChanges(w, r.Packages)
	for _, c := range r.Files {
		switch c.Change {
		case imagediff.Added:
			fmt.Fprintf(w, "+ %s  %s\n", c.Path, describe(c.B))
		case imagediff.Removed:
			fmt.Fprintf(w, "- %s  %s\n", c.Path, describe(c.A))
		default:
			var parts []string
			for _, f := range c.Fields {
				parts = append(parts, fieldChange(f, c.A, c.B))
			}
			fmt.Fprintf(w, "~ %s  %s\n", c.Path, strings.Join(parts, ", "))
		}
	}
}

// printPackageChanges writes one line per package: "+" added, "-"
// removed, "~" another version.
func printPackageChanges(w io.Writer, changes []imagediff.PackageChange) {
	for _, p := range changes {
		switch {
		case p.From == "":
			fmt.Fprintf(w, "+ package %s %s (%s)\n", p.Name, p.To, p.Arch)
		case p.To == "":
			fmt.Fprintf(w, "- package %s %s (%s)\n", p.Name, p.From, p.Arch)
		default:
			fmt.Fprintf(w, "~ package %s %s -> %s (%s)\n", p.Name, p.From, p.To, p.Arch)
		}
	}
}

func describe(e *imagediff.Entry) string {
	s := fmt.Sprintf("%s %s %d:%d", e.Type, e.Mode, e.UID, e.GID)
	switch e.Type {
	case "file":
		s += fmt.Sprintf(" %d bytes %s", e.Size, shortDigest(e.Digest))
	case "symlink":
		s += " -> " + e.Target
	}
	return s
}

func fieldChange(field string, a, b *imagediff.Entry) string {
	switch field {
	case "type":
		return fmt.Sprintf("type %s -> %s", a.Type, b.Type)
	case "mode":
		return fmt.Sprintf("mode %s -> %s", a.Mode, b.Mode)
	case "owner":
		return fmt.Sprintf("owner %d:%d -> %d:%d", a.UID, a.GID, b.UID, b.GID)
	case "size":
		return fmt.Sprintf("size %d -> %d", a.Size, b.Size)
	case "target":
		return fmt.Sprintf("target %s -> %s", a.Target, b.Target)
	case "content":
		return fmt.Sprintf("content %s -> %s", shortDigest(a.Digest), shortDigest(b.Digest))
	}
	return field
}

// shortDigest is a digest cut for reading: "sha256:0123456789ab".
func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
