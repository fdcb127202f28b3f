package health

import (
	"errors"
	"fmt"
	"time"

	"github.com/kiln-project/kiln/internal/fielderr"
)

// Status is where an instance stands.
type Status string

// The states of an instance.
const (
	// Starting is an instance that booted and has not yet answered
	// Probes passes in a row (nor failed Probes times after its grace
	// period). It gets no traffic.
	Starting Status = "starting"
	// Healthy is an instance whose last Probes answers passed (or that has
	// not failed Probes times in a row since).
	Healthy Status = "healthy"
	// Unhealthy is an instance that failed Probes times in a row; State.Reason
	// holds the last failure.
	Unhealthy Status = "unhealthy"
)

// Defaults and limits of Config.
const (
	DefaultInterval = 5 * time.Second
	DefaultProbes   = 2
	MinInterval     = time.Second
	MaxInterval     = time.Minute
	MaxProbes       = 24 // Azure's bound on numberOfProbes
	MaxGracePeriod  = 2 * time.Hour
)

// Config is how often an instance is probed and how many equal answers in a
// row change its state. A zero field is unset: Default fills it.
type Config struct {
	Interval time.Duration // between two probes of one instance
	Probes   int           // consecutive equal answers that change the state
	// GracePeriod starts at boot: until it ends, failures keep a starting
	// instance starting.
	GracePeriod time.Duration
}

// Default fills the unset fields: Interval 5s, Probes 2, GracePeriod
// Interval × Probes (time for Probes probes, as Azure's Application Health
// extension does). It is pure; it does not validate.
func Default(c *Config) {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Probes == 0 {
		c.Probes = DefaultProbes
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = c.Interval * time.Duration(c.Probes)
	}
}

// FieldError is one problem of a Config or a Probe, at a field path such as
// "gracePeriod" or "http.status"; callers prefix their own path ("sets[0].health.").
type FieldError = fielderr.Error

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validate checks a defaulted Config and returns every problem, each a
// *FieldError, joined; nil when there is none.
func Validate(c Config) error {
	var errs []error
	if c.Interval < MinInterval || c.Interval > MaxInterval {
		errs = append(errs, fieldErr("interval", "interval must be %s-%s, got %s", MinInterval, MaxInterval, c.Interval))
	}
	if c.Probes < 1 || c.Probes > MaxProbes {
		errs = append(errs, fieldErr("probes", "probes must be 1-%d, got %d", MaxProbes, c.Probes))
	}
	if c.GracePeriod < 0 || c.GracePeriod > MaxGracePeriod {
		errs = append(errs, fieldErr("gracePeriod", "gracePeriod must be 0-%s, got %s", MaxGracePeriod, c.GracePeriod))
	}
	return errors.Join(errs...)
}

// Result is the outcome of one probe.
type Result struct {
	OK bool
	// Detail says what was seen: "GET /healthz: status 503, want 200",
	// "connect 8080: connection refused". It becomes the Reason of an
	// unhealthy instance.
	Detail string
}

// Pass is a passed probe's Result.
func Pass(detail string) Result { return Result{OK: true, Detail: detail} }

// Fail is a failed probe's Result.
func Fail(detail string) Result { return Result{Detail: detail} }

// State is an instance's health, as the caller keeps it between probes.
type State struct {
	Status Status
	// Reason says why: the last failure of an unhealthy instance; the
	// passes so far, or the failure the grace period excused, of a
	// starting one.
	Reason string
	Since  time.Time // when Status was entered
	Booted time.Time // when the instance (re)started; the grace period runs from here
	// Passes and Failures count the answers in a row so far; one of them
	// is 0.
	Passes, Failures int
}

// Start is the state of an instance that booted at booted (a reboot or a
// replacement starts over).
func Start(booted time.Time) State {
	return State{Status: Starting, Reason: "booted, not probed yet", Since: booted, Booted: booted}
}

// Next is the state after one probe's result r, seen at now. It is pure:
// the same state, result and time always give the same state.
func (c Config) Next(s State, r Result, now time.Time) State {
	n := max(c.Probes, 1)
	if r.OK {
		s.Passes, s.Failures = s.Passes+1, 0
		if s.Status != Healthy && s.Passes >= n {
			return to(s, Healthy, fmt.Sprintf("%d probes in a row passed", s.Passes), now)
		}
		if s.Status == Starting {
			s.Reason = fmt.Sprintf("%d of %d probes in a row passed", s.Passes, n)
		}
		return s
	}
	s.Passes = 0
	if s.Status == Starting {
		if end := s.Booted.Add(c.GracePeriod); now.Before(end) {
			s.Failures = 0
			s.Reason = fmt.Sprintf("in its grace period until %s: %s", end.UTC().Format(time.RFC3339), r.Detail)
			return s
		}
	}
	s.Failures++
	switch {
	case s.Status == Unhealthy:
		s.Reason = r.Detail // the last failure, always
	case s.Failures >= n:
		return to(s, Unhealthy, r.Detail, now)
	case s.Status == Starting:
		s.Reason = fmt.Sprintf("%d of %d probes in a row failed: %s", s.Failures, n, r.Detail)
	}
	return s
}

func to(s State, st Status, reason string, now time.Time) State {
	s.Status, s.Reason, s.Since = st, reason, now
	return s
}
