package main

import (
	"fmt"
	"runtime"

	"github.com/kiln-project/kiln/internal/version"
	"github.com/spf13/cobra"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			info := map[string]string{"version": version.String(), "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
			if jsonOutput() {
				return printResult(cmd, info)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "kiln %s (%s, %s)\n", info["version"], info["go"], info["platform"])
			return err
		},
	}
}
