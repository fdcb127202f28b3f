package autoscale

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/fielderr"
)

// MetricCPU is the built-in metric: the percentage of its vCPUs an instance
// used (libvirt domain stats), 0-100. Any other name is a user metric.
const MetricCPU = "cpu"

// Statistic combines the instances' values of one sample.
type Statistic string

// The statistics.
const (
	Average Statistic = "average"
	Max     Statistic = "max"
	Min     Statistic = "min"
)

// Operator compares a window's value with a rule's threshold.
type Operator string

// The operators.
const (
	Greater        Operator = ">"
	GreaterOrEqual Operator = ">="
	Less           Operator = "<"
	LessOrEqual    Operator = "<="
)

// Compare reports whether v op threshold; false for NaN.
func (op Operator) Compare(v, threshold float64) bool {
	switch op {
	case Greater:
		return v > threshold
	case GreaterOrEqual:
		return v >= threshold
	case Less:
		return v < threshold
	case LessOrEqual:
		return v <= threshold
	}
	return false
}

// Direction is what a rule does when it fires.
type Direction string

// The directions.
const (
	ScaleOut Direction = "out"
	ScaleIn  Direction = "in"
)

// ActionType is how a rule changes the capacity.
type ActionType string

// The action types.
const (
	// ChangeCount adds (out) or removes (in) Value instances.
	ChangeCount ActionType = "changeCount"
	// PercentChange adds or removes Value percent of the current
	// capacity, rounded up, and at least one instance.
	PercentChange ActionType = "percentChange"
	// ExactCount sets the capacity to Value; a scale-out rule never
	// lowers it, a scale-in rule never raises it.
	ExactCount ActionType = "exactCount"
)

// Action is a rule's change of capacity.
type Action struct {
	Type  ActionType
	Value int
}

// Limits of a profile that do not come from it.
const (
	MaxTimeWindow = 12 * time.Hour // Azure's bound
	MaxPercent    = 1000
)

// Rule is one condition on one metric and what to do when it holds.
type Rule struct {
	Metric     string    // MetricCPU or a user metric's name
	Statistic  Statistic // over the instances of each sample
	TimeWindow time.Duration
	Operator   Operator
	Threshold  float64
	Direction  Direction
	Action     Action
	// Cooldown is how long after the profile's last scale action this rule
	// may not act.
	Cooldown time.Duration
}

// Profile is a set's autoscale: its capacity bounds and rules.
type Profile struct {
	Minimum, Maximum int
	// Default is the capacity when metrics are lost: with no rule's
	// window covered, a set below Default is brought to it.
	Default int
	Rules   []Rule
}

// target is the capacity rule r asks for from capacity n, unclamped.
func (r Rule) target(n int) int {
	v := r.Action.Value
	switch r.Action.Type {
	case ExactCount:
		return v
	case PercentChange:
		v = max((n*v+99)/100, 1)
	}
	if r.Direction == ScaleIn {
		return n - v
	}
	return n + v
}

// FieldError is one problem of a profile at a field path such as
// "rules[1].timeWindow"; callers prefix their own ("sets[0].autoscale.").
type FieldError = fielderr.Error

// Validate checks a profile and returns every problem, each a *FieldError,
// joined. maxCapacity is the largest capacity a set may have
// (deploy.MaxCapacity); every window must hold at least one evaluation
// interval, or two evaluations could see the same samples and a short
// spike decide alone.
func Validate(p Profile, maxCapacity int, interval time.Duration) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case p.Minimum < 0:
		bad("minimum", "minimum must be at least 0, got %d", p.Minimum)
	case p.Minimum > p.Maximum:
		bad("minimum", "minimum %d is above maximum %d", p.Minimum, p.Maximum)
	}
	if p.Maximum > maxCapacity {
		bad("maximum", "maximum must be at most %d, got %d", maxCapacity, p.Maximum)
	}
	if p.Default < p.Minimum || p.Default > p.Maximum {
		bad("default", "default must be within minimum and maximum (%d-%d), got %d", p.Minimum, p.Maximum, p.Default)
	}
	for i, r := range p.Rules {
		f := fmt.Sprintf("rules[%d].", i)
		if r.Metric == "" || strings.ContainsAny(r.Metric, " \t\r\n") {
			bad(f+"metric", "metric must be %q or a user metric's name without spaces, got %q", MetricCPU, r.Metric)
		}
		switch r.Statistic {
		case Average, Max, Min:
		default:
			bad(f+"statistic", "unknown statistic %q (want average, max or min)", r.Statistic)
		}
		switch {
		case r.TimeWindow < interval:
			bad(f+"timeWindow", "timeWindow %s is shorter than the evaluation interval %s", r.TimeWindow, interval)
		case r.TimeWindow > MaxTimeWindow:
			bad(f+"timeWindow", "timeWindow must be at most %s, got %s", MaxTimeWindow, r.TimeWindow)
		}
		switch r.Operator {
		case Greater, GreaterOrEqual, Less, LessOrEqual:
		default:
			bad(f+"operator", "unknown operator %q (want >, >=, < or <=)", r.Operator)
		}
		switch {
		case math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0):
			bad(f+"threshold", "threshold must be a number, got %v", r.Threshold)
		case r.Metric == MetricCPU && (r.Threshold < 0 || r.Threshold > 100):
			bad(f+"threshold", "a cpu threshold is a percentage, 0-100, got %v", r.Threshold)
		}
		if r.Direction != ScaleOut && r.Direction != ScaleIn {
			bad(f+"direction", "unknown direction %q (want out or in)", r.Direction)
		}
		switch a := r.Action; a.Type {
		case ChangeCount:
			if a.Value < 1 || a.Value > maxCapacity {
				bad(f+"action.value", "a changeCount must be 1-%d, got %d", maxCapacity, a.Value)
			}
		case PercentChange:
			if a.Value < 1 || a.Value > MaxPercent {
				bad(f+"action.value", "a percentChange must be 1-%d, got %d", MaxPercent, a.Value)
			}
		case ExactCount:
			if a.Value < p.Minimum || a.Value > p.Maximum {
				bad(f+"action.value", "an exactCount must be within minimum and maximum (%d-%d), got %d", p.Minimum, p.Maximum, a.Value)
			}
		default:
			bad(f+"action.type", "unknown action %q (want changeCount, percentChange or exactCount)", a.Type)
		}
		if r.Cooldown < 0 {
			bad(f+"cooldown", "cooldown must be at least 0, got %s", r.Cooldown)
		}
	}
	return errors.Join(errs...)
}
