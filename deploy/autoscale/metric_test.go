package autoscale

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// minute is a series sampled every minute from t0+1m, one value per sample
// and instance: minute(v...) gives samples at 1m, 2m, ...
func minute(values ...[]float64) Series {
	s := Series{Interval: time.Minute}
	for i, v := range values {
		s.Samples = append(s.Samples, Sample{At: at(60 * (i + 1)), Values: v})
	}
	return s
}

func one(vs ...float64) [][]float64 {
	out := make([][]float64, len(vs))
	for i, v := range vs {
		out[i] = []float64{v}
	}
	return out
}

func TestObserve(t *testing.T) {
	nan := math.NaN()
	win := func(st Statistic, w time.Duration) Rule { return Rule{Metric: "cpu", Statistic: st, TimeWindow: w} }
	five := win(Average, 5*time.Minute)
	for _, c := range []struct {
		name    string
		r       Rule
		s       Series
		now     time.Time
		covered bool
		value   float64
		samples int
		why     string
	}{
		{"five samples cover five minutes", five, minute(one(10, 20, 30, 40, 50)...), at(300), true, 30, 5, ""},
		{"only the window counts", five, minute(one(90, 90, 10, 20, 30, 40, 50)...), at(420), true, 30, 5, ""},
		{"the newest may be one interval old", five, minute(one(10, 20, 30, 40, 50)...), at(360), true, 35, 4, ""},
		{"not older", five, minute(one(10, 20, 30, 40, 50)...), at(361), false, 0, 0, `metric "cpu": newest sample 1m1s old (one every 1m0s)`},
		{"a window not covered yet", five, minute(one(10, 20, 30)...), at(240), false, 0, 0, `metric "cpu": nothing sampled from 2025-01-01T11:59:00Z to 2025-01-01T12:00:00Z (one sample every 1m0s)`},
		{"a hole", five, minute([]float64{1}, nil, nil, []float64{1}, []float64{1}, []float64{1}), at(360), false, 0, 0, `metric "cpu": nothing sampled from 2025-01-01T12:01:00Z to 2025-01-01T12:03:00Z (one sample every 1m0s)`},
		{"an instance that did not answer", five, minute([]float64{10, nan}, []float64{20, 40}, []float64{30}, []float64{nan, 40}, []float64{50}), at(300), true, 32, 5, ""},
		{"nobody answered: a hole", five, minute([]float64{10}, []float64{nan, nan}, []float64{30}, []float64{40}, []float64{50}), at(300), false, 0, 0,
			`metric "cpu": nothing sampled from 2025-01-01T12:01:00Z to 2025-01-01T12:02:00Z (one sample every 1m0s)`},
		{"average of instances, then of time", five, minute([]float64{0, 100}, []float64{0, 100}, []float64{50, 50}, []float64{20, 80}, []float64{10, 90}), at(300), true, 50, 5, ""},
		{"max: the busiest instance, averaged", win(Max, 5*time.Minute), minute([]float64{0, 100}, []float64{0, 100}, []float64{50, 50}, []float64{20, 80}, []float64{10, 90}), at(300), true, 84, 5, ""},
		{"min: the idlest instance, averaged", win(Min, 5*time.Minute), minute([]float64{0, 100}, []float64{0, 100}, []float64{50, 50}, []float64{20, 80}, []float64{10, 90}), at(300), true, 16, 5, ""},
		{"future samples ignored", five, minute(one(10, 20, 30, 40, 50, 99)...), at(300), true, 30, 5, ""},
		{"no series", five, Series{}, at(300), false, 0, 0, `metric "cpu" has no series`},
		{"no samples", five, Series{Interval: time.Minute}, at(300), false, 0, 0, `metric "cpu": no sample in the last 5m0s`},
		{"all samples too old", five, minute(one(10, 20)...), at(1000), false, 0, 0, `metric "cpu": no sample in the last 5m0s`},
		{"out of order", five, Series{Interval: time.Minute, Samples: []Sample{{at(60), []float64{1}}, {at(120), []float64{1}}, {at(180), []float64{1}}, {at(240), []float64{1}}, {at(200), []float64{1}}}},
			at(300), false, 0, 0, `metric "cpu": samples out of order at 2025-01-01T12:03:20Z`},
		{"one-minute window, one sample", win(Average, time.Minute), minute(one(10, 20, 30)...), at(180), true, 30, 1, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := Observe(c.r, c.s, c.now)
			if o.Covered != c.covered || o.Why != c.why || (c.covered && (o.Value != c.value || o.Samples != c.samples)) {
				t.Errorf("got %+v\nwant covered=%v value=%v samples=%d why=%q", o, c.covered, c.value, c.samples, c.why)
			}
		})
	}
}

func TestUntil(t *testing.T) {
	s := minute(one(1, 2, 3)...)
	for _, c := range []struct {
		t    time.Time
		want int
	}{{at(0), 0}, {at(60), 1}, {at(119), 1}, {at(180), 3}, {at(999), 3}} {
		if got := len(s.Until(c.t).Samples); got != c.want {
			t.Errorf("Until(%s): %d samples, want %d", c.t, got, c.want)
		}
	}
}
