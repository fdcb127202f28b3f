package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	for _, c := range []struct {
		name    string
		in, out Policy
	}{
		{"all unset", Policy{}, Policy{Mode: Manual, MaxBatchInstancePercent: 20, MaxUnhealthyInstancePercent: 20, MaxUnhealthyUpgradedInstancePercent: 20}},
		{"set fields kept", Policy{Mode: Rolling, MaxBatchInstancePercent: 10, MaxUnhealthyInstancePercent: 50, MaxUnhealthyUpgradedInstancePercent: 5, PauseTimeBetweenBatches: time.Minute, MaxSurge: true},
			Policy{Mode: Rolling, MaxBatchInstancePercent: 10, MaxUnhealthyInstancePercent: 50, MaxUnhealthyUpgradedInstancePercent: 5, PauseTimeBetweenBatches: time.Minute, MaxSurge: true}},
		// The loader's order: defaults first, the file over them, so a
		// written 0 survives.
		{"zero is unset", Policy{Mode: Rolling, MaxUnhealthyUpgradedInstancePercent: 0}, Policy{Mode: Rolling, MaxBatchInstancePercent: 20, MaxUnhealthyInstancePercent: 20, MaxUnhealthyUpgradedInstancePercent: 20}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := c.in
			Default(&got)
			if got != c.out {
				t.Errorf("got %+v, want %+v", got, c.out)
			}
		})
	}
	var p Policy
	Default(&p)
	p.MaxUnhealthyUpgradedInstancePercent = 0 // as the file says
	if err := Validate(p); err != nil {
		t.Errorf("defaults with a written 0: %v", err)
	}
}

func TestValidate(t *testing.T) {
	valid := func(f func(*Policy)) Policy {
		p := Policy{Mode: Rolling}
		Default(&p)
		f(&p)
		return p
	}
	const r = "upgradePolicy.rollingUpgradePolicy."
	for _, c := range []struct {
		name string
		p    Policy
		want []string // field paths, in order
		msg  string   // a part of the message, when it matters
	}{
		{"defaults", valid(func(*Policy) {}), nil, ""},
		{"manual", valid(func(p *Policy) { p.Mode = Manual }), nil, ""},
		{"automatic", valid(func(p *Policy) { p.Mode = Automatic }), nil, ""},
		{"bounds", valid(func(p *Policy) {
			p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent, p.MaxUnhealthyUpgradedInstancePercent, p.PauseTimeBetweenBatches = 5, 5, 0, 0
		}), nil, ""},
		{"upper bounds", valid(func(p *Policy) {
			p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent, p.MaxUnhealthyUpgradedInstancePercent, p.PauseTimeBetweenBatches = 100, 100, 100, time.Hour
		}), nil, ""},
		{"unknown mode", valid(func(p *Policy) { p.Mode = "Blue-Green" }), []string{"upgradePolicy.mode"}, "want Manual, Automatic or Rolling"},
		{"mode in another case", valid(func(p *Policy) { p.Mode = "rolling" }), []string{"upgradePolicy.mode"}, `did you mean Rolling?`},
		{"batch too small", valid(func(p *Policy) { p.MaxBatchInstancePercent = 4 }), []string{r + "maxBatchInstancePercent"}, "5-100, got 4"},
		{"batch too large", valid(func(p *Policy) { p.MaxBatchInstancePercent = 101 }), []string{r + "maxBatchInstancePercent"}, ""},
		{"batch above unhealthy", valid(func(p *Policy) { p.MaxBatchInstancePercent = 30 }), []string{r + "maxBatchInstancePercent"}, "raise maxUnhealthyInstancePercent"},
		{"batch equal to unhealthy", valid(func(p *Policy) { p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent = 50, 50 }), nil, ""},
		{"unhealthy too small", valid(func(p *Policy) { p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent = 5, 4 }), []string{r + "maxUnhealthyInstancePercent"}, ""},
		{"unhealthy too large", valid(func(p *Policy) { p.MaxUnhealthyInstancePercent = 120 }), []string{r + "maxUnhealthyInstancePercent"}, ""},
		{"upgraded negative", valid(func(p *Policy) { p.MaxUnhealthyUpgradedInstancePercent = -1 }), []string{r + "maxUnhealthyUpgradedInstancePercent"}, "0-100"},
		{"upgraded too large", valid(func(p *Policy) { p.MaxUnhealthyUpgradedInstancePercent = 101 }), []string{r + "maxUnhealthyUpgradedInstancePercent"}, ""},
		{"negative pause", valid(func(p *Policy) { p.PauseTimeBetweenBatches = -time.Second }), []string{r + "pauseTimeBetweenBatches"}, ""},
		{"pause too long", valid(func(p *Policy) { p.PauseTimeBetweenBatches = time.Hour + time.Second }), []string{r + "pauseTimeBetweenBatches"}, "0-1h0m0s"},
		{"everything at once", Policy{Mode: "x", MaxBatchInstancePercent: 1, MaxUnhealthyInstancePercent: 1, MaxUnhealthyUpgradedInstancePercent: 200, PauseTimeBetweenBatches: -1},
			[]string{"upgradePolicy.mode", r + "maxBatchInstancePercent", r + "maxUnhealthyInstancePercent", r + "maxUnhealthyUpgradedInstancePercent", r + "pauseTimeBetweenBatches"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.p)
			if got := fields(err); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("problems at %v, want %v (%v)", got, c.want, err)
			}
			if c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)) {
				t.Errorf("error %v does not say %q", err, c.msg)
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

func TestPolicyJSON(t *testing.T) {
	p := Policy{Mode: Rolling, MaxBatchInstancePercent: 10, MaxUnhealthyInstancePercent: 30, MaxUnhealthyUpgradedInstancePercent: 0,
		PauseTimeBetweenBatches: 90 * time.Second, PrioritizeUnhealthyInstances: true, MaxSurge: true}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"mode":"Rolling","maxBatchInstancePercent":10,"maxUnhealthyInstancePercent":30,"maxUnhealthyUpgradedInstancePercent":0,"prioritizeUnhealthyInstances":true,"maxSurge":true,"pauseTimeBetweenBatches":"1m30s"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	for _, bad := range []string{`{"pauseTimeBetweenBatches":"soon"}`, `{"pauseTimeBetweenBatches":5}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", 30 * time.Second: "30s", 2 * time.Minute: "2m", time.Hour: "1h", 90 * time.Minute: "1h30m", 1500 * time.Millisecond: "1.5s"} {
		if got := formatDuration(d); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
		if back, err := parseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("%v: read back as %v, %v", d, back, err)
		}
	}
}
