package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2 // usage errors and invalid input
	exitSignal  = 130
)

// reportError prints err for a human on stderr — recipe problems one per
// line as file:line:col: path: message, so editors jump to them — and, with
// --output json, the result envelope on stdout; it returns the exit code.
// cmd is the command that ran (or was being parsed), for usage hints.
func reportError(cmd *cobra.Command, stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var rep reported
	if errors.As(err, &rep) {
		if !jsonOutput() {
			if msg := rep.err.Error(); msg != "" && rep.code == exitInvalid {
				fmt.Fprintf(stderr, "kiln: %s\n", msg)
			}
		}
		return rep.code
	}
	code := exitCode(err)
	if code == exitSignal {
		fmt.Fprintln(stderr, "kiln: interrupted")
	} else if recipeProblems(err) {
		// Compiler style: one problem per line, nothing in front.
		fmt.Fprintln(stderr, err.Error())
	} else {
		fmt.Fprintf(stderr, "kiln: %s\n", indentLines(err.Error()))
	}
	if isUsage(err) {
		path := "kiln"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", path)
	}
	if jsonOutput() && !resultPrinted {
		name := "kiln"
		if cmd != nil {
			name = cmd.CommandPath()
		}
		writeEnvelope(stdout, envelope{Type: "result", Command: name, Error: toErrorBody(err)})
	}
	return code
}

func exitCode(err error) int {
	var el recipes.ErrorList
	var re *recipes.Error
	var ue usageError
	var ii invalidInput
	var nf *registry.NotFoundError
	switch {
	case errors.Is(err, context.Canceled):
		return exitSignal
	case errors.As(err, &el), errors.As(err, &re), errors.As(err, &ue), errors.As(err, &ii), isUsage(err),
		errors.As(err, &nf): // an image that is not there, like a missing input file
		return exitInvalid
	}
	return exitFailure
}

// isUsage reports an error in how kiln was called: the help text helps.
func isUsage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// recipeProblems reports whether err is (only) recipe problems, each with
// a position.
func recipeProblems(err error) bool {
	var el recipes.ErrorList
	var re *recipes.Error
	return errors.As(err, &el) || errors.As(err, &re)
}

// problem is one recipe error in JSON output.
type problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func toErrorBody(err error) *errorBody {
	return &errorBody{Message: err.Error(), Problems: problems(err)}
}

// problems lists the recipe problems in err, or none.
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
	return []problem{}
}

func toProblem(e *recipes.Error) problem {
	return problem{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col, Path: e.Path, Message: e.Msg}
}

// indentLines keeps multi-line errors readable under the "kiln: " prefix.
func indentLines(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	return "\n  " + strings.ReplaceAll(s, "\n", "\n  ")
}
