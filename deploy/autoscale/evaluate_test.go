package autoscale

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// flat is a series of one metric, every minute from t0+1m to t0+10m, each
// sample the given per-instance values.
func flat(values ...float64) Series {
	var vs [][]float64
	for range 10 {
		vs = append(vs, values)
	}
	return minute(vs...)
}

func TestEvaluate(t *testing.T) {
	now := at(600) // ten minutes of samples: every five-minute window covered
	rule := func(r Rule, f func(*Rule)) Rule { f(&r); return r }
	out2 := rule(cpuOut, func(r *Rule) { r.Action.Value = 2 })
	outPct := rule(cpuOut, func(r *Rule) { r.Action = Action{PercentChange, 50} })
	queueOut := Rule{Metric: "queue", Statistic: Average, TimeWindow: 5 * time.Minute, Operator: GreaterOrEqual, Threshold: 100,
		Direction: ScaleOut, Action: Action{ExactCount, 8}}
	queueIn := rule(queueOut, func(r *Rule) {
		r.Operator, r.Threshold, r.Direction, r.Action = Less, 10, ScaleIn, Action{ChangeCount, 2}
	})
	in3 := rule(cpuIn, func(r *Rule) { r.Action.Value = 3 })
	std := Profile{Minimum: 1, Maximum: 10, Default: 2, Rules: []Rule{cpuOut, cpuIn}}
	for _, c := range []struct {
		name     string
		p        Profile
		capacity int
		last     time.Time
		metrics  map[string]Series
		want     Decision
		reason   string // a part of the Reason that must be there
	}{
		{"busy: out by one", std, 3, time.Time{}, map[string]Series{"cpu": flat(80)},
			Decision{4, true, ScaledOut, "rule 0 (cpu average over 5m0s = 80 > 70): 3 → 4", 0}, ""},
		{"idle: in by one", std, 3, time.Time{}, map[string]Series{"cpu": flat(10)},
			Decision{2, true, ScaledIn, "rule 1 (cpu average over 5m0s = 10 < 30): 3 → 2", 1}, ""},
		{"between: no change", std, 3, time.Time{}, map[string]Series{"cpu": flat(50)},
			Decision{3, false, NoChange, "no change: rule 0 (scale out): cpu average over 5m0s = 50, not > 70; rule 1 (scale in): cpu average over 5m0s = 50, not < 30", -1}, ""},
		{"below the minimum", std, 0, time.Time{}, map[string]Series{"cpu": flat(10)},
			Decision{1, true, Limits, "capacity 0 is below the minimum: 0 → 1", -1}, ""},
		{"above the maximum, even in cooldown", std, 12, now.Add(-time.Minute), map[string]Series{"cpu": flat(80)},
			Decision{10, true, Limits, "capacity 12 is above the maximum: 12 → 10", -1}, ""},
		{"no metrics, below default", std, 1, time.Time{}, nil,
			Decision{2, true, Limits, `no metric to decide from (metric "cpu" has no series): the default capacity, 1 → 2`, -1}, ""},
		{"no metrics, at default", std, 2, time.Time{}, nil,
			Decision{2, false, NoChange, `no change: rule 0 (scale out): metric "cpu" has no series; rule 1 (scale in): metric "cpu" has no series`, -1}, ""},
		{"no metrics, above default: kept", std, 5, time.Time{}, nil, Decision{Capacity: 5, Outcome: NoChange, Rule: -1}, "has no series"},
		{"no rules", Profile{Minimum: 1, Maximum: 3, Default: 2}, 1, time.Time{}, nil, Decision{1, false, NoChange, "no rules", -1}, ""},
		{"a window not covered decides nothing", std, 3, time.Time{}, map[string]Series{"cpu": {Interval: time.Minute, Samples: []Sample{{at(420), []float64{90}}, {at(480), []float64{90}}, {at(540), []float64{90}}, {at(600), []float64{90}}}}},
			Decision{Capacity: 3, Outcome: NoChange, Rule: -1}, "nothing sampled from 2025-01-01T12:05:00Z to 2025-01-01T12:06:00Z"},
		{"out: any rule, the largest", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{cpuOut, out2, queueOut}}, 3, time.Time{},
			map[string]Series{"cpu": flat(80), "queue": flat(150)}, Decision{8, true, ScaledOut, "rule 2 (queue average over 5m0s = 150 >= 100): 3 → 8", 2}, ""},
		{"out: the first of equal results", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{cpuOut, out2, outPct}}, 4, time.Time{},
			map[string]Series{"cpu": flat(80)}, Decision{Capacity: 6, Changed: true, Outcome: ScaledOut, Rule: 1}, "rule 1"},
		{"out: one rule is enough", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{cpuOut, queueOut}}, 3, time.Time{},
			map[string]Series{"cpu": flat(50), "queue": flat(150)}, Decision{Capacity: 8, Changed: true, Outcome: ScaledOut, Rule: 1}, ""},
		{"out: clamped to the maximum", Profile{Minimum: 1, Maximum: 4, Default: 1, Rules: []Rule{out2}}, 3, time.Time{},
			map[string]Series{"cpu": flat(80)}, Decision{4, true, ScaledOut, "rule 0 (cpu average over 5m0s = 80 > 70): 3 → 4", 0}, ""},
		{"out: at the maximum", Profile{Minimum: 1, Maximum: 3, Default: 1, Rules: []Rule{cpuOut, cpuIn}}, 3, time.Time{},
			map[string]Series{"cpu": flat(80)}, Decision{Capacity: 3, Outcome: NoChange, Rule: 0}, "at the maximum"},
		{"out: an exact count below the capacity", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{queueOut}}, 9, time.Time{},
			map[string]Series{"queue": flat(150)}, Decision{Capacity: 9, Outcome: NoChange, Rule: 0}, "above what it asks"},
		{"out wins over in", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{queueOut, cpuIn}}, 3, time.Time{},
			map[string]Series{"cpu": flat(10), "queue": flat(150)}, Decision{Capacity: 8, Changed: true, Outcome: ScaledOut, Rule: 0}, ""},
		{"in: only when every rule fires", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{cpuIn, queueIn}}, 5, time.Time{},
			map[string]Series{"cpu": flat(10), "queue": flat(50)}, Decision{Capacity: 5, Outcome: NoChange, Rule: -1},
			"rule 0 (scale in): cpu average over 5m0s = 10 < 30, fires; rule 1 (scale in): queue average over 5m0s = 50, not < 10"},
		{"in: every rule fires, the smallest change", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{in3, queueIn}}, 5, time.Time{},
			map[string]Series{"cpu": flat(10), "queue": flat(5)}, Decision{3, true, ScaledIn, "rule 1 (queue average over 5m0s = 5 < 10): 5 → 3", 1}, ""},
		{"in: a rule without data stops it", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{cpuIn, queueIn}}, 5, time.Time{},
			map[string]Series{"cpu": flat(10)}, Decision{Capacity: 5, Outcome: NoChange, Rule: -1}, `rule 1 (scale in): metric "queue" has no series`},
		{"in: clamped to the minimum", Profile{Minimum: 2, Maximum: 10, Default: 2, Rules: []Rule{in3}}, 4, time.Time{},
			map[string]Series{"cpu": flat(10)}, Decision{Capacity: 2, Changed: true, Outcome: ScaledIn, Rule: 0}, "4 → 2"},
		{"in: at the minimum", std, 1, time.Time{}, map[string]Series{"cpu": flat(10)},
			Decision{Capacity: 1, Outcome: NoChange, Rule: 1}, "at the minimum"},
		{"in: to zero", Profile{Minimum: 0, Maximum: 10, Default: 0, Rules: []Rule{cpuIn}}, 1, time.Time{},
			map[string]Series{"cpu": flat(0)}, Decision{Capacity: 0, Changed: true, Outcome: ScaledIn, Rule: 0}, ""},
		{"in: by percent, rounded up", Profile{Minimum: 0, Maximum: 10, Default: 0, Rules: []Rule{rule(cpuIn, func(r *Rule) { r.Action = Action{PercentChange, 25} })}}, 5, time.Time{},
			map[string]Series{"cpu": flat(5)}, Decision{Capacity: 3, Changed: true, Outcome: ScaledIn, Rule: 0}, ""},
		{"in: to an exact count above the capacity", Profile{Minimum: 0, Maximum: 10, Default: 0, Rules: []Rule{rule(cpuIn, func(r *Rule) { r.Action = Action{ExactCount, 6} })}}, 5, time.Time{},
			map[string]Series{"cpu": flat(5)}, Decision{Capacity: 5, Outcome: NoChange, Rule: 0}, "below what it asks"},
		{"cooldown: out waits", std, 3, now.Add(-4 * time.Minute), map[string]Series{"cpu": flat(80)},
			Decision{3, false, Cooldown, "rule 0 (cpu average over 5m0s = 80 > 70) fires, but the profile cools down until 2025-01-01T12:11:00Z", 0}, ""},
		{"cooldown: over", std, 3, now.Add(-5 * time.Minute), map[string]Series{"cpu": flat(80)},
			Decision{Capacity: 4, Changed: true, Outcome: ScaledOut, Rule: 0}, ""},
		{"cooldown: in waits", std, 3, now.Add(-time.Minute), map[string]Series{"cpu": flat(10)},
			Decision{Capacity: 3, Outcome: Cooldown, Rule: 1}, "cools down until 2025-01-01T12:14:00Z"},
		{"cooldown: per rule, one clock", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{rule(out2, func(r *Rule) { r.Cooldown = 10 * time.Minute }), cpuOut}}, 3, now.Add(-6 * time.Minute),
			map[string]Series{"cpu": flat(80)}, Decision{Capacity: 4, Changed: true, Outcome: ScaledOut, Rule: 1}, ""},
		{"flapping: 3 at 40% would be 2 at 60%, fine", std, 3, time.Time{}, map[string]Series{"cpu": flat(20)},
			Decision{Capacity: 2, Changed: true, Outcome: ScaledIn, Rule: 1}, ""},
		{"flapping avoided: 2 at 29% would be 1 at 58%", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{
			rule(cpuOut, func(r *Rule) { r.Threshold = 50 }), cpuIn}}, 2, time.Time{}, map[string]Series{"cpu": flat(29)},
			Decision{2, false, FlappingAvoided, "rule 1 (cpu average over 5m0s = 29 < 30) fires, but at 1 instances rule 0 would scale out again (cpu average estimated 29 × 2/1 = 58 > 50): flapping avoided", 1}, ""},
		{"flapping: on the threshold is not over it", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{
			rule(cpuOut, func(r *Rule) { r.Threshold = 50 }), cpuIn}}, 2, time.Time{}, map[string]Series{"cpu": flat(25)},
			Decision{Capacity: 1, Changed: true, Outcome: ScaledIn, Rule: 1}, ""},
		{"flapping: another metric's rule", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{
			rule(queueOut, func(r *Rule) { r.Action = Action{ChangeCount, 1} }), cpuIn}}, 4, time.Time{}, map[string]Series{"cpu": flat(10), "queue": flat(80)},
			Decision{Capacity: 4, Outcome: FlappingAvoided, Rule: 1}, "queue average estimated 80 × 4/3 = 106.7 >= 100"},
		{"flapping: to zero with load left", Profile{Minimum: 0, Maximum: 10, Default: 0, Rules: []Rule{cpuOut, cpuIn}}, 1, time.Time{},
			map[string]Series{"cpu": flat(5)}, Decision{Capacity: 1, Outcome: FlappingAvoided, Rule: 1}, "= +Inf > 70"},
		{"flapping: a scale-out rule without data is not estimated", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{queueOut, cpuIn}}, 2, time.Time{},
			map[string]Series{"cpu": flat(10)}, Decision{Capacity: 1, Changed: true, Outcome: ScaledIn, Rule: 1}, ""},
		{"max statistic", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{rule(cpuOut, func(r *Rule) { r.Statistic = Max })}}, 2, time.Time{},
			map[string]Series{"cpu": flat(40, 90)}, Decision{Capacity: 3, Changed: true, Outcome: ScaledOut, Rule: 0}, "cpu max over 5m0s = 90 > 70"},
		{"min statistic", Profile{Minimum: 1, Maximum: 10, Default: 1, Rules: []Rule{rule(cpuIn, func(r *Rule) { r.Statistic = Min })}}, 2, time.Time{},
			map[string]Series{"cpu": flat(10, 90)}, Decision{Capacity: 1, Changed: true, Outcome: ScaledIn, Rule: 0}, "cpu min over 5m0s = 10 < 30"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Evaluate(c.p, Input{Now: now, Capacity: c.capacity, LastAction: c.last, Metrics: c.metrics})
			want := c.want
			if c.want.Reason == "" {
				want.Reason = got.Reason // checked by part below
			}
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if !strings.Contains(got.Reason, c.reason) {
				t.Errorf("reason %q does not say %q", got.Reason, c.reason)
			}
		})
	}
}

// TestEvaluateInvariants evaluates many random profiles, capacities and
// series (a fixed seed: the same cases every run) and checks what must hold
// whatever the rules say.
func TestEvaluateInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 6))
	stats := []Statistic{Average, Max, Min}
	ops := []Operator{Greater, GreaterOrEqual, Less, LessOrEqual}
	types := []ActionType{ChangeCount, PercentChange, ExactCount}
	for i := range 20000 {
		lo := rng.IntN(5)
		p := Profile{Minimum: lo, Maximum: lo + rng.IntN(10), Default: lo}
		p.Default += rng.IntN(p.Maximum - lo + 1)
		for range rng.IntN(4) {
			r := Rule{Metric: []string{"cpu", "queue"}[rng.IntN(2)], Statistic: stats[rng.IntN(3)],
				TimeWindow: time.Duration(1+rng.IntN(6)) * time.Minute, Operator: ops[rng.IntN(4)], Threshold: float64(rng.IntN(100)),
				Direction: []Direction{ScaleOut, ScaleIn}[rng.IntN(2)], Cooldown: time.Duration(rng.IntN(10)) * time.Minute}
			r.Action.Type = types[rng.IntN(3)]
			r.Action.Value = 1 + rng.IntN(3)
			if r.Action.Type == ExactCount {
				r.Action.Value = p.Minimum + rng.IntN(p.Maximum-p.Minimum+1)
			}
			p.Rules = append(p.Rules, r)
		}
		metrics := map[string]Series{}
		for _, m := range []string{"cpu", "queue"} {
			if rng.IntN(5) == 0 {
				continue
			}
			var vs [][]float64
			for range 10 {
				var s []float64
				for range 1 + rng.IntN(3) {
					s = append(s, float64(rng.IntN(101)))
				}
				if rng.IntN(20) == 0 {
					s = nil
				}
				vs = append(vs, s)
			}
			metrics[m] = minute(vs...)
		}
		in := Input{Now: at(600), Capacity: rng.IntN(16), Metrics: metrics}
		if rng.IntN(2) == 0 {
			in.LastAction = at(600 - 60*rng.IntN(10))
		}
		d := Evaluate(p, in)
		fail := func(why string) {
			t.Fatalf("case %d: %s\nprofile %+v\ninput capacity %d, last %s\ndecision %+v", i, why, p, in.Capacity, in.LastAction, d)
		}
		switch {
		case d.Changed != (d.Capacity != in.Capacity):
			fail("Changed disagrees with Capacity")
		case d.Capacity < p.Minimum || d.Capacity > p.Maximum:
			fail("outside [Minimum, Maximum]")
		case d.Reason == "":
			fail("no reason")
		case d.Rule < -1 || d.Rule >= len(p.Rules):
			fail("no such rule")
		case d.Outcome == ScaledOut && (d.Capacity <= in.Capacity || p.Rules[d.Rule].Direction != ScaleOut):
			fail("a scale-out that is not one")
		case d.Outcome == ScaledIn && (d.Capacity >= in.Capacity || p.Rules[d.Rule].Direction != ScaleIn):
			fail("a scale-in that is not one")
		case d.Changed && d.Outcome != ScaledOut && d.Outcome != ScaledIn && d.Outcome != Limits:
			fail("changed without scaling")
		case (d.Outcome == ScaledOut || d.Outcome == ScaledIn) && !in.LastAction.IsZero() && in.Now.Sub(in.LastAction) < p.Rules[d.Rule].Cooldown:
			fail("acted in its cooldown")
		}
		if d.Outcome == ScaledIn {
			// Every scale-in rule fired, and no scale-out rule would fire
			// at the new capacity.
			for j, r := range p.Rules {
				o := Observe(r, metrics[r.Metric], in.Now)
				if r.Direction == ScaleIn && !(o.Covered && r.Operator.Compare(o.Value, r.Threshold)) {
					fail("scaled in though a scale-in rule does not fire")
				}
				if r.Direction == ScaleOut && o.Covered && r.Operator.Compare(estimate(o.Value, in.Capacity, d.Capacity), r.Threshold) {
					fail(fmt.Sprintf("scaled in to a flapping capacity (rule %d)", j))
				}
			}
		}
		// Pure: the same again.
		if again := Evaluate(p, in); again != d {
			fail("a second evaluation differs")
		}
	}
}

// TestEvaluatePure: Evaluate leaves what it is given as it was.
func TestEvaluatePure(t *testing.T) {
	p := Profile{Minimum: 1, Maximum: 10, Default: 2, Rules: []Rule{cpuOut, cpuIn}}
	m := map[string]Series{"cpu": minute([]float64{10, math.NaN()}, []float64{20}, []float64{30}, nil, []float64{50})}
	pc := Profile{Minimum: 1, Maximum: 10, Default: 2, Rules: []Rule{cpuOut, cpuIn}}
	before := m["cpu"].Samples[0].Values[0]
	Evaluate(p, Input{Now: at(300), Capacity: 3, Metrics: m})
	if !reflect.DeepEqual(p, pc) || m["cpu"].Samples[0].Values[0] != before || len(m["cpu"].Samples) != 5 {
		t.Error("Evaluate changed its input")
	}
}

func TestEstimate(t *testing.T) {
	for _, c := range []struct {
		v    float64
		n, m int
		want float64
	}{{60, 3, 2, 90}, {30, 2, 1, 60}, {0, 1, 0, 0}, {5, 1, 0, math.Inf(1)}, {50, 4, 4, 50}} {
		if got := estimate(c.v, c.n, c.m); got != c.want {
			t.Errorf("estimate(%v, %d, %d) = %v, want %v", c.v, c.n, c.m, got, c.want)
		}
	}
}
