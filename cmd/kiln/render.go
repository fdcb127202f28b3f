package main

import (
	"fmt"
	"strings"

	"github.com/kiln-project/kiln/internal/lazyre"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/seed"
	"github.com/spf13/cobra"
)

func newRenderCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "render FILE",
		Short: "Write an instance's cloud-init files: user-data, meta-data, network-config",
		Long: `Renders the NoCloud documents of one instance of a recipe and validates them
against cloud-init's schema. network-config is written when the recipe (or a
role) configures networking; without it cloud-init brings up DHCP on the first
interface, which works on every image. With -o DIR they are written there (mode 0600 when
they hold resolved secrets); without it they are printed, unless they hold
secrets.

Stages: boot (default) is the per-instance part, for images kiln baked; bake is
the bake section as cloud-config; full is both, to configure a stock cloud
image entirely at first boot.`,
		Example: `  kiln render examples/app-host.yaml -o seed/
  kiln render examples/database.yaml --instance db-1 --stage full -o seed/`,
		Args: exactArgs(1),
		RunE: renderAction,
	}
	addInstanceFlags(cmd)
	cmd.Flags().StringP("out", "o", "", "directory to write the files into (default: print them)")
	return cmd
}

func addInstanceFlags(cmd *cobra.Command) {
	cmd.Flags().String("instance", "", "instance name (default: the recipe name)")
	cmd.Flags().Int("index", 0, "instance number, for {index} in the hostname pattern")
	cmd.Flags().String("stage", "boot", "what user-data carries: boot, bake or full")
}

// instanceSeed loads a recipe and renders the seed the flags ask for.
func instanceSeed(file string) (*recipes.Seed, error) {
	stage, err := recipes.ParseStage(cfg.GetString("stage"))
	if err != nil {
		return nil, usageError{err}
	}
	plan, err := recipes.LoadPlan(file)
	if err != nil {
		return nil, err
	}
	inst := recipes.Instance{Name: cfg.GetString("instance"), Index: cfg.GetInt("index")}
	return plan.Seed(inst, stage, plan.Recipe.EnvResolver())
}

func renderAction(cmd *cobra.Command, args []string) error {
	sd, err := instanceSeed(args[0])
	if err != nil {
		return err
	}
	data := map[string]any{"instanceId": sd.InstanceID, "hostname": sd.Hostname, "holdsSecrets": sd.HoldsSecrets, "warnings": list(sd.Warnings)}
	dir := cfg.GetString("out")
	if dir == "" {
		if sd.HoldsSecrets {
			return usageError{fmt.Errorf("this seed holds secrets, which kiln does not print; write it to a directory with -o DIR (files are created mode 0600)")}
		}
		if jsonOutput() {
			docs := map[string]string{}
			for _, e := range seed.Files(sd) {
				docs[e.Name] = string(e.Data)
			}
			data["documents"] = docs
			return printResult(cmd, data)
		}
		warn(cmd, args[0], sd.Warnings)
		for _, e := range seed.Files(sd) {
			fmt.Fprintf(cmd.OutOrStdout(), "--- # %s\n%s", e.Name, e.Data)
		}
		return nil
	}
	files, err := seed.WriteDir(dir, sd)
	if err != nil {
		return err
	}
	if jsonOutput() {
		data["files"] = files
		return printResult(cmd, data)
	}
	warn(cmd, args[0], sd.Warnings)
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (instance-id %s, hostname %s)\n", strings.Join(files, ", "), sd.InstanceID, sd.Hostname)
	return nil
}

// warn prints warnings about file, compiler style: a warning that has a
// position keeps it in front ("web.yaml:12:14: warning: ..."), so editors
// jump to it as they do to errors.
func warn(cmd *cobra.Command, file string, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), formatWarning(file, w))
	}
}

var positioned = lazyre.New(`^(\S+?:[0-9]+:[0-9]+): (.*)$`)

func formatWarning(file, w string) string {
	if m := positioned.FindStringSubmatch(w); m != nil {
		return m[1] + ": warning: " + m[2]
	}
	return file + ": warning: " + w
}
