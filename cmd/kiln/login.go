package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/registry"
)

func newLoginCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login REGISTRY",
		Short: "Save credentials for a registry (docker config format)",
		Long: `Checks a user name and password with the registry, then saves them where
docker, podman (with REGISTRY_AUTH_FILE unset it falls back to the docker
file too), skopeo and kiln look: $DOCKER_CONFIG/config.json, or
~/.docker/config.json, mode 0600. Other entries in the file are kept.

The password is read from standard input (--password-stdin), never from the
command line, where other users could see it.`,
		Example: `  printf '%s' "$TOKEN" | kiln login registry.example.com -u ci --password-stdin`,
		Args:    exactArgs(1),
		RunE:    loginAction,
	}
	cmd.Flags().StringP("username", "u", "", "user name")
	cmd.Flags().Bool("password-stdin", false, "read the password from standard input")
	cmd.Flags().Bool("insecure", false, "allow plain HTTP to the registry")
	return cmd
}

func loginAction(cmd *cobra.Command, args []string) error {
	host := strings.TrimPrefix(strings.TrimPrefix(args[0], "https://"), "http://")
	user := cfg.GetString("username")
	if user == "" {
		return usageError{errors.New("--username (-u) is required")}
	}
	if !cfg.GetBool("password-stdin") {
		return usageError{errors.New("give the password on standard input with --password-stdin")}
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		return usageError{fmt.Errorf("reading the password from standard input: %w", err)}
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return usageError{errors.New("empty password on standard input")}
	}
	c, err := newRegistryClient(cmd)
	if err != nil {
		return err
	}
	if err := c.CheckLogin(cmd.Context(), host, user, password); err != nil {
		return err
	}
	path, err := registry.DockerConfigPath()
	if err != nil {
		return err
	}
	if err := registry.SaveLogin(path, host, user, password); err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"registry": host, "user": user, "config": path})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s (saved in %s)\n", host, user, path)
	return nil
}
