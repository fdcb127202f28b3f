package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/internal/atomicfile"
)

// exportTargets are what kiln deploy export writes.
var exportTargets = []string{"kubevirt"}

func newDeployExportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export FILE --target kubevirt",
		Short: "Write the fleet as KubeVirt objects, for Kubernetes clusters",
		Long: `Writes, for each set of the fleet file, a KubeVirt VirtualMachinePool
(pool.kubevirt.io/v1alpha1) of capacity VMs named SET-0, SET-1, ..., and one
Secret per instance, SET-cloudinit-N, with its cloud-init user-data (and
network-config): the seeds kiln deploy apply makes, secrets of the recipe
(env:, file:) resolved. The pool appends each VM's number to its Secret's
name, so VM web-2 reads web-cloudinit-2. Nothing is pulled or contacted.

A cluster boots a KubeVirt containerDisk, not a kiln image: push each set's
image with kiln push IMAGE REF --format containerdisk, and name it with
--containerdisk SET=REF, once per set.

-o FILE is written mode 0600: the Secrets hold the instances' user-data.
Without -o the objects are printed, unless a recipe secret was resolved into
them, which kiln does not print.

KubeVirt has no fault or update domains: it places VMs on nodes. A set's
counts are kept as the pool's annotations kiln.dev/fault-domains and
kiln.dev/update-domains; hosts and size.disk do not apply. See
docs/deploy.md, "Moving to Kubernetes".`,
		Example: `  kiln push web.qcow2 registry.example.com/team/web-kubevirt:1.2 --format containerdisk
  kiln deploy export fleet.yaml --target kubevirt \
      --containerdisk web=registry.example.com/team/web-kubevirt:1.2 -o fleet.kubevirt.yaml
  kubectl apply -f fleet.kubevirt.yaml`,
		Args: exactArgs(1),
		RunE: deployExport,
	}
	cmd.Flags().String("target", "kubevirt", "what to export to: "+strings.Join(exportTargets, ", "))
	cmd.Flags().StringArray("containerdisk", nil, "SET=REF: the containerDisk a set's instances boot (repeatable; one per set)")
	cmd.Flags().StringP("out", "o", "", "file to write, mode 0600 (default: standard output)")
	return cmd
}

func deployExport(cmd *cobra.Command, args []string) error {
	if t := cfg.GetString("target"); t != "kubevirt" {
		return usageError{fmt.Errorf("--target %q: want %s", t, strings.Join(exportTargets, " or "))}
	}
	disks := map[string]string{}
	for _, a := range cfg.GetStringSlice("containerdisk") {
		set, ref, ok := strings.Cut(a, "=")
		switch {
		case !ok || set == "" || ref == "":
			return usageError{fmt.Errorf("--containerdisk %q: want SET=REF, e.g. web=registry.example.com/team/web-kubevirt:1.2", a)}
		case disks[set] != "":
			return usageError{fmt.Errorf("--containerdisk: set %s is given twice", set)}
		}
		disks[set] = ref
	}
	f, err := deploy.LoadFleet(args[0])
	if err != nil {
		return err
	}
	exp, err := deploy.KubeVirt(f, deploy.KubeVirtOptions{ContainerDisks: disks})
	var cde *deploy.ContainerDiskError
	if errors.As(err, &cde) {
		return usageError{err}
	} else if err != nil {
		return err
	}
	data := map[string]any{"target": "kubevirt", "pools": list(exp.Pools), "secrets": list(exp.Secrets), "holdsSecrets": exp.HoldsSecrets}
	out := cfg.GetString("out")
	if out == "" {
		if exp.HoldsSecrets {
			return usageError{errors.New("the Secrets hold resolved secrets of the recipes, which kiln does not print; write them to a file with -o FILE (created mode 0600)")}
		}
		if jsonOutput() {
			data["yaml"] = string(exp.YAML)
			return printResult(cmd, data)
		}
		_, err := cmd.OutOrStdout().Write(exp.YAML)
		return err
	}
	if err := atomicfile.Write(out, exp.YAML, 0o600); err != nil {
		return err
	}
	if jsonOutput() {
		data["out"] = out
		return printResult(cmd, data)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (0600): VirtualMachinePools %s, %d Secrets\n", out, strings.Join(exp.Pools, ", "), len(exp.Secrets))
	return nil
}
