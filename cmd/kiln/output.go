package main

import (
	"encoding/json"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// envelope is every JSON result kiln prints (--output json): one object
// per command run, the last line of stdout after any progress events.
//
//	{"type": "result", "ok": true, "command": "kiln seed", "data": {...}}
//	{"type": "result", "ok": false, "command": "kiln bake", "error": {"message": "...", "problems": [...]}}
//
// Commands whose work yields a report even when it fails (lint, test,
// recipe validate) carry both data and error.
type envelope struct {
	Type    string     `json:"type"`
	OK      bool       `json:"ok"`
	Command string     `json:"command"`
	Data    any        `json:"data,omitempty"`
	Error   *errorBody `json:"error,omitempty"`
}

// errorBody is a failure in JSON: the message, and each recipe problem
// with its file, line and column.
type errorBody struct {
	Message  string    `json:"message"`
	Problems []problem `json:"problems"`
}

// resultPrinted is set once a command printed its JSON result, so the
// error path does not print a second one.
var resultPrinted bool

// printResult prints a successful command's result: JSON (the envelope)
// with --output json. Text output is the command's own business.
func printResult(cmd *cobra.Command, data any) error {
	return writeEnvelope(cmd.OutOrStdout(), envelope{Type: "result", OK: true, Command: cmd.CommandPath(), Data: data})
}

// printFailure prints the result of a command whose work yielded data
// but failed (lint violations, failed checks, invalid recipes), and
// returns an error that reports no second time.
func printFailure(cmd *cobra.Command, data any, err error, code int) error {
	if jsonOutput() {
		if werr := writeEnvelope(cmd.OutOrStdout(), envelope{Type: "result", Command: cmd.CommandPath(), Data: data, Error: toErrorBody(err)}); werr != nil {
			return werr
		}
	}
	return reported{err: err, code: code}
}

func writeEnvelope(w io.Writer, e envelope) error {
	resultPrinted = true
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(e)
}

// reported is an error whose details the command printed already; code
// is the exit code.
type reported struct {
	err  error
	code int
}

func (r reported) Error() string { return r.err.Error() }
func (r reported) Unwrap() error { return r.err }

// stdout is where JSON goes when no command is at hand (errors before one
// ran).
var stdout io.Writer = os.Stdout

// list returns s, or an empty list for nil: JSON lists are [], never null.
func list[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
