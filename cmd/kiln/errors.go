package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kiln-project/kiln/recipes"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2 // usage errors and invalid input
	exitSignal  = 130
)

// reportError prints err for a human on stderr (and as JSON on stdout with
// --output json) and returns the exit code.
func reportError(root *cobra.Command, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	var sf silentFailure
	if errors.As(err, &sf) {
		return exitFailure
	}
	var si silentInvalid
	if errors.As(err, &si) {
		// The command reported the details itself, in its own format.
		if !jsonOutput() {
			fmt.Fprintf(os.Stderr, "kiln: %s\n", err)
		}
		return exitInvalid
	}
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
		code = exitInvalid
	}
	if code == exitSignal {
		fmt.Fprintln(os.Stderr, "kiln: interrupted")
		return code
	}
	fmt.Fprintf(os.Stderr, "kiln: %s\n", indentLines(err.Error()))
	if code == exitInvalid && isUsage(err) {
		fmt.Fprintln(os.Stderr, "Run 'kiln --help' for usage.")
	}
	if jsonOutput() {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"ok": false, "error": err.Error(), "problems": problems(err)})
	}
	return code
}

func exitCode(err error) int {
	var el recipes.ErrorList
	var re *recipes.Error
	var ue usageError
	var ii invalidInput
	switch {
	case errors.Is(err, context.Canceled):
		return exitSignal
	case errors.As(err, &el), errors.As(err, &re), errors.As(err, &ue), errors.As(err, &ii):
		return exitInvalid
	}
	return exitFailure
}

func isUsage(err error) bool {
	var ue usageError
	return errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown ")
}

// problem is one recipe error in JSON output.
type problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func problems(err error) []problem {
	var el recipes.ErrorList
	var re *recipes.Error
	switch {
	case errors.As(err, &el):
		out := make([]problem, len(el))
		for i, e := range el {
			out[i] = toProblem(e)
		}
		return out
	case errors.As(err, &re):
		return []problem{toProblem(re)}
	}
	return []problem{{Message: err.Error()}}
}

func toProblem(e *recipes.Error) problem {
	return problem{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col, Path: e.Path, Message: e.Msg}
}

// indentLines keeps multi-error output readable under the "kiln: " prefix.
func indentLines(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	return "\n  " + strings.ReplaceAll(s, "\n", "\n  ")
}
