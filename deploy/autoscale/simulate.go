package autoscale

import "time"

// Run is one simulated run of a profile: evaluations every Every from
// Start to End (both included), from Capacity and LastAction.
type Run struct {
	Start, End time.Time
	Every      time.Duration
	Capacity   int
	LastAction time.Time
}

// Tick is one evaluation of a run.
type Tick struct {
	At       time.Time
	Decision Decision
}

// Simulate replays metrics at the run's evaluation interval: each
// evaluation sees only the samples taken until then, and a changed
// capacity takes effect at once (the next evaluation starts from it, and
// the profile's cooldown from that tick). The series do not follow the
// capacity: they are what was measured, or what a test made up. It is
// pure, and returns nil when Every is not positive.
func Simulate(p Profile, metrics map[string]Series, r Run) []Tick {
	if r.Every <= 0 {
		return nil
	}
	var out []Tick
	n, last := r.Capacity, r.LastAction
	for t := r.Start; !t.After(r.End); t = t.Add(r.Every) {
		d := Evaluate(p, Input{Now: t, Capacity: n, LastAction: last, Metrics: metrics})
		if d.Changed {
			n, last = d.Capacity, t
		}
		out = append(out, Tick{At: t, Decision: d})
	}
	return out
}
