package main

import (
	"fmt"
	"time"

	"github.com/kiln-project/kiln/deploy/autoscale"
)

// benchAutoscale measures autoscale's decision latency in simulation: a
// CPU series sampled every 15 s steps from 10% to 90% (and back, for the
// scale-in rule); for each window and evaluation interval it finds, second
// by second and independently of kiln's window code, when the window's
// average crosses the threshold, and when autoscale.Simulate first decides.
// It prints the worst latency as a fraction of the evaluation interval.
// Target (issue 15): at most one interval (a ratio of at most 1.00).
func benchAutoscale() ([]string, error) {
	const sampleEvery, step, end = 15, 900, 3600 // seconds
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	series := func(before, after float64) autoscale.Series {
		s := autoscale.Series{Interval: sampleEvery * time.Second}
		for t := sampleEvery; t <= end; t += sampleEvery {
			v := before
			if t > step {
				v = after
			}
			s.Samples = append(s.Samples, autoscale.Sample{At: at(t), Values: []float64{v, v}})
		}
		return s
	}
	// crossing is the first second at which the mean of the samples in
	// (s-window, s] passes threshold in the rule's direction.
	crossing := func(s autoscale.Series, window int, out bool, threshold float64) int {
		for now := window; now <= end; now++ {
			var sum float64
			n := 0
			for _, x := range s.Samples {
				if t := int(x.At.Sub(t0) / time.Second); t > now-window && t <= now {
					sum, n = sum+x.Values[0], n+1
				}
			}
			if n > 0 && (out && sum/float64(n) > threshold || !out && sum/float64(n) < threshold) {
				return now
			}
		}
		return -1
	}
	var lines []string
	worst := 0.0
	runs := 0
	for _, dir := range []struct {
		out           bool
		before, after float64
	}{{true, 10, 90}, {false, 90, 10}} {
		s := series(dir.before, dir.after)
		for _, window := range []int{60, 300, 600} {
			for _, every := range []int{15, 30, 60} {
				rule := autoscale.Rule{Metric: autoscale.MetricCPU, Statistic: autoscale.Average, TimeWindow: time.Duration(window) * time.Second,
					Operator: autoscale.Greater, Threshold: 70, Direction: autoscale.ScaleOut, Action: autoscale.Action{Type: autoscale.ChangeCount, Value: 1}}
				capacity := 2
				if !dir.out {
					rule.Operator, rule.Threshold, rule.Direction, capacity = autoscale.Less, 30, autoscale.ScaleIn, 10
				}
				p := autoscale.Profile{Minimum: 1, Maximum: 20, Default: 1, Rules: []autoscale.Rule{rule}}
				cross := crossing(s, window, dir.out, rule.Threshold)
				for _, phase := range []int{0, 7, 23} { // evaluations not in step with the samples
					ticks := autoscale.Simulate(p, map[string]autoscale.Series{autoscale.MetricCPU: s},
						autoscale.Run{Start: at(window + phase), End: at(end), Every: time.Duration(every) * time.Second, Capacity: capacity})
					decided := -1
					for _, tk := range ticks {
						if tk.Decision.Changed {
							decided = int(tk.At.Sub(t0) / time.Second)
							break
						}
					}
					if cross < 0 || decided < cross {
						return nil, fmt.Errorf("window %ds, every %ds, phase %ds: crossed at %ds, decided at %ds", window, every, phase, cross, decided)
					}
					runs++
					worst = max(worst, float64(decided-cross)/float64(every))
				}
			}
		}
	}
	lines = append(lines, fmt.Sprintf("decision latency in simulation, worst of %d runs: %.2f of the evaluation interval (target ≤ 1.00)", runs, worst))
	return lines, nil
}
