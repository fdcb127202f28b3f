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
Errors are printed as file:line:col: path: message.`,
		Args: minArgs(1),
		RunE: recipeValidateAction,
	}
}

type validateResult struct {
	File     string    `json:"file"`
	OK       bool      `json:"ok"`
	ImageKey string    `json:"imageKey,omitempty"`
	Warnings []string  `json:"warnings,omitempty"`
	Problems []problem `json:"problems,omitempty"`
}

func recipeValidateAction(cmd *cobra.Command, args []string) error {
	var results []validateResult
	var firstErr error
	for _, file := range args {
		res := validateResult{File: file, OK: true}
		warnings, key, err := validateRecipe(file)
		if err != nil {
			res.OK, res.Problems = false, problems(err)
			if firstErr == nil {
				firstErr = err
			}
			if !jsonOutput() {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
			}
		}
		res.ImageKey, res.Warnings = key, warnings
		if !jsonOutput() {
			for _, w := range warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", file, w)
			}
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", file)
			}
		}
		results = append(results, res)
	}
	if jsonOutput() {
		if err := printJSON(cmd.OutOrStdout(), results); err != nil {
			return err
		}
	}
	if firstErr != nil {
		return silentInvalid{fmt.Errorf("%d of %d recipes have problems", countFailed(results), len(results))}
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

// silentInvalid is an invalid-input error whose details were printed already.
type silentInvalid struct{ err error }

func (s silentInvalid) Error() string { return s.err.Error() }
