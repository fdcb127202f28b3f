package autoscale

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Sample is one reading of a metric: one value per instance, each over the
// sampling interval that ends at At. NaN values (an instance that did not
// answer) are left out; a sample with no value left is a hole.
type Sample struct {
	At     time.Time
	Values []float64
}

// Series is one metric of a set: samples in ascending time, one every
// Interval.
type Series struct {
	Interval time.Duration
	Samples  []Sample
}

// Until is the series as it was at t: the samples taken at or before t.
// It shares the samples, it does not copy them.
func (s Series) Until(t time.Time) Series {
	i := sort.Search(len(s.Samples), func(i int) bool { return s.Samples[i].At.After(t) })
	s.Samples = s.Samples[:i]
	return s
}

// Observation is a rule's window at one time.
type Observation struct {
	Value   float64 // the rule's statistic over its window, when Covered
	Samples int     // the samples in the window
	Covered bool
	Why     string // why the window is not covered
}

// Observe computes r's statistic over its window (now-TimeWindow, now] of
// s; see the package documentation for when a window is covered.
func Observe(r Rule, s Series, now time.Time) Observation {
	if s.Interval <= 0 {
		return Observation{Why: fmt.Sprintf("metric %q has no series", r.Metric)}
	}
	start := now.Add(-r.TimeWindow)
	lo := sort.Search(len(s.Samples), func(i int) bool { return s.Samples[i].At.After(start) })
	prev, sum, n := start, 0.0, 0
	for _, smp := range s.Samples[lo:] {
		if smp.At.After(now) {
			break
		}
		v, ok := statistic(r.Statistic, smp.Values)
		if !ok {
			continue // a hole: the gap check below sees it
		}
		if smp.At.Before(prev) {
			return Observation{Why: fmt.Sprintf("metric %q: samples out of order at %s", r.Metric, stamp(smp.At))}
		}
		if smp.At.Sub(prev) > s.Interval {
			// The sample covers the interval before it; what is left is a hole.
			return Observation{Samples: n, Why: fmt.Sprintf("metric %q: nothing sampled from %s to %s (one sample every %s)",
				r.Metric, stamp(prev), stamp(smp.At.Add(-s.Interval)), s.Interval)}
		}
		prev, sum, n = smp.At, sum+v, n+1
	}
	switch age := now.Sub(prev); {
	case n == 0:
		return Observation{Why: fmt.Sprintf("metric %q: no sample in the last %s", r.Metric, r.TimeWindow)}
	case age > s.Interval:
		return Observation{Samples: n, Why: fmt.Sprintf("metric %q: newest sample %s old (one every %s)", r.Metric, age, s.Interval)}
	}
	return Observation{Value: sum / float64(n), Samples: n, Covered: true}
}

// statistic combines one sample's values; false when it has none.
func statistic(st Statistic, values []float64) (float64, bool) {
	var acc float64
	n := 0
	for _, v := range values {
		if math.IsNaN(v) {
			continue
		}
		switch {
		case n == 0:
			acc = v
		case st == Max:
			acc = max(acc, v)
		case st == Min:
			acc = min(acc, v)
		default:
			acc += v
		}
		n++
	}
	if n == 0 {
		return 0, false
	}
	if st != Max && st != Min {
		acc /= float64(n)
	}
	return acc, true
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
