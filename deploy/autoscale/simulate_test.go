package autoscale

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// shape is a made-up load: the per-instance values at second s of a run,
// nil for a sample that is missing.
type shape struct {
	name string
	at   func(s int) []float64
}

const runLength = 1800 // seconds

var shapes = []shape{
	{"step up", func(s int) []float64 { return pick(s < 600, 20, 90) }},
	{"step down", func(s int) []float64 { return pick(s < 600, 90, 20) }},
	{"ramp", func(s int) []float64 { return []float64{float64(s) / runLength * 100} }},
	{"wave", func(s int) []float64 { return []float64{50 + 45*math.Sin(2*math.Pi*float64(s)/700)} }},
	{"spike", func(s int) []float64 { return pick(s < 600 || s >= 660, 10, 95) }},
	{"two instances", func(s int) []float64 {
		if s < 500 {
			return []float64{30, 30}
		}
		return []float64{50, 100, math.NaN()}
	}},
	{"holes", func(s int) []float64 {
		if s >= 900 && s < 1000 {
			return nil
		}
		return pick(s < 400 || s >= 1300, 20, 90)
	}},
	{"late start", func(s int) []float64 {
		if s < 300 {
			return nil
		}
		return pick(s%400 < 200, 10, 95)
	}},
}

func pick(first bool, a, b float64) []float64 {
	if first {
		return []float64{a}
	}
	return []float64{b}
}

// sampled is a shape sampled every interval seconds over the run.
func sampled(sh shape, interval int) Series {
	s := Series{Interval: time.Duration(interval) * time.Second}
	for t := interval; t <= runLength; t += interval {
		s.Samples = append(s.Samples, Sample{At: at(t), Values: sh.at(t)})
	}
	return s
}

// oracle decides a rule's condition by brute force, written independently
// of Observe: every second of the window (now-w, now] lies in some sample's
// interval (its At minus the series' interval, At], or after the newest
// sample when that is at most one interval old; at least one sample is in
// the window; and the mean over the window's samples of the instances'
// average passes the operator.
type oracle struct {
	iv   int
	ats  []int     // seconds of the samples with a value
	vals []float64 // their instances' average
	// gaps[p] counts the seconds up to p that no sample's interval holds.
	gaps []int
}

func newOracle(s Series) *oracle {
	o := &oracle{iv: int(s.Interval / time.Second), gaps: make([]int, runLength+1)}
	inGrain := make([]bool, runLength+1)
	for _, smp := range s.Samples {
		if v, ok := statistic(Average, smp.Values); ok {
			a := int(smp.At.Sub(t0) / time.Second)
			o.ats, o.vals = append(o.ats, a), append(o.vals, v)
			for p := max(a-o.iv+1, 0); p <= a; p++ {
				inGrain[p] = true
			}
		}
	}
	for p := 1; p <= runLength; p++ {
		o.gaps[p] = o.gaps[p-1]
		if !inGrain[p] {
			o.gaps[p]++
		}
	}
	return o
}

func (o *oracle) holds(w, now int, op Operator, threshold float64) bool {
	newest, sum, n := -1, 0.0, 0
	for i, a := range o.ats {
		if a > now {
			break
		}
		newest = a
		if a > now-w {
			sum, n = sum+o.vals[i], n+1
		}
	}
	if n == 0 || now-newest > o.iv {
		return false
	}
	// Seconds up to the newest sample need a sample's interval; after it
	// the tail rule above holds them.
	if from := now - w; from >= 0 && o.gaps[newest]-o.gaps[from] > 0 || from < 0 {
		return false
	}
	return op.Compare(sum/float64(n), threshold)
}

// TestSimulateLatency is the performance target: in simulation, a
// decision comes at most one evaluation interval after the window's
// statistic crosses the threshold. For every shape, sampling interval,
// window, evaluation interval and phase of the evaluations, in both
// directions, it checks against the brute-force condition that (1) a rule
// acts at an evaluation exactly when its condition holds then, and (2)
// every time the condition starts to hold and keeps holding for an
// evaluation interval, a decision follows within that interval.
func TestSimulateLatency(t *testing.T) {
	type dir struct {
		d         Direction
		op        Operator
		threshold float64
		want      Outcome
		capacity  int
	}
	dirs := []dir{{ScaleOut, Greater, 70, ScaledOut, 1}, {ScaleIn, Less, 30, ScaledIn, 1000}}
	cases, onsets := 0, 0
	for _, sh := range shapes {
		for _, iv := range []int{10, 15, 60} {
			series := sampled(sh, iv)
			or := newOracle(series)
			for _, w := range []int{60, 120, 300, 600} {
				if w < iv {
					continue
				}
				for _, d := range dirs {
					// The condition second by second; onsets are where it
					// becomes true.
					cond := make([]bool, runLength+1)
					for s := range cond {
						cond[s] = or.holds(w, s, d.op, d.threshold)
					}
					rule := Rule{Metric: "m", Statistic: Average, TimeWindow: time.Duration(w) * time.Second, Operator: d.op,
						Threshold: d.threshold, Direction: d.d, Action: Action{ChangeCount, 1}}
					p := Profile{Minimum: 0, Maximum: 1000, Default: 0, Rules: []Rule{rule}}
					for _, every := range []int{10, 15, 30, 45, 60, 90} {
						if time.Duration(every)*time.Second > rule.TimeWindow {
							continue // Validate refuses it
						}
						for _, phase := range []int{0, 7, 23} {
							cases++
							name := fmt.Sprintf("%s, sample every %ds, %ds window, scale %s, evaluated every %ds from %ds", sh.name, iv, w, d.d, every, phase)
							ticks := Simulate(p, map[string]Series{"m": series}, Run{Start: at(phase), End: at(runLength), Every: time.Duration(every) * time.Second, Capacity: d.capacity})
							acted := map[int]bool{}
							for _, tk := range ticks {
								s := int(tk.At.Sub(t0) / time.Second)
								got := tk.Decision.Outcome == d.want
								if got != cond[s] {
									t.Fatalf("%s: at %ds %s (%s), the condition holds: %v", name, s, tk.Decision.Outcome, tk.Decision.Reason, cond[s])
								}
								acted[s] = got
							}
							for s := phase + 1; s+every <= runLength; s++ {
								if !cond[s] || cond[s-1] {
									continue // not an onset
								}
								steady := true
								for u := s; u <= s+every; u++ {
									steady = steady && cond[u]
								}
								if !steady {
									continue // a blip shorter than an evaluation interval may be missed
								}
								onsets++
								found := false
								for u := s; u <= s+every; u++ {
									found = found || acted[u]
								}
								if !found {
									t.Fatalf("%s: the condition holds from %ds, no decision by %ds", name, s, s+every)
								}
							}
						}
					}
				}
			}
		}
	}
	if onsets < 1000 {
		t.Errorf("only %d onsets checked: the shapes no longer cross their thresholds", onsets)
	}
	t.Logf("%d runs, %d onsets", cases, onsets)
}

// TestSimulate replays an hour of a busy then quiet set with the usual
// rules: out one instance at a time, a cooldown apart, until the load
// stops; then in, a cooldown apart, until the flapping check holds it.
func TestSimulate(t *testing.T) {
	p := Profile{Minimum: 1, Maximum: 5, Default: 2, Rules: []Rule{cpuOut, cpuIn}}
	// Busy for 25 minutes, then idle.
	var vs [][]float64
	for m := 1; m <= 60; m++ {
		vs = append(vs, pick(m <= 25, 90, 8))
	}
	ticks := Simulate(p, map[string]Series{"cpu": minute(vs...)}, Run{Start: at(0), End: at(3600), Every: time.Minute, Capacity: 2})
	var changes []string
	for _, tk := range ticks {
		if tk.Decision.Changed || tk.Decision.Outcome == FlappingAvoided {
			changes = append(changes, fmt.Sprintf("%dm %s %d", int(tk.At.Sub(t0)/time.Minute), tk.Decision.Outcome, tk.Decision.Capacity))
		}
	}
	want := []string{
		"5m scaled out 3",                      // the first covered window
		"10m scaled out 4", "15m scaled out 5", // a cooldown apart, up to the maximum
		"29m scaled in 4", // the first window under 30% on average (90, 8, 8, 8, 8)
		"34m scaled in 3", "39m scaled in 2", "44m scaled in 1",
	}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("got  %q\nwant %q", changes, want)
	}
	if Simulate(p, nil, Run{Every: 0}) != nil {
		t.Error("a run without an interval evaluated")
	}
}

// TestSimulateFlapping: a steady 26% on 3 instances scales in to 2 (39%
// there, under 50), not to 1 (52%, over 50: it would come straight back).
// The series does not follow the capacity, so the check sees 26% again.
func TestSimulateFlapping(t *testing.T) {
	out := cpuOut
	out.Threshold = 50
	p := Profile{Minimum: 1, Maximum: 5, Default: 1, Rules: []Rule{out, cpuIn}}
	ticks := Simulate(p, map[string]Series{"cpu": flat(26)}, Run{Start: at(300), End: at(600), Every: time.Minute, Capacity: 3})
	var got []string
	for _, tk := range ticks {
		got = append(got, fmt.Sprintf("%s %d", tk.Decision.Outcome, tk.Decision.Capacity))
	}
	want := []string{"scaled in 2", "cooldown 2", "cooldown 2", "cooldown 2", "cooldown 2", "flapping avoided 2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
