package main

import (
	"fmt"

	"github.com/kiln-project/kiln/recipes"
	"github.com/spf13/cobra"
)

func newRecipeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recipe",
		Short: "Work with recipe files",
	}
	cmd.AddCommand(newRecipeValidateCommand())
	return cmd
}

func newRecipeValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check recipes: format, roles, and every cloud-config they render",
		Long: `Checks each recipe strictly (unknown keys, types, values, role parameters)
and renders its bake, boot and full cloud-configs, validating them against
cloud-init's schema. Secrets are not resolved: placeholders stand in for them.
Errors are printed as file:line:col: path: message.

A package base must be a Debian release kiln supports: ` + recipes.SupportedReleases() + `.
A recipe without a base gets ` + recipes.DefaultBase + `.`,
		Args: minArgs(1),
		RunE: recipeValidateAction,
	}
}

type validateResult struct {
	File     string    `json:"file"`
	OK       bool      `json:"ok"`
	ImageKey string    `json:"imageKey,omitempty"`
	Warnings []string  `json:"warnings"`
	Problems []problem `json:"problems"`
}

func recipeValidateAction(cmd *cobra.Command, args []string) error {
	results := []validateResult{}
	var all recipes.ErrorList
	for _, file := range args {
		res := validateResult{File: file, OK: true, Problems: []problem{}}
		warnings, key, err := validateRecipe(file)
		if err != nil {
			res.OK, res.Problems = false, problems(err)
			if len(res.Problems) == 0 {
				res.Problems = []problem{{File: file, Message: err.Error()}}
			}
			if el, ok := err.(recipes.ErrorList); ok {
				all = append(all, el...)
			} else if re, ok := err.(*recipes.Error); ok {
				all = append(all, re)
			}
			if !jsonOutput() {
				// One problem per line, file:line:col: path: message.
				fmt.Fprintln(cmd.ErrOrStderr(), err)
			}
		}
		res.ImageKey, res.Warnings = key, list(warnings)
		if !jsonOutput() {
			warn(cmd, file, warnings)
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", file)
			}
		}
		results = append(results, res)
	}
	data := map[string]any{"recipes": results}
	if failed := countFailed(results); failed > 0 {
		err := summary{msg: fmt.Sprintf("%d of %d recipes have problems", failed, len(results)), err: all}
		return printFailure(cmd, data, err, exitInvalid)
	}
	if jsonOutput() {
		return printResult(cmd, data)
	}
	return nil
}

// validateRecipe loads a recipe and renders every stage of it.
func validateRecipe(file string) ([]string, string, error) {
	plan, err := recipes.LoadPlan(file)
	if err != nil {
		return nil, "", err
	}
	var warnings []string
	seen := map[string]bool{}
	for _, stage := range []recipes.Stage{recipes.StageBoot, recipes.StageBake, recipes.StageFull} {
		seed, err := plan.Seed(recipes.Instance{}, stage, recipes.PlaceholderResolver())
		if err != nil {
			return nil, "", err
		}
		for _, w := range seed.Warnings {
			if !seen[w] {
				seen[w] = true
				warnings = append(warnings, w)
			}
		}
	}
	return warnings, plan.ImageKey, nil
}

func countFailed(rs []validateResult) int {
	n := 0
	for _, r := range rs {
		if !r.OK {
			n++
		}
	}
	return n
}

// summary is an error whose message sums up the errors it wraps (which
// were printed one by one).
type summary struct {
	msg string
	err error
}

func (s summary) Error() string { return s.msg }
func (s summary) Unwrap() error { return s.err }
