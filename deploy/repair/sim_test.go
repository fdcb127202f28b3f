package repair

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy/health"
)

// world is a simulated set and controller, a second a tick: instances
// fail when the scenario says, a replaced one is gone for goneTicks, and a
// repaired one boots for bootTicks and comes back as the scenario's
// comeBack says.
type world struct {
	t         *testing.T
	now       time.Time
	capacity  int
	inst      map[string]*body
	goneTicks int
	bootTicks int
	// comeBack is the failure a repaired instance comes back with ("" for
	// healthy).
	comeBack func(name string, a Action) string
	history  []Repair
	resumed  time.Time
	orders   []Repair // every order, for the checks
	log      []string
}

type body struct {
	name      string
	protected bool
	gone      int       // ticks until a replaced instance exists again
	booted    time.Time // zero: running since the start
	failure   string    // what it fails with once booted ("" for nothing)
	health    health.State
}

func newWorld(t *testing.T, n int) *world {
	w := &world{t: t, now: t0, capacity: n, inst: map[string]*body{}, goneTicks: 2, bootTicks: 5,
		comeBack: func(string, Action) string { return "" }}
	for i := range n {
		name := fmt.Sprintf("web-%d", i)
		w.inst[name] = &body{name: name, health: health.State{Status: health.Healthy, Since: t0.Add(-time.Hour), Booted: t0.Add(-time.Hour)}}
	}
	return w
}

// fail makes an instance unhealthy now, with reason.
func (w *world) fail(name, reason string) {
	b := w.inst[name]
	b.health = health.State{Status: health.Unhealthy, Reason: reason, Since: w.now, Booted: b.health.Booted}
}

// heal makes an instance healthy now.
func (w *world) heal(name string) {
	b := w.inst[name]
	b.health = health.State{Status: health.Healthy, Reason: "2 probes in a row passed", Since: w.now, Booted: b.health.Booted}
}

func (w *world) observe() []Instance {
	var out []Instance
	for _, name := range slices.Sorted(maps.Keys(w.inst)) {
		b := w.inst[name]
		if b.gone > 0 {
			continue
		}
		if b.health.Status == health.Starting && w.now.Sub(b.booted) >= time.Duration(w.bootTicks)*time.Second {
			if b.failure != "" {
				b.health = health.State{Status: health.Unhealthy, Reason: b.failure, Since: w.now, Booted: b.booted}
			} else {
				b.health = health.State{Status: health.Healthy, Reason: "2 probes in a row passed", Since: w.now, Booted: b.booted}
			}
		}
		out = append(out, Instance{Name: name, Health: b.health, ProtectFromScaleSetActions: b.protected})
	}
	return out
}

// step decides once and carries the orders out; it checks the limit of
// repairs under way.
func (w *world) step(p Policy) Decision {
	w.t.Helper()
	in := Input{Set: "web", Now: w.now, Capacity: w.capacity, Instances: w.observe(), History: w.history, Resumed: w.resumed}
	d := Decide(p, in)
	// The history survives its JSON, as the controller keeps it.
	b, err := json.Marshal(d.History)
	if err != nil {
		w.t.Fatal(err)
	}
	w.history = nil
	if err := json.Unmarshal(b, &w.history); err != nil {
		w.t.Fatal(err)
	}
	under := 0
	for _, r := range w.history {
		if r.InFlight() {
			under++
		}
	}
	if limit := max(1, w.capacity*MaxPercent/100); under > limit {
		w.t.Fatalf("%s: %d repairs under way, at most %d\n%s", w.now.Format("15:04:05"), under, limit, strings.Join(w.log, "\n"))
	}
	for _, o := range d.Repair {
		b := w.inst[o.Instance]
		if b.protected {
			w.t.Fatalf("%s is protected, and repaired", o.Instance)
		}
		w.orders = append(w.orders, Repair{Instance: o.Instance, Action: o.Action, At: w.now, Reason: o.Why})
		w.log = append(w.log, fmt.Sprintf("%s %s %s: %s", w.now.Format("15:04:05"), o.Action, o.Instance, o.Why))
		b.failure = w.comeBack(o.Instance, o.Action)
		b.booted = w.now
		b.health = health.Start(w.now)
		if o.Action == Replace {
			b.gone = w.goneTicks
		}
	}
	for _, b := range w.inst {
		if b.gone > 0 {
			b.gone--
			if b.gone == 0 {
				b.booted, b.health = w.now.Add(time.Second), health.Start(w.now.Add(time.Second))
			}
		}
	}
	w.now = w.now.Add(time.Second)
	return d
}

// runUntil steps to the given time, calling each(tick) first.
func (w *world) runUntil(p Policy, end time.Time, each func()) Decision {
	var d Decision
	for w.now.Before(end) {
		if each != nil {
			each()
		}
		d = w.step(p)
	}
	return d
}

var simPolicy = Policy{Enabled: true, GracePeriod: 30 * time.Second, Action: Replace}

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// TestSimulateTransient: one failure, repaired once, at the end of its
// grace period, and back healthy.
func TestSimulateTransient(t *testing.T) {
	for _, a := range []Action{Replace, Restart, Reimage} {
		w := newWorld(t, 5)
		p := simPolicy
		p.Action = a
		w.runUntil(p, at(10), nil)
		w.fail("web-2", "GET /healthz: status 503, want 200")
		d := w.runUntil(p, at(300), nil)
		if len(w.orders) != 1 || !w.orders[0].At.Equal(at(40)) || w.orders[0].Action != a {
			t.Fatalf("%s: orders %+v, want one at %s", a, w.orders, at(40))
		}
		if d.Suspended || len(d.Held) != 0 || w.inst["web-2"].health.Status != health.Healthy {
			t.Errorf("%s: %+v; web-2 %+v", a, d, w.inst["web-2"].health)
		}
		if len(d.History) != 1 || d.History[0].Outcome != Recovered {
			t.Errorf("%s: history %+v", a, d.History)
		}
	}
}

// TestSimulateBrokenModel: repaired instances come back failing the same
// way: three repairs, then none, however long; a resume allows three more.
func TestSimulateBrokenModel(t *testing.T) {
	for _, capacity := range []int{1, 5} {
		w := newWorld(t, capacity)
		w.comeBack = func(name string, _ Action) string {
			return fmt.Sprintf("GET /healthz: connect 127.0.0.1:%d: connection refused", 40000+len(w.orders))
		}
		w.runUntil(simPolicy, at(10), nil)
		w.fail("web-0", "GET /healthz: status 503, want 200")
		d := w.runUntil(simPolicy, at(1000), nil)
		if len(w.orders) != StormRepairs || !d.Suspended {
			t.Fatalf("capacity %d: %d repairs, suspended %v: %s\n%s", capacity, len(w.orders), d.Suspended, d.Reason, strings.Join(w.log, "\n"))
		}
		want := "the last 3 repairs of web came back failing the same way (web-0, web-0, web-0: GET /healthz: connect 127.0.0.1:40003: connection refused): repairs suspended: fix the image or recipe, then `kiln deploy repair web --resume`"
		if d.Reason != want {
			t.Errorf("capacity %d: reason\n%q, want\n%q", capacity, d.Reason, want)
		}
		w.resumed = w.now
		d = w.runUntil(simPolicy, at(2000), nil)
		if len(w.orders) != 2*StormRepairs || !d.Suspended {
			t.Errorf("capacity %d, resumed: %d repairs, suspended %v", capacity, len(w.orders), d.Suspended)
		}
	}
}

// TestSimulateDependencyDown: every instance fails the same way (their
// ports differ): no repair; once the dependency is back, none was needed.
func TestSimulateDependencyDown(t *testing.T) {
	w := newWorld(t, 5)
	w.runUntil(simPolicy, at(10), nil)
	for i := range 5 {
		w.fail(fmt.Sprintf("web-%d", i), fmt.Sprintf("GET /healthz: status 502 from 127.0.0.1:%d (body \"db down since 12:00:10\")", 40000+i))
	}
	d := w.runUntil(simPolicy, at(600), func() {})
	if len(w.orders) != 0 || !d.Suspended || !strings.HasPrefix(d.Reason, "every instance of web fails the same way (5 of 5: ") {
		t.Fatalf("%d repairs, suspended %v: %s", len(w.orders), d.Suspended, d.Reason)
	}
	for i := range 5 {
		w.heal(fmt.Sprintf("web-%d", i))
	}
	d = w.runUntil(simPolicy, at(700), nil)
	if len(w.orders) != 0 || d.Suspended || d.Reason != "nothing to repair" {
		t.Errorf("after: %d repairs, %+v", len(w.orders), d)
	}
	// One of them back early is enough to lift the suspension: the rest
	// are repaired, one at a time.
	w.runUntil(simPolicy, at(710), nil)
	for i := 1; i < 5; i++ {
		w.fail(fmt.Sprintf("web-%d", i), "GET /healthz: status 502")
	}
	d = w.runUntil(simPolicy, at(1200), nil)
	if len(w.orders) != 4 || d.Suspended {
		t.Errorf("with one healthy: %d repairs, suspended %v: %s", len(w.orders), d.Suspended, d.Reason)
	}
}

// TestSimulateBurst: many independent failures are repaired 20% of the
// capacity at a time (the limit is checked at every step), all of them.
func TestSimulateBurst(t *testing.T) {
	for _, c := range []struct{ capacity, failing, most int }{{10, 6, 2}, {4, 3, 1}, {20, 12, 4}} {
		w := newWorld(t, c.capacity)
		w.runUntil(simPolicy, at(10), nil)
		for i := range c.failing {
			w.fail(fmt.Sprintf("web-%d", i), fmt.Sprintf("fault %d", i))
		}
		most := 0
		w.runUntil(simPolicy, at(1000), func() {
			under := 0
			for _, r := range w.history {
				if r.InFlight() {
					under++
				}
			}
			most = max(most, under)
		})
		if len(w.orders) != c.failing || most != c.most {
			t.Errorf("capacity %d, %d failing: %d repairs, at most %d at once, want %d and %d", c.capacity, c.failing, len(w.orders), most, c.failing, c.most)
		}
		for name, b := range w.inst {
			if b.health.Status != health.Healthy {
				t.Errorf("capacity %d: %s %+v", c.capacity, name, b.health)
			}
		}
	}
}

// TestSimulateProtected: a protected instance is never repaired, and the
// decision says why.
func TestSimulateProtected(t *testing.T) {
	w := newWorld(t, 3)
	w.inst["web-1"].protected = true
	w.runUntil(simPolicy, at(10), nil)
	w.fail("web-1", "GET /healthz: status 503")
	d := w.runUntil(simPolicy, at(600), nil)
	if len(w.orders) != 0 || len(d.Held) != 1 || d.Held[0] != (Hold{"web-1", "protected from scale-set actions"}) {
		t.Errorf("%d repairs, held %+v", len(w.orders), d.Held)
	}
}

// TestSimulateGraceBoundary: an instance that recovers a tick before its
// grace period ends is not repaired; one that does not is, at that tick.
func TestSimulateGraceBoundary(t *testing.T) {
	for _, recover := range []int{39, 40, 41} {
		w := newWorld(t, 3)
		w.runUntil(simPolicy, at(10), nil)
		w.fail("web-0", "x")
		w.runUntil(simPolicy, at(recover), nil)
		if w.inst["web-0"].health.Status == health.Unhealthy {
			w.heal("web-0")
		}
		w.runUntil(simPolicy, at(300), nil)
		if want := map[bool]int{true: 0, false: 1}[recover <= 40]; len(w.orders) != want {
			t.Errorf("healed at %d (grace ends at 40): %d repairs, want %d", recover, len(w.orders), want)
		}
	}
}

// TestSimulateNotBack: repairs whose instance never comes back (the
// action fails) are settled a grace period later, and three of them are a
// storm.
func TestSimulateNotBack(t *testing.T) {
	w := newWorld(t, 5)
	w.goneTicks = 1 << 30 // never created again
	w.runUntil(simPolicy, at(10), nil)
	for i := range 4 {
		w.fail(fmt.Sprintf("web-%d", i), fmt.Sprintf("fault %d", i))
	}
	d := w.runUntil(simPolicy, at(2000), nil)
	if len(w.orders) != StormRepairs || !d.Suspended || !strings.Contains(d.Reason, "not back 30s after the replace") {
		t.Errorf("%d repairs, suspended %v: %s", len(w.orders), d.Suspended, d.Reason)
	}
}
