package main

import (
	"fmt"

	"github.com/kiln-project/kiln/seed"
	"github.com/spf13/cobra"
)

func newSeedCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "seed FILE -o seed.iso",
		Short: "Write an instance's NoCloud seed image (ISO9660 cidata, or vfat CIDATA)",
		Long: `Renders an instance of a recipe (see kiln render) and writes the documents
into a NoCloud seed image, the same layout cloud-localds writes: an ISO9660
volume labelled cidata with Rock Ridge and Joliet names, or a FAT volume
labelled CIDATA. Output is byte-identical for identical inputs (timestamps come
from SOURCE_DATE_EPOCH, or a fixed epoch), written atomically, and mode 0600
when the seed holds secrets.`,
		Example: `  kiln seed examples/app-host.yaml -o seed.iso
  qemu-system-x86_64 ... -drive file=seed.iso,format=raw,if=virtio,readonly=on`,
		Args: exactArgs(1),
		RunE: seedAction,
	}
	addInstanceFlags(cmd)
	cmd.Flags().StringP("out", "o", "", "seed image to write (required)")
	cmd.Flags().String("format", "iso", "seed filesystem: iso or vfat")
	return cmd
}

func seedAction(cmd *cobra.Command, args []string) error {
	out := cfg.GetString("out")
	if out == "" {
		return usageError{fmt.Errorf("missing -o: name the seed image to write, e.g. -o seed.iso")}
	}
	format, err := seed.ParseFormat(cfg.GetString("format"))
	if err != nil {
		return usageError{err}
	}
	sd, err := instanceSeed(args[0])
	if err != nil {
		return err
	}
	when, err := buildEpoch()
	if err != nil {
		return err
	}
	res, err := seed.Write(out, sd, seed.Options{Format: format, ModTime: when})
	if err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, res)
	}
	warn(cmd, args[0], sd.Warnings)
	mode := "0644"
	if res.HoldsSecrets {
		mode = "0600, holds secrets"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, %d bytes, %s; instance-id %s, hostname %s)\n",
		res.Path, res.Format, res.Size, mode, res.InstanceID, res.Hostname)
	return nil
}
