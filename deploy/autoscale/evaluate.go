package autoscale

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Input is what Evaluate decides from.
type Input struct {
	Now      time.Time
	Capacity int // the set's capacity now
	// LastAction is the time of the profile's last scale action (any
	// rule's); zero if there was none.
	LastAction time.Time
	// Metrics holds each rule's metric by name, as collected until Now.
	// Samples after Now are ignored.
	Metrics map[string]Series
}

// Outcome is the kind of a Decision.
type Outcome string

// The outcomes.
const (
	ScaledOut Outcome = "scaled out"
	ScaledIn  Outcome = "scaled in"
	// Limits: the capacity was outside [Minimum, Maximum], or below
	// Default with no metric to decide from.
	Limits          Outcome = "limits"
	Cooldown        Outcome = "cooldown"
	FlappingAvoided Outcome = "flapping avoided"
	NoChange        Outcome = "no change"
)

// Decision is what Evaluate decided.
type Decision struct {
	Capacity int  // the capacity to have
	Changed  bool // Capacity differs from Input.Capacity
	Outcome  Outcome
	// Reason says why, for people: the rule, its value and threshold,
	// "rule 0 (cpu average over 5m0s = 82.5 > 70): 3 → 4".
	Reason string
	Rule   int // the index of the deciding rule in Profile.Rules, or -1
}

// Evaluate decides the capacity of a set now, by the rules of the package
// documentation. It is pure.
func Evaluate(p Profile, in Input) Decision {
	n := in.Capacity
	switch {
	case n < p.Minimum:
		return Decision{Capacity: p.Minimum, Changed: true, Outcome: Limits, Rule: -1,
			Reason: fmt.Sprintf("capacity %d is below the minimum: %d → %d", n, n, p.Minimum)}
	case n > p.Maximum:
		return Decision{Capacity: p.Maximum, Changed: true, Outcome: Limits, Rule: -1,
			Reason: fmt.Sprintf("capacity %d is above the maximum: %d → %d", n, n, p.Maximum)}
	}
	obs := make([]Observation, len(p.Rules))
	fires := make([]bool, len(p.Rules))
	anyCovered := false
	for i, r := range p.Rules {
		obs[i] = Observe(r, in.Metrics[r.Metric].Until(in.Now), in.Now)
		fires[i] = obs[i].Covered && r.Operator.Compare(obs[i].Value, r.Threshold)
		anyCovered = anyCovered || obs[i].Covered
	}
	if len(p.Rules) > 0 && !anyCovered && n < p.Default {
		return Decision{Capacity: p.Default, Changed: true, Outcome: Limits, Rule: -1,
			Reason: fmt.Sprintf("no metric to decide from (%s): the default capacity, %d → %d", obs[0].Why, n, p.Default)}
	}
	cooling := func(i int) (time.Time, bool) {
		until := in.LastAction.Add(p.Rules[i].Cooldown)
		return until, !in.LastAction.IsZero() && in.Now.Before(until)
	}
	describe := func(i int) string {
		r := p.Rules[i]
		return fmt.Sprintf("rule %d (%s %s over %s = %s %s %s)", i, r.Metric, r.Statistic, r.TimeWindow, num(obs[i].Value), r.Operator, num(r.Threshold))
	}

	// Scale out: any rule, the largest result.
	best, cooled := -1, -1
	for i, r := range p.Rules {
		if r.Direction != ScaleOut || !fires[i] {
			continue
		}
		if _, c := cooling(i); c {
			cooled = i
			continue
		}
		if best < 0 || r.target(n) > p.Rules[best].target(n) {
			best = i
		}
	}
	if best >= 0 {
		to := min(p.Rules[best].target(n), p.Maximum)
		if to <= n {
			return Decision{Capacity: n, Outcome: NoChange, Rule: best,
				Reason: fmt.Sprintf("%s fires, but capacity %d is at the maximum or above what it asks", describe(best), n)}
		}
		return Decision{Capacity: to, Changed: true, Outcome: ScaledOut, Rule: best,
			Reason: fmt.Sprintf("%s: %d → %d", describe(best), n, to)}
	}
	if cooled >= 0 {
		until, _ := cooling(cooled)
		return Decision{Capacity: n, Outcome: Cooldown, Rule: cooled,
			Reason: fmt.Sprintf("%s fires, but the profile cools down until %s", describe(cooled), stamp(until))}
	}

	// Scale in: every rule, the smallest change.
	var in_ []int
	for i, r := range p.Rules {
		if r.Direction == ScaleIn {
			in_ = append(in_, i)
		}
	}
	all := len(in_) > 0
	for _, i := range in_ {
		all = all && fires[i]
	}
	if !all {
		return Decision{Capacity: n, Outcome: NoChange, Rule: -1, Reason: quiet(p, obs, fires)}
	}
	best = -1
	for _, i := range in_ {
		if until, c := cooling(i); c {
			return Decision{Capacity: n, Outcome: Cooldown, Rule: i,
				Reason: fmt.Sprintf("%s fires, but the profile cools down until %s", describe(i), stamp(until))}
		}
		if best < 0 || p.Rules[i].target(n) > p.Rules[best].target(n) {
			best = i
		}
	}
	to := max(p.Rules[best].target(n), p.Minimum)
	if to >= n {
		return Decision{Capacity: n, Outcome: NoChange, Rule: best,
			Reason: fmt.Sprintf("every scale-in rule fires, %s the least, but capacity %d is at the minimum or below what it asks", describe(best), n)}
	}
	for i, r := range p.Rules {
		if r.Direction != ScaleOut || !obs[i].Covered {
			continue
		}
		if est := estimate(obs[i].Value, n, to); r.Operator.Compare(est, r.Threshold) {
			return Decision{Capacity: n, Outcome: FlappingAvoided, Rule: best,
				Reason: fmt.Sprintf("%s fires, but at %d instances rule %d would scale out again (%s %s estimated %s × %d/%d = %s %s %s): flapping avoided",
					describe(best), to, i, r.Metric, r.Statistic, num(obs[i].Value), n, to, num(est), r.Operator, num(r.Threshold))}
		}
	}
	return Decision{Capacity: to, Changed: true, Outcome: ScaledIn, Rule: best,
		Reason: fmt.Sprintf("%s: %d → %d", describe(best), n, to)}
}

// estimate is a per-instance metric v at n instances carried by m: the same
// total load, v × n, spread over m.
func estimate(v float64, n, m int) float64 {
	if m == 0 {
		if v == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return v * float64(n) / float64(m)
}

// quiet is the reason of a decision that changes nothing because no rule
// acts: each rule and what it saw.
func quiet(p Profile, obs []Observation, fires []bool) string {
	if len(p.Rules) == 0 {
		return "no rules"
	}
	var parts []string
	for i, r := range p.Rules {
		o := obs[i]
		switch {
		case !o.Covered:
			parts = append(parts, fmt.Sprintf("rule %d (scale %s): %s", i, r.Direction, o.Why))
		case fires[i]:
			parts = append(parts, fmt.Sprintf("rule %d (scale %s): %s %s over %s = %s %s %s, fires", i, r.Direction, r.Metric, r.Statistic, r.TimeWindow, num(o.Value), r.Operator, num(r.Threshold)))
		default:
			parts = append(parts, fmt.Sprintf("rule %d (scale %s): %s %s over %s = %s, not %s %s", i, r.Direction, r.Metric, r.Statistic, r.TimeWindow, num(o.Value), r.Operator, num(r.Threshold)))
		}
	}
	return "no change: " + strings.Join(parts, "; ")
}
