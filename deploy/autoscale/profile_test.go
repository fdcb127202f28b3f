package autoscale

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// cpuOut and cpuIn are the usual pair: more than 70% over 5 minutes adds
// one instance, less than 30% removes one; 5 minutes' cooldown.
var (
	cpuOut = Rule{Metric: MetricCPU, Statistic: Average, TimeWindow: 5 * time.Minute, Operator: Greater, Threshold: 70,
		Direction: ScaleOut, Action: Action{ChangeCount, 1}, Cooldown: 5 * time.Minute}
	cpuIn = Rule{Metric: MetricCPU, Statistic: Average, TimeWindow: 5 * time.Minute, Operator: Less, Threshold: 30,
		Direction: ScaleIn, Action: Action{ChangeCount, 1}, Cooldown: 5 * time.Minute}
)

func TestValidate(t *testing.T) {
	with := func(f func(*Rule)) Profile {
		r := cpuOut
		f(&r)
		return Profile{Minimum: 1, Maximum: 10, Default: 2, Rules: []Rule{r}}
	}
	for _, c := range []struct {
		name string
		p    Profile
		want []string // field paths
	}{
		{"valid", Profile{Minimum: 1, Maximum: 10, Default: 2, Rules: []Rule{cpuOut, cpuIn}}, nil},
		{"no rules", Profile{Minimum: 0, Maximum: 0, Default: 0}, nil},
		{"only scale-in rules", Profile{Minimum: 1, Maximum: 3, Default: 1, Rules: []Rule{cpuIn}}, nil},
		{"negative minimum", Profile{Minimum: -1, Maximum: 3, Default: 1}, []string{"minimum"}},
		{"minimum above maximum", Profile{Minimum: 5, Maximum: 3, Default: 4}, []string{"minimum", "default"}},
		{"maximum above the limit", Profile{Minimum: 1, Maximum: 101, Default: 1}, []string{"maximum"}},
		{"default below minimum", Profile{Minimum: 2, Maximum: 3, Default: 1}, []string{"default"}},
		{"no metric", with(func(r *Rule) { r.Metric = "" }), []string{"rules[0].metric"}},
		{"space in metric", with(func(r *Rule) { r.Metric = "queue length" }), []string{"rules[0].metric"}},
		{"user metric, any threshold", with(func(r *Rule) { r.Metric = "queue_length"; r.Threshold = 5000 }), nil},
		{"unknown statistic", with(func(r *Rule) { r.Statistic = "p99" }), []string{"rules[0].statistic"}},
		{"window shorter than the interval", with(func(r *Rule) { r.TimeWindow = 30 * time.Second }), []string{"rules[0].timeWindow"}},
		{"window equal to the interval", with(func(r *Rule) { r.TimeWindow = time.Minute }), nil},
		{"window too long", with(func(r *Rule) { r.TimeWindow = 13 * time.Hour }), []string{"rules[0].timeWindow"}},
		{"unknown operator", with(func(r *Rule) { r.Operator = "==" }), []string{"rules[0].operator"}},
		{"NaN threshold", with(func(r *Rule) { r.Threshold = math.NaN() }), []string{"rules[0].threshold"}},
		{"infinite threshold", with(func(r *Rule) { r.Metric = "x"; r.Threshold = math.Inf(1) }), []string{"rules[0].threshold"}},
		{"cpu above 100%", with(func(r *Rule) { r.Threshold = 101 }), []string{"rules[0].threshold"}},
		{"unknown direction", with(func(r *Rule) { r.Direction = "up" }), []string{"rules[0].direction"}},
		{"unknown action", with(func(r *Rule) { r.Action.Type = "double" }), []string{"rules[0].action.type"}},
		{"zero change", with(func(r *Rule) { r.Action.Value = 0 }), []string{"rules[0].action.value"}},
		{"change above the limit", with(func(r *Rule) { r.Action.Value = 101 }), []string{"rules[0].action.value"}},
		{"percent", with(func(r *Rule) { r.Action = Action{PercentChange, 50} }), nil},
		{"percent too large", with(func(r *Rule) { r.Action = Action{PercentChange, 1001} }), []string{"rules[0].action.value"}},
		{"exact count within bounds", with(func(r *Rule) { r.Action = Action{ExactCount, 10} }), nil},
		{"exact count outside bounds", with(func(r *Rule) { r.Action = Action{ExactCount, 11} }), []string{"rules[0].action.value"}},
		{"negative cooldown", with(func(r *Rule) { r.Cooldown = -time.Second }), []string{"rules[0].cooldown"}},
		{"zero cooldown", with(func(r *Rule) { r.Cooldown = 0 }), nil},
		{"every problem at once", Profile{Minimum: 1, Maximum: 200, Default: 0, Rules: []Rule{cpuIn, {}}}, []string{
			"maximum", "default", "rules[1].metric", "rules[1].statistic", "rules[1].timeWindow", "rules[1].operator",
			"rules[1].direction", "rules[1].action.type"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.p, 100, time.Minute)
			if got := fields(err); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("problems at %v, want %v\n%v", got, c.want, err)
			}
		})
	}
}

// fields lists the paths of the *FieldErrors in err.
func fields(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			panic(fmt.Sprintf("%v is not a *FieldError", e))
		}
		out = append(out, fe.Field)
	}
	return out
}

func TestTarget(t *testing.T) {
	for _, c := range []struct {
		a    Action
		d    Direction
		n    int
		want int
	}{
		{Action{ChangeCount, 2}, ScaleOut, 3, 5},
		{Action{ChangeCount, 2}, ScaleIn, 3, 1},
		{Action{PercentChange, 50}, ScaleOut, 3, 5}, // 1.5 rounded up
		{Action{PercentChange, 50}, ScaleIn, 3, 1},
		{Action{PercentChange, 10}, ScaleOut, 4, 5}, // at least one
		{Action{PercentChange, 10}, ScaleIn, 4, 3},
		{Action{PercentChange, 100}, ScaleOut, 4, 8},
		{Action{PercentChange, 20}, ScaleOut, 0, 1}, // from nothing
		{Action{ExactCount, 6}, ScaleOut, 3, 6},
		{Action{ExactCount, 6}, ScaleIn, 8, 6},
	} {
		if got := (Rule{Direction: c.d, Action: c.a}).target(c.n); got != c.want {
			t.Errorf("%s %v from %d: %d, want %d", c.d, c.a, c.n, got, c.want)
		}
	}
}

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		op   Operator
		v    float64
		want bool
	}{
		{Greater, 70, false}, {Greater, 70.1, true},
		{GreaterOrEqual, 70, true}, {GreaterOrEqual, 69.9, false},
		{Less, 70, false}, {Less, 69.9, true},
		{LessOrEqual, 70, true}, {LessOrEqual, 70.1, false},
		{Greater, math.NaN(), false}, {LessOrEqual, math.NaN(), false},
		{"!=", 1, false},
	} {
		if got := c.op.Compare(c.v, 70); got != c.want {
			t.Errorf("%v %s 70 = %v", c.v, c.op, got)
		}
	}
}
