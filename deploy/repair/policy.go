package repair

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/fielderr"
)

// Action is how an unhealthy instance is repaired, spelt as Azure spells
// its repairAction.
type Action string

// The repair actions.
const (
	// Replace deletes the instance and creates it again, with its name
	// and place, from the set's current image and recipe.
	Replace Action = "Replace"
	// Restart reboots the instance as it is.
	Restart Action = "Restart"
	// Reimage puts the set's current image back on the instance's disk
	// and boots it, keeping its name, place and seed.
	Reimage Action = "Reimage"
)

// Defaults and limits of a Policy, and of repairs.
const (
	DefaultGracePeriod = 10 * time.Minute
	// MinGracePeriod is kiln's: tests and demos use seconds (Azure's
	// minimum is 10 minutes).
	MinGracePeriod = time.Second
	MaxGracePeriod = 90 * time.Minute // Azure's
	DefaultAction  = Replace
	// MaxPercent of a set's capacity may be under repair at once, and at
	// least one instance (the issue's; Azure repairs 5%).
	MaxPercent = 20
	// StormRepairs repairs in a row that bring their instances back
	// failing the same way suspend repairs.
	StormRepairs = 3
	// HistoryLength is how many finished repairs Decide keeps.
	HistoryLength = 32
)

// Policy is a set's automatic repairs: the fleet file's automaticRepairs.
type Policy struct {
	Enabled bool
	// GracePeriod is how long an instance must have been unhealthy before
	// it is repaired. A repaired instance starts over: it is not repaired
	// again before it has been unhealthy for as long.
	GracePeriod time.Duration
	Action      Action
}

// Default fills the unset fields: GracePeriod 10m, Action Replace. Enabled
// stays as given (off unless the fleet file turns it on, as in Azure). It
// is pure; it does not validate.
func Default(p *Policy) {
	if p.GracePeriod == 0 {
		p.GracePeriod = DefaultGracePeriod
	}
	if p.Action == "" {
		p.Action = DefaultAction
	}
}

// FieldError is one problem of a Policy at a field path such as
// "automaticRepairs.gracePeriod"; the fleet loader prefixes the set's path
// and places it at the field's file:line:col.
type FieldError = fielderr.Error

// Validate checks a defaulted Policy, enabled or not, and returns every
// problem, each a *FieldError, joined; nil when there is none.
func Validate(p Policy) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: "automaticRepairs." + field, Message: fmt.Sprintf(format, args...)})
	}
	if g := p.GracePeriod; g < MinGracePeriod || g > MaxGracePeriod {
		bad("gracePeriod", "gracePeriod must be %s-%s, got %s", MinGracePeriod, MaxGracePeriod, g)
	}
	switch p.Action {
	case Replace, Restart, Reimage:
	default:
		hint := "want Replace, Restart or Reimage"
		for _, a := range []Action{Replace, Restart, Reimage} {
			if strings.EqualFold(string(p.Action), string(a)) {
				hint = "did you mean " + string(a) + "?"
			}
		}
		bad("repairAction", "unknown repairAction %q (%s)", p.Action, hint)
	}
	return errors.Join(errs...)
}
