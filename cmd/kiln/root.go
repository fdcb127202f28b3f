package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

const rootLong = `kiln turns short YAML recipes describing what a server is for (an app host,
a cron job runner, a one-shot job runner, a database, a proxy, a network
gateway) into bootable, clean, compressed golden VM images — baked from
Debian packages without a VM, or by booting an existing cloud image once —
proven by booting them (kiln test), and into validated cloud-init configs and
NoCloud seed images for each instance.

Output: -o/--out names the file or directory a command writes; -O/--output
chooses the format of what it prints: text, or json (one result object with
"ok", the command's "data" and, on failure, an "error" whose "problems" carry
file, line and column).

Configuration: flags win over KILN_* environment variables, which win over
kiln.yaml in the working directory or in ~/.config/kiln/ (keys are the long
flag names, e.g. "output: json" or "format: vfat").

Exit codes: 0 ok, 1 failure, 2 usage error or invalid input (a recipe with
problems, a missing or unreadable input file), 130 interrupted.`

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Golden VM images, tested, and cloud-init seeds from short recipes",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return loadConfig(cmd)
		},
	}
	root.PersistentFlags().String("config", "", "config file (default: ./kiln.yaml, then ~/.config/kiln/kiln.yaml)")
	root.PersistentFlags().StringP("output", "O", "text", "output format: text or json (the output path is -o/--out)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newVersionCommand(),
		newRecipeCommand(),
		newRenderCommand(),
		newSeedCommand(),
		newRolesCommand(),
		newBakeCommand(),
		newTestCommand(),
		newLintCommand(),
		newDiffCommand(),
		newLockCommand(),
		newCacheCommand(),
		newPushCommand(),
		newPullCommand(),
		newInspectCommand(),
		newLoginCommand(),
		newKeyCommand(),
		newDeployCommand(),
	)
	return root
}

// cfg is the merged configuration of the running command.
var cfg = viper.New()

// loadConfig layers kiln.yaml, KILN_* and the command's flags into cfg.
func loadConfig(cmd *cobra.Command) error {
	cfg = viper.New()
	defer func() { cfgLoaded = true }()
	cfg.SetEnvPrefix("KILN")
	cfg.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	cfg.AutomaticEnv()
	file, _ := cmd.Flags().GetString("config")
	explicit := file != ""
	if !explicit {
		file = findConfig()
	}
	if file != "" {
		cfg.SetConfigFile(file)
		cfg.SetConfigType("yaml")
		if err := cfg.ReadInConfig(); err != nil {
			if !explicit && errors.Is(err, fs.ErrNotExist) {
				file = ""
			} else {
				return usageError{fmt.Errorf("config %s: %w", file, err)}
			}
		}
	}
	var bindErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err := cfg.BindPFlag(f.Name, f); err != nil && bindErr == nil {
			bindErr = err
		}
	})
	if bindErr != nil {
		return bindErr
	}
	return checkOutputFormat(cfg.GetString("output"))
}

// checkOutputFormat accepts text and json; a value that looks like a path
// was meant for -o.
func checkOutputFormat(o string) error {
	switch o {
	case "text", "json":
		return nil
	}
	if strings.ContainsAny(o, "/.") {
		return usageError{fmt.Errorf("--output %q: want text or json; -O/--output is the output format (did you mean -o %s, the output path?)", o, o)}
	}
	return usageError{fmt.Errorf("--output %q: want text or json", o)}
}

// findConfig returns the first kiln.yaml of the working directory and
// ~/.config/kiln/, or "".
func findConfig() string {
	dirs := []string{"."}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".config", "kiln"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "kiln.yaml")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// jsonOutput reports --output json. Before the configuration is loaded (a
// flag that did not parse) it looks at the arguments and KILN_OUTPUT, so
// even that error comes as JSON.
func jsonOutput() bool {
	if cfgLoaded {
		return cfg.GetString("output") == "json"
	}
	out := os.Getenv("KILN_OUTPUT")
	args := os.Args[1:]
	for i, a := range args {
		switch {
		case (a == "--output" || a == "-O") && i+1 < len(args):
			out = args[i+1]
		case strings.HasPrefix(a, "--output="):
			out = strings.TrimPrefix(a, "--output=")
		case strings.HasPrefix(a, "-O") && len(a) > 2:
			out = strings.TrimPrefix(strings.TrimPrefix(a, "-O"), "=")
		}
	}
	return out == "json"
}

// cfgLoaded is set once loadConfig has run.
var cfgLoaded bool

// usageError marks errors in how kiln was called (exit code 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// rangeArgs is cobra.RangeArgs with a usage error.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
