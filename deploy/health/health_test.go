package health

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var boot = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func TestDefault(t *testing.T) {
	for _, c := range []struct {
		name    string
		in, out Config
	}{
		{"all unset", Config{}, Config{Interval: 5 * time.Second, Probes: 2, GracePeriod: 10 * time.Second}},
		{"grace follows interval and probes", Config{Interval: 10 * time.Second, Probes: 3}, Config{Interval: 10 * time.Second, Probes: 3, GracePeriod: 30 * time.Second}},
		{"set fields kept", Config{Interval: time.Second, Probes: 1, GracePeriod: time.Minute}, Config{Interval: time.Second, Probes: 1, GracePeriod: time.Minute}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.in
			Default(&got)
			if got != c.out {
				t.Errorf("got %+v, want %+v", got, c.out)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		c    Config
		want []string // field paths, in order
	}{
		{"defaults", Config{Interval: DefaultInterval, Probes: DefaultProbes}, nil},
		{"bounds", Config{Interval: time.Second, Probes: 24, GracePeriod: 2 * time.Hour}, nil},
		{"interval too short", Config{Interval: time.Millisecond, Probes: 2}, []string{"interval"}},
		{"interval too long", Config{Interval: 2 * time.Minute, Probes: 2}, []string{"interval"}},
		{"no probes", Config{Interval: time.Second, Probes: -1}, []string{"probes"}},
		{"too many probes", Config{Interval: time.Second, Probes: 25}, []string{"probes"}},
		{"negative grace", Config{Interval: time.Second, Probes: 2, GracePeriod: -time.Second}, []string{"gracePeriod"}},
		{"everything at once", Config{Probes: 99, GracePeriod: 3 * time.Hour}, []string{"interval", "probes", "gracePeriod"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := fields(Validate(c.c)); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("problems at %v, want %v (%v)", got, c.want, Validate(c.c))
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

// TestNext walks named scenarios probe by probe (one every 5s from boot).
func TestNext(t *testing.T) {
	const ko = "-" // a failure; "+" is a pass
	for _, c := range []struct {
		name  string
		conf  Config
		seq   string   // one result per probe
		want  []Status // the status after each
		final string   // the last Reason, when it matters
	}{
		{"boots healthy", Config{Probes: 2, GracePeriod: 30 * time.Second}, "++",
			[]Status{Starting, Healthy}, "2 probes in a row passed"},
		{"one pass is not enough", Config{Probes: 3, GracePeriod: 30 * time.Second}, "++-++",
			[]Status{Starting, Starting, Starting, Starting, Starting}, "2 of 3 probes in a row passed"},
		{"failures in grace keep it starting", Config{Probes: 2, GracePeriod: 30 * time.Second}, "-----",
			[]Status{Starting, Starting, Starting, Starting, Starting}, "in its grace period until 2025-01-01T12:00:30Z: refused 5"},
		{"after grace, N failures make it unhealthy", Config{Probes: 2, GracePeriod: 12 * time.Second}, "-----",
			[]Status{Starting, Starting, Starting, Unhealthy, Unhealthy}, "refused 5"},
		// The probes at 5s and 10s are excused; the one at 15s, when the grace
		// period ends, counts.
		{"grace failures do not count toward N", Config{Probes: 3, GracePeriod: 15 * time.Second}, "------",
			[]Status{Starting, Starting, Starting, Starting, Unhealthy, Unhealthy}, "refused 6"},
		{"no grace", Config{Probes: 2}, "--", []Status{Starting, Unhealthy}, "refused 2"},
		{"a pass resets the failures", Config{Probes: 2}, "-+-+-+", []Status{Starting, Starting, Starting, Starting, Starting, Starting}, ""},
		{"healthy, one failure tolerated", Config{Probes: 2}, "++-+", []Status{Starting, Healthy, Healthy, Healthy}, ""},
		{"healthy to unhealthy, grace or not", Config{Probes: 2, GracePeriod: time.Hour}, "++--", []Status{Starting, Healthy, Healthy, Unhealthy}, "refused 4"},
		{"unhealthy back to healthy", Config{Probes: 2}, "--+-++", []Status{Starting, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Healthy}, "2 probes in a row passed"},
		{"unhealthy keeps the last failure", Config{Probes: 2}, "---+", []Status{Starting, Unhealthy, Unhealthy, Unhealthy}, "refused 3"},
		{"one probe decides", Config{Probes: 1}, "+-+", []Status{Healthy, Unhealthy, Healthy}, ""},
		{"zero probes act as one", Config{}, "-+", []Status{Unhealthy, Healthy}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.conf.Interval = 5 * time.Second
			s := Start(boot)
			for i, r := range c.seq {
				now := boot.Add(time.Duration(i+1) * 5 * time.Second)
				res := Pass(fmt.Sprintf("ok %d", i+1))
				if string(r) == ko {
					res = Fail(fmt.Sprintf("refused %d", i+1))
				}
				prev := s
				s = c.conf.Next(s, res, now)
				if s.Status != c.want[i] {
					t.Fatalf("probe %d (%s): %s (%s), want %s", i+1, string(r), s.Status, s.Reason, c.want[i])
				}
				if s.Status != prev.Status && !s.Since.Equal(now) || s.Status == prev.Status && !s.Since.Equal(prev.Since) {
					t.Errorf("probe %d: Since %s", i+1, s.Since)
				}
			}
			if c.final != "" && s.Reason != c.final {
				t.Errorf("reason %q, want %q", s.Reason, c.final)
			}
		})
	}
}

// TestNextExhaustive checks Next on every sequence of up to 9 results, for
// several probe counts and grace periods, against the rule written the
// other way round: an instance becomes healthy when its last N results
// passed, and unhealthy when its last N failed, none of them (if it was
// starting) inside the grace period.
func TestNextExhaustive(t *testing.T) {
	const interval = 5 * time.Second
	for probes := 1; probes <= 4; probes++ {
		for _, grace := range []time.Duration{0, 5 * time.Second, 12 * time.Second, 20 * time.Second, time.Minute} {
			conf := Config{Interval: interval, Probes: probes, GracePeriod: grace}
			for n := 1; n <= 9; n++ {
				for bits := 0; bits < 1<<n; bits++ {
					okAt := func(i int) bool { return bits>>i&1 == 1 }
					at := func(i int) time.Time { return boot.Add(time.Duration(i+1) * interval) }
					s, want := Start(boot), Starting
					for i := 0; i < n; i++ {
						r := Fail(fmt.Sprintf("failure %d", i))
						if okAt(i) {
							r = Pass("")
						}
						s = conf.Next(s, r, at(i))
						allPass, allFail := i+1 >= probes, i+1 >= probes
						for j := i - probes + 1; j <= i && j >= 0; j++ {
							allPass = allPass && okAt(j)
							allFail = allFail && !okAt(j) && (want == Healthy || !at(j).Before(boot.Add(grace)))
						}
						switch {
						case want != Healthy && allPass:
							want = Healthy
						case want != Unhealthy && allFail:
							want = Unhealthy
						}
						if s.Status != want {
							t.Fatalf("probes %d, grace %s, results %0*b (lowest bit first) up to %d: %s, want %s", probes, grace, n, bits, i, s.Status, want)
						}
						if want == Unhealthy && !okAt(i) && s.Reason != r.Detail {
							t.Fatalf("unhealthy with reason %q, want the last failure %q", s.Reason, r.Detail)
						}
						if s.Passes != 0 && s.Failures != 0 {
							t.Fatalf("passes %d and failures %d at once", s.Passes, s.Failures)
						}
					}
				}
			}
		}
	}
}

// TestNextPure: Next changes nothing it is given.
func TestNextPure(t *testing.T) {
	s := Start(boot)
	before := s
	Config{Probes: 1}.Next(s, Pass(""), boot.Add(time.Second))
	if s != before {
		t.Error("Next changed its argument")
	}
}
