// Package uisink shows kiln's progress events in Packer's UI: a step's
// start as a Say line, notes and its end as Message lines, warnings as
// "warning: ..." Say lines, and progress as a percentage each time it
// crosses a tenth (Packer's UI is a log, not a terminal).
package uisink

import (
	"fmt"
	"strings"
	"sync"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/kiln-project/kiln/internal/progress"
)

// Sink is a progress.Sink writing to a Packer UI. It is safe for
// concurrent use.
type Sink struct {
	ui packersdk.Ui

	mu   sync.Mutex
	last map[string]int64 // step -> the percentage last shown
}

// New returns a Sink writing to ui.
func New(ui packersdk.Ui) *Sink {
	return &Sink{ui: ui, last: map[string]int64{}}
}

// Emit shows e.
func (s *Sink) Emit(e progress.Event) {
	if line, say := s.line(e); line != "" {
		if say {
			s.ui.Say(line)
		} else {
			s.ui.Message(line)
		}
	}
}

// line is what e shows as, and whether it is a Say (a heading) rather than
// a Message; "" shows nothing.
func (s *Sink) line(e progress.Event) (string, bool) {
	msg := strings.TrimSpace(e.Msg)
	switch e.Kind {
	case progress.Start:
		s.mu.Lock()
		delete(s.last, e.Step)
		s.mu.Unlock()
		if msg == "" {
			return e.Step, true
		}
		return e.Step + ": " + msg, true
	case progress.Done:
		s.mu.Lock()
		delete(s.last, e.Step)
		s.mu.Unlock()
		l := e.Step + ": done"
		if e.Took > 0 {
			l += " in " + e.Took.Round(100*time.Millisecond).String()
		}
		if msg != "" {
			l += " (" + msg + ")"
		}
		return l, false
	case progress.Note:
		return e.Step + ": " + msg, false
	case progress.Warn:
		return "warning: " + e.Step + ": " + msg, true
	case progress.Advance:
		// Units differ by step (bytes, packages, percent): only the share
		// done is shown, each time it crosses a tenth, as the CLI's plain
		// renderer does.
		if e.Total <= 0 {
			return "", false
		}
		pct := min(e.Done*100/e.Total, 100)
		s.mu.Lock()
		defer s.mu.Unlock()
		last, seen := s.last[e.Step]
		if seen && (pct/10 <= last/10 && !(pct == 100 && last != 100)) {
			return "", false
		}
		s.last[e.Step] = pct
		return fmt.Sprintf("%s: %d%%", e.Step, pct), false
	}
	return "", false
}
