package upgrade

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy/health"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	oldImage    = "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	newImage    = "sha256:b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	brokenImage = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
)

// fake is a simulated set and controller: it applies Steps at once, and
// its instances' health follows their image, a tick at a time: a good
// image's instance is healthy bootTicks after it boots, a broken one's is
// unhealthy failTicks after.
type fake struct {
	t         *testing.T
	now       time.Time
	tick      time.Duration
	bootTicks int
	failTicks int
	broken    map[string]bool // digests that never become healthy
	inst      map[string]*fakeInstance
	ordinal   int // the next surge instance's ordinal
	prefix    string
	// What the controller did, per instance: for the never-twice checks.
	reimaged map[string]int
	created  []string
	deleted  []string
	log      []string
}

type fakeInstance struct {
	Instance
	booted time.Time
}

// newFake makes a set of n instances of image, healthy, with update and
// fault domains by ordinal (as deploy places them).
func newFake(t *testing.T, n, uds, fds int, image string) *fake {
	f := &fake{t: t, now: t0, tick: time.Second, bootTicks: 3, failTicks: 5,
		broken: map[string]bool{brokenImage: true}, inst: map[string]*fakeInstance{},
		ordinal: n, prefix: "web-", reimaged: map[string]int{}}
	for i := range n {
		name := fmt.Sprintf("web-%d", i)
		f.inst[name] = &fakeInstance{Instance: Instance{Name: name, Digest: image, UpdateDomain: i % uds, FaultDomain: i % fds,
			Health: health.State{Status: health.Healthy, Reason: "2 probes in a row passed", Since: t0.Add(-time.Hour), Booted: t0.Add(-time.Hour)}},
			booted: t0.Add(-time.Hour)}
	}
	return f
}

// observe is the set now, its health brought up to date.
func (f *fake) observe() []Instance {
	var out []Instance
	for _, name := range slices.Sorted(maps.Keys(f.inst)) {
		in := f.inst[name]
		if in.Health.Status == health.Starting {
			up := f.now.Sub(in.booted)
			switch {
			case f.broken[in.Digest] && up >= time.Duration(f.failTicks)*f.tick:
				in.Health = health.State{Status: health.Unhealthy, Reason: "GET /healthz: status 503, want 200", Since: f.now, Booted: in.booted}
			case !f.broken[in.Digest] && up >= time.Duration(f.bootTicks)*f.tick:
				in.Health = health.State{Status: health.Healthy, Reason: "2 probes in a row passed", Since: f.now, Booted: in.booted}
			}
		}
		out = append(out, in.Instance)
	}
	return out
}

// serving counts the healthy instances (the load balancer's members).
func (f *fake) serving() int {
	n := 0
	for _, in := range f.inst {
		if in.Health.Status == health.Healthy {
			n++
		}
	}
	return n
}

func (f *fake) boot(in *fakeInstance, digest string) {
	in.Digest, in.booted, in.Health = digest, f.now, health.Start(f.now)
}

// apply does step s of upgrade u, or its first part of n instances when
// part >= 0 (a crash in the middle).
func (f *fake) apply(u Upgrade, s Step, part int) {
	cut := func(n int) int {
		if part >= 0 && part < n {
			return part
		}
		return n
	}
	f.log = append(f.log, fmt.Sprintf("%s %s: %s", f.now.Format("15:04:05"), s.Action, s.Reason))
	switch s.Action {
	case Reimage:
		for _, name := range s.Instances[:cut(len(s.Instances))] {
			in, ok := f.inst[name]
			if !ok {
				f.t.Fatalf("reimage of %s, which does not exist", name)
			}
			if in.Protected {
				f.t.Fatalf("reimage of %s, which is protected", name)
			}
			f.reimaged[name]++
			f.boot(in, u.Target)
		}
	case CreateSurge:
		for _, p := range s.Surge[:cut(len(s.Surge))] {
			name := fmt.Sprintf("%s%d", f.prefix, f.ordinal)
			f.ordinal++
			in := &fakeInstance{Instance: Instance{Name: name, UpdateDomain: p.UpdateDomain, FaultDomain: p.FaultDomain, SurgeOf: u.ID}}
			f.boot(in, u.Target)
			f.inst[name] = in
			f.created = append(f.created, name)
		}
	case Delete:
		for _, name := range s.Instances[:cut(len(s.Instances))] {
			if f.inst[name] == nil {
				f.t.Fatalf("delete of %s, which does not exist", name)
			}
			if f.inst[name].Protected {
				f.t.Fatalf("delete of %s, which is protected", name)
			}
			delete(f.inst, name)
			f.deleted = append(f.deleted, name)
		}
	case FinishBatch, Adopt:
		for _, name := range s.Instances[:cut(len(s.Instances))] {
			f.inst[name].SurgeOf = ""
		}
	}
}

// digests maps each instance to its image.
func (f *fake) digests() map[string]string {
	out := map[string]string{}
	for name, in := range f.inst {
		out[name] = in.Digest
	}
	return out
}

// crash says where a run dies: at its step index Step, How.
type crash struct {
	Step int
	How  string // "before-record", "before-act", "mid-act"
}

// run drives upgrade u to its end (Stop or Complete) like the controller:
// observe, Next, Record, save (JSON), act; the record is read back from
// its JSON every step, as after a restart. check, if set, runs after every
// action. It returns the last record and step.
func (f *fake) run(u Upgrade, capacity int, c *crash, check func(Step)) (Upgrade, Step) {
	f.t.Helper()
	saved := save(f.t, u)
	for i := 0; i < 2000; i++ {
		u = load(f.t, saved)
		s := Next(u, f.observe(), capacity, f.now)
		if again := Next(u, f.observe(), capacity, f.now); !stepsEqual(s, again) {
			f.t.Fatalf("Next is not deterministic:\n%+v\n%+v", s, again)
		}
		crashing := c != nil && c.Step == i
		if crashing && c.How == "before-record" {
			f.now = f.now.Add(f.tick)
			continue // died before saving: the step is lost, as if never taken
		}
		u = u.Record(s, f.now)
		if twice := u.Record(s, f.now); save(f.t, twice) != save(f.t, u) {
			f.t.Fatalf("recording %s twice changed the record", s.Action)
		}
		saved = save(f.t, u)
		if s.Action == Stop || s.Action == Complete {
			return u, s
		}
		switch {
		case crashing && c.How == "before-act":
		case crashing && c.How == "mid-act":
			f.apply(u, s, 1)
		default:
			f.apply(u, s, -1)
		}
		if check != nil {
			check(s)
		}
		f.now = f.now.Add(f.tick)
	}
	f.t.Fatalf("no end after 2000 steps:\n%s", strings.Join(f.log, "\n"))
	return u, Step{}
}

func save(t *testing.T, u Upgrade) string {
	t.Helper()
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func load(t *testing.T, s string) Upgrade {
	t.Helper()
	u, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	if again := save(t, u); again != s {
		t.Fatalf("the record does not survive its JSON:\n%s\n%s", s, again)
	}
	return u
}

func stepsEqual(a, b Step) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func rolling(f func(*Policy)) Policy {
	p := Policy{Mode: Rolling}
	Default(&p)
	if f != nil {
		f(&p)
	}
	return p
}

func start(t *testing.T, f *fake, o Options) Upgrade {
	t.Helper()
	if o.Set == "" {
		o.Set = "web"
	}
	if o.Target == "" {
		o.Target = newImage
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = 20 * time.Second
	}
	u, err := Start(o, f.observe(), f.now)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// batchesOf lists each finished batch's members.
func batchesOf(u Upgrade) [][]string {
	var out [][]string
	for _, b := range u.Batches {
		out = append(out, b.Instances)
	}
	return out
}

func TestSimulateRolling(t *testing.T) {
	f := newFake(t, 10, 5, 3, oldImage)
	u := start(t, f, Options{Policy: rolling(nil)})
	u, s := f.run(u, 10, nil, func(Step) {
		if f.serving() < 8 {
			t.Fatalf("%d instances serving: a batch of 2 of 10 leaves 8", f.serving())
		}
	})
	if s.Action != Complete || u.Status != Done {
		t.Fatalf("%s %s: %s", s.Action, u.Status, s.Reason)
	}
	want := [][]string{{"web-0", "web-5"}, {"web-1", "web-6"}, {"web-2", "web-7"}, {"web-3", "web-8"}, {"web-4", "web-9"}}
	if got := batchesOf(u); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("batches %v, want %v (by update domain, then name)", got, want)
	}
	for name, d := range f.digests() {
		if d != newImage || f.reimaged[name] != 1 {
			t.Errorf("%s runs %s, reimaged %d times", name, d, f.reimaged[name])
		}
	}
	if s.Reason != "upgraded 10 instances of web to sha256:b2b2b2b2b2b2 in 5 batches" {
		t.Errorf("reason %q", s.Reason)
	}
	if u.Progress != (Progress{Upgraded: 10}) {
		t.Errorf("progress %+v", u.Progress)
	}
}

// TestSimulateSurge: batches of one with maxSurge on 4 instances; a new
// instance is healthy before an old one goes, so 4 serve at every step.
func TestSimulateSurge(t *testing.T) {
	f := newFake(t, 4, 5, 3, oldImage)
	u := start(t, f, Options{Policy: rolling(func(p *Policy) { p.MaxSurge = true })})
	most := 0
	u, s := f.run(u, 4, nil, func(Step) {
		if f.serving() < 4 {
			t.Fatalf("%d instances serving, want at least 4:\n%s", f.serving(), strings.Join(f.log, "\n"))
		}
		most = max(most, len(f.inst))
	})
	if s.Action != Complete {
		t.Fatalf("%s: %s", s.Action, s.Reason)
	}
	if most != 5 {
		t.Errorf("at most %d instances at once, want 5 (one surge instance at a time)", most)
	}
	if len(f.inst) != 4 || len(f.created) != 4 || len(f.deleted) != 4 || len(f.reimaged) != 0 {
		t.Errorf("%d instances; created %v, deleted %v, reimaged %v", len(f.inst), f.created, f.deleted, f.reimaged)
	}
	for name, in := range f.inst {
		if in.Digest != newImage || in.SurgeOf != "" || in.Health.Status != health.Healthy {
			t.Errorf("%s: %+v", name, in.Instance)
		}
	}
	for i, b := range u.Batches {
		if len(b.Instances) != 1 || len(b.Surge) != 1 || b.Instances[0] != fmt.Sprintf("web-%d", i) {
			t.Errorf("batch %d: %+v", i+1, b)
		}
	}
}

// TestSimulateBroken: a broken image stops the upgrade after its first
// batch, with the other instances, 75% of the set, healthy on the old one;
// the rollback brings every instance back.
func TestSimulateBroken(t *testing.T) {
	for _, surge := range []bool{false, true} {
		t.Run(fmt.Sprintf("maxSurge=%v", surge), func(t *testing.T) {
			f := newFake(t, 4, 5, 3, oldImage)
			u := start(t, f, Options{Target: brokenImage, Policy: rolling(func(p *Policy) { p.MaxSurge = surge })})
			u, s := f.run(u, 4, nil, nil)
			if s.Action != Stop || u.Status != Stopped {
				t.Fatalf("%s %s: %s", s.Action, u.Status, s.Reason)
			}
			want := "after batch 1: 1 of 1 upgraded instance unhealthy (web-0: GET /healthz: status 503, want 200): maxUnhealthyUpgradedInstancePercent 20%"
			if surge {
				want = "after batch 1: 1 of 1 upgraded instance unhealthy (web-4: GET /healthz: status 503, want 200): maxUnhealthyUpgradedInstancePercent 20%"
			}
			if u.Reason != want {
				t.Errorf("reason\n%q, want\n%q", u.Reason, want)
			}
			old := 0
			for _, in := range f.inst {
				if in.Digest == oldImage && in.Health.Status == health.Healthy {
					old++
				}
			}
			if wantOld := map[bool]int{false: 3, true: 4}[surge]; old != wantOld || len(f.inst) != 4 {
				t.Errorf("%d healthy on the old image of %d, want %d", old, len(f.inst), wantOld)
			}
			// Stopped stays stopped.
			if s := Next(u, f.observe(), 4, f.now.Add(time.Hour)); s.Action != Stop || s.Reason != want {
				t.Errorf("a stopped upgrade said %s: %s", s.Action, s.Reason)
			}

			r, err := Rollback(u, f.now)
			if err != nil {
				t.Fatal(err)
			}
			r, s = f.run(r, 4, nil, nil)
			if s.Action != Complete || r.Status != RolledBack {
				t.Fatalf("rollback: %s %s: %s", s.Action, r.Status, s.Reason)
			}
			for name, in := range f.inst {
				if in.Digest != oldImage || in.Health.Status != health.Healthy {
					t.Errorf("after the rollback %s: %+v", name, in.Instance)
				}
			}
			if len(f.inst) != 4 {
				t.Errorf("%d instances after the rollback", len(f.inst))
			}
			wantR := map[bool]string{false: "rolled 1 instance of web back to sha256:a1a1a1a1a1a1 in 1 batch", true: "nothing to upgrade: every instance of web runs sha256:a1a1a1a1a1a1"}[surge]
			if s.Reason != wantR {
				t.Errorf("rollback reason %q, want %q", s.Reason, wantR)
			}
		})
	}
}

// TestSimulateCrash: a crash at any step (before the record is saved,
// after it is saved but before the action, or halfway through the action)
// ends in the same set and batches as a run without one, and no instance
// is reimaged twice.
func TestSimulateCrash(t *testing.T) {
	for _, c := range []struct {
		name     string
		n        int
		uds      int
		capacity int
		target   string
		policy   Policy
		byUD     bool
	}{
		{"rolling", 6, 5, 6, newImage, rolling(func(p *Policy) { p.MaxBatchInstancePercent = 20 }), false},
		{"rolling, batches of 2, pause", 6, 5, 6, newImage, rolling(func(p *Policy) {
			p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent, p.PauseTimeBetweenBatches = 40, 40, 3*time.Second
		}), false},
		{"surge", 5, 5, 5, newImage, rolling(func(p *Policy) {
			p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent, p.MaxSurge = 40, 40, true
		}), false},
		{"broken", 5, 5, 5, brokenImage, rolling(nil), false},
		{"broken surge", 5, 5, 5, brokenImage, rolling(func(p *Policy) { p.MaxSurge = true }), false},
		{"availability set", 6, 3, 6, newImage, rolling(func(p *Policy) { p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent = 50, 50 }), true},
		{"automatic", 4, 5, 4, newImage, Policy{Mode: Automatic, MaxBatchInstancePercent: 20, MaxUnhealthyInstancePercent: 20, MaxUnhealthyUpgradedInstancePercent: 20}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			reference := func() (*fake, Upgrade) {
				f := newFake(t, c.n, c.uds, 3, oldImage)
				u := start(t, f, Options{Target: c.target, Policy: c.policy, ByUpdateDomain: c.byUD})
				u, _ = f.run(u, c.capacity, nil, nil)
				return f, u
			}
			rf, ru := reference()
			steps := len(rf.log) + 1
			for i := range steps {
				for _, how := range []string{"before-record", "before-act", "mid-act"} {
					f := newFake(t, c.n, c.uds, 3, oldImage)
					u := start(t, f, Options{Target: c.target, Policy: c.policy, ByUpdateDomain: c.byUD})
					u, _ = f.run(u, c.capacity, &crash{Step: i, How: how}, nil)
					if !maps.Equal(f.digests(), rf.digests()) {
						t.Fatalf("crash %s at step %d: set %v, want %v\n%s", how, i, f.digests(), rf.digests(), strings.Join(f.log, "\n"))
					}
					if u.Status != ru.Status || u.Reason != ru.Reason {
						t.Fatalf("crash %s at step %d: %s (%s), want %s (%s)", how, i, u.Status, u.Reason, ru.Status, ru.Reason)
					}
					if got, want := batchesOf(u), batchesOf(ru); !slices.EqualFunc(got, want, slices.Equal) {
						t.Fatalf("crash %s at step %d: batches %v, want %v", how, i, got, want)
					}
					for name, n := range f.reimaged {
						if n > 1 {
							t.Fatalf("crash %s at step %d: %s reimaged %d times", how, i, name, n)
						}
					}
					if len(f.created) != len(rf.created) {
						t.Fatalf("crash %s at step %d: created %v, without a crash %v", how, i, f.created, rf.created)
					}
				}
			}
		})
	}
}

// TestSimulateAvailabilitySet: batches walk the update domains in order,
// never two in one batch, and wait for each to be healthy, in every mode.
func TestSimulateAvailabilitySet(t *testing.T) {
	for _, c := range []struct {
		name   string
		policy Policy
		want   [][]string
	}{
		// 7 instances in 3 domains: {0,3,6}, {1,4}, {2,5}. A batch of 50%
		// of 7 is 3: domain 0 fits one batch.
		{"rolling", rolling(func(p *Policy) { p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent = 50, 50 }),
			[][]string{{"web-0", "web-3", "web-6"}, {"web-1", "web-4"}, {"web-2", "web-5"}}},
		// 20% of 7 is 1: every domain takes several batches.
		{"rolling, small batches", rolling(nil),
			[][]string{{"web-0"}, {"web-3"}, {"web-6"}, {"web-1"}, {"web-4"}, {"web-2"}, {"web-5"}}},
		{"automatic", Policy{Mode: Automatic, MaxBatchInstancePercent: 20, MaxUnhealthyInstancePercent: 20},
			[][]string{{"web-0", "web-3", "web-6"}, {"web-1", "web-4"}, {"web-2", "web-5"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t, 7, 3, 3, oldImage)
			u := start(t, f, Options{Policy: c.policy, ByUpdateDomain: true})
			u, s := f.run(u, 7, nil, func(s Step) {
				if s.Action != Reimage {
					return
				}
				down := map[int]bool{}
				for _, in := range f.inst {
					if in.Health.Status != health.Healthy {
						down[in.UpdateDomain] = true
					}
				}
				if len(down) > 1 {
					t.Fatalf("update domains %v down at once", slices.Sorted(maps.Keys(down)))
				}
			})
			if s.Action != Complete {
				t.Fatalf("%s: %s", s.Action, s.Reason)
			}
			if got := batchesOf(u); !slices.EqualFunc(got, c.want, slices.Equal) {
				t.Errorf("batches %v, want %v", got, c.want)
			}
			for _, b := range u.Batches {
				if len(b.UpdateDomains) != 1 {
					t.Errorf("batch %d spans update domains %v", b.Number, b.UpdateDomains)
				}
			}
		})
	}
}

// TestSimulatePause: a batch starts no sooner than the pause after the
// one before finished.
func TestSimulatePause(t *testing.T) {
	f := newFake(t, 5, 5, 3, oldImage)
	pause := 7 * time.Second
	u := start(t, f, Options{Policy: rolling(func(p *Policy) { p.PauseTimeBetweenBatches = pause })})
	sawPaused := false
	var steps []Step
	u, _ = f.run(u, 5, nil, func(s Step) { steps = append(steps, s) })
	for i := 1; i < len(u.Batches); i++ {
		if gap := u.Batches[i].StartedAt.Sub(u.Batches[i-1].FinishedAt); gap < pause {
			t.Errorf("batch %d started %s after batch %d finished, want at least %s", i+1, gap, i, pause)
		}
	}
	for _, s := range steps {
		if s.Action == Wait && strings.HasPrefix(s.Reason, "pausing between batches (pauseTimeBetweenBatches 7s)") {
			sawPaused = true
		}
	}
	if !sawPaused || len(u.Batches) != 5 || u.Status != Done {
		t.Errorf("paused %v, %d batches, %s", sawPaused, len(u.Batches), u.Status)
	}
	// No pause after the last batch.
	if last := u.Batches[len(u.Batches)-1].FinishedAt; u.UpdatedAt.Sub(last) >= pause {
		t.Errorf("completed %s after the last batch", u.UpdatedAt.Sub(last))
	}
}

// TestSimulatePrioritizeUnhealthy: the unhealthy instance goes first, and
// comes back healthy on the new image.
func TestSimulatePrioritizeUnhealthy(t *testing.T) {
	for _, prio := range []bool{false, true} {
		f := newFake(t, 10, 5, 3, oldImage)
		f.inst["web-7"].Health = health.State{Status: health.Unhealthy, Reason: "connect 8080: connection refused", Since: t0}
		u := start(t, f, Options{Policy: rolling(func(p *Policy) { p.PrioritizeUnhealthyInstances = prio })})
		u, s := f.run(u, 10, nil, nil)
		if s.Action != Complete {
			t.Fatalf("%s: %s", s.Action, s.Reason)
		}
		first := u.Batches[0].Instances
		// Without priority, the unhealthy instance (1 of 10) shrinks the
		// first batch to 1: it and the batch stay within 20% (2).
		want := map[bool][]string{false: {"web-0"}, true: {"web-7", "web-0"}}[prio]
		if !slices.Equal(first, want) {
			t.Errorf("prioritize %v: first batch %v, want %v", prio, first, want)
		}
	}
}

// TestSimulateProtected: protected instances are never touched, and the
// report names them.
func TestSimulateProtected(t *testing.T) {
	for _, surge := range []bool{false, true} {
		f := newFake(t, 5, 5, 3, oldImage)
		f.inst["web-2"].Protected = true
		u := start(t, f, Options{Policy: rolling(func(p *Policy) { p.MaxSurge = surge })})
		u, s := f.run(u, 5, nil, nil)
		if s.Action != Complete {
			t.Fatalf("%s: %s", s.Action, s.Reason)
		}
		if d := f.inst["web-2"]; d == nil || d.Digest != oldImage {
			t.Errorf("protected web-2: %+v", d)
		}
		want := "upgraded 4 instances of web to sha256:b2b2b2b2b2b2 in 4 batches; protected from scale-set actions, left as they were: web-2 (sha256:a1a1a1a1a1a1)"
		if s.Reason != want {
			t.Errorf("reason\n%q, want\n%q", s.Reason, want)
		}
		if u.Progress != (Progress{Upgraded: 4, Protected: 1}) {
			t.Errorf("progress %+v", u.Progress)
		}
	}
}

// TestSimulateCapacity: sets of one and of none.
func TestSimulateCapacity(t *testing.T) {
	for _, surge := range []bool{false, true} {
		f := newFake(t, 1, 5, 3, oldImage)
		u := start(t, f, Options{Policy: rolling(func(p *Policy) { p.MaxSurge = surge })})
		least := 1
		u, s := f.run(u, 1, nil, func(Step) { least = min(least, f.serving()) })
		if s.Action != Complete || f.inst["web-0"] != nil && f.inst["web-0"].Digest != newImage || len(f.inst) != 1 {
			t.Fatalf("surge %v: %s %v: %s", surge, s.Action, f.digests(), s.Reason)
		}
		// In place, the only instance is down while it is reimaged; a
		// surge instance keeps one serving throughout.
		if want := map[bool]int{false: 0, true: 1}[surge]; least != want {
			t.Errorf("surge %v: %d serving at the least, want %d", surge, least, want)
		}
	}
	f := newFake(t, 0, 5, 3, oldImage)
	u := start(t, f, Options{Policy: rolling(nil)})
	if u.Status != Done || u.Reason != "nothing to upgrade: every instance of web runs sha256:b2b2b2b2b2b2" {
		t.Errorf("empty set: %s: %s", u.Status, u.Reason)
	}
}

// TestSimulateManual: only the named instances, at once.
func TestSimulateManual(t *testing.T) {
	f := newFake(t, 5, 5, 3, oldImage)
	p := Policy{}
	Default(&p)
	u := start(t, f, Options{Policy: p, Instances: []string{"web-3", "web-1"}})
	u, s := f.run(u, 5, nil, nil)
	if s.Action != Complete || len(u.Batches) != 1 || !slices.Equal(u.Batches[0].Instances, []string{"web-1", "web-3"}) {
		t.Fatalf("%s %+v: %s", s.Action, u.Batches, s.Reason)
	}
	for name, d := range f.digests() {
		if want := map[bool]string{true: newImage, false: oldImage}[name == "web-1" || name == "web-3"]; d != want {
			t.Errorf("%s runs %s", name, d)
		}
	}
	if u.Progress != (Progress{Upgraded: 2}) {
		t.Errorf("progress %+v", u.Progress)
	}
}

// TestSimulateInterrupted: an upgrade interrupted at any step by a
// rollback, or by a new upgrade, ends with the set at its capacity, every
// instance on the image asked for, healthy, and no surge mark left.
func TestSimulateInterrupted(t *testing.T) {
	const third = "sha256:c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"
	for _, surge := range []bool{false, true} {
		for _, target := range []string{newImage, brokenImage} {
			policy := rolling(func(p *Policy) { p.MaxBatchInstancePercent, p.MaxUnhealthyInstancePercent, p.MaxSurge = 40, 40, surge })
			ref := newFake(t, 5, 5, 3, oldImage)
			ref.run(start(t, ref, Options{Target: target, Policy: policy}), 5, nil, nil)
			for k := range len(ref.log) + 1 {
				for _, then := range []string{"rollback", "new upgrade"} {
					f := newFake(t, 5, 5, 3, oldImage)
					u := start(t, f, Options{Target: target, Policy: policy})
					// Drive the first upgrade k steps, then interrupt it.
					for range k {
						s := Next(u, f.observe(), 5, f.now)
						u = u.Record(s, f.now)
						if s.Action == Stop || s.Action == Complete {
							break
						}
						f.apply(u, s, -1)
						f.now = f.now.Add(f.tick)
					}
					want := oldImage
					var next Upgrade
					if then == "rollback" {
						var err error
						if next, err = Rollback(u, f.now); err != nil {
							t.Fatal(err)
						}
					} else {
						want = third
						next = start(t, f, Options{Target: third, Policy: policy})
					}
					next, s := f.run(next, 5, nil, nil)
					if s.Action != Complete {
						t.Fatalf("surge %v, %s at step %d, then %s: %s: %s", surge, short(target), k, then, s.Action, s.Reason)
					}
					if len(f.inst) != 5 {
						t.Errorf("surge %v, %s at step %d, then %s: %d instances: %v", surge, short(target), k, then, len(f.inst), f.digests())
					}
					for name, in := range f.inst {
						if in.Digest != want || in.SurgeOf != "" || in.Health.Status != health.Healthy {
							t.Errorf("surge %v, %s at step %d, then %s: %s: %+v\n%s", surge, short(target), k, then, name, in.Instance, strings.Join(f.log, "\n"))
						}
					}
				}
			}
		}
	}
}

// TestSimulateInvariants runs random sets and policies to their end and
// holds, for each: the run ends; no instance is reimaged twice nor a
// protected one touched (fake.apply fails the test); the set ends at its
// size; a good image reaches every instance it may; a broken one reaches
// no more than the first batch (maxUnhealthyUpgradedInstancePercent below
// 100: the canary) and, with maxSurge, none at all; no more instances are
// down at once than a batch (in place), or than none (surge); an
// availability set has at most one update domain down.
func TestSimulateInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2025))
	runs := 600
	if testing.Short() {
		runs = 200
	}
	for run := range runs {
		n := rng.IntN(13)
		uds := 1 + rng.IntN(5)
		p := Policy{Mode: []Mode{Rolling, Rolling, Rolling, Automatic}[rng.IntN(4)]}
		Default(&p)
		p.MaxUnhealthyInstancePercent = []int{5, 20, 50, 100}[rng.IntN(4)]
		p.MaxBatchInstancePercent = min(p.MaxUnhealthyInstancePercent, []int{5, 20, 34, 50, 100}[rng.IntN(5)])
		p.MaxUnhealthyUpgradedInstancePercent = []int{0, 20, 50}[rng.IntN(3)]
		p.PauseTimeBetweenBatches = time.Duration(rng.IntN(3)) * time.Second
		p.PrioritizeUnhealthyInstances = rng.IntN(2) == 0
		p.MaxSurge = rng.IntN(2) == 0
		byUD := rng.IntN(3) == 0
		target := newImage
		if rng.IntN(3) == 0 {
			target = brokenImage
		}
		f := newFake(t, n, uds, 3, oldImage)
		protected := 0
		for _, in := range f.inst {
			if rng.IntN(6) == 0 {
				in.Protected = true
				protected++
			}
		}
		name := fmt.Sprintf("run %d: %d instances in %d domains, %+v, byUD %v, %s, %d protected", run, n, uds, p, byUD, short(target), protected)
		u := start(t, f, Options{Target: target, Policy: p, ByUpdateDomain: byUD})
		size := BatchSize(n, p.MaxBatchInstancePercent)
		surge := p.Mode == Rolling && p.MaxSurge
		u, s := f.run(u, n, nil, func(Step) {
			down, downUD := 0, map[int]bool{}
			for _, in := range f.inst {
				if in.Health.Status != health.Healthy && in.SurgeOf == "" {
					down++
					downUD[in.UpdateDomain] = true
				}
			}
			switch {
			case surge && down > 0:
				t.Fatalf("%s: %d instances down with maxSurge\n%s", name, down, strings.Join(f.log, "\n"))
			case p.Mode == Rolling && down > size:
				t.Fatalf("%s: %d instances down, batches of %d\n%s", name, down, size, strings.Join(f.log, "\n"))
			case byUD && len(downUD) > 1:
				t.Fatalf("%s: update domains %v down at once", name, slices.Sorted(maps.Keys(downUD)))
			}
		})
		if len(f.inst) != n {
			t.Fatalf("%s: ends with %d instances", name, len(f.inst))
		}
		reached := 0
		for _, in := range f.inst {
			if in.Digest == target {
				reached++
			}
		}
		switch {
		case target == newImage && (s.Action != Complete || reached != n-protected):
			t.Fatalf("%s: %s with %d of %d upgraded: %s", name, s.Action, reached, n-protected, s.Reason)
		case target == brokenImage && (p.Mode == Rolling || byUD) && n > protected && s.Action != Stop:
			t.Fatalf("%s: a broken image did not stop the upgrade: %s", name, s.Reason)
		case target == brokenImage && p.Mode == Rolling && surge && reached > 0:
			t.Fatalf("%s: a broken image reached %d instances with maxSurge", name, reached)
		case target == brokenImage && p.Mode == Rolling && reached > size:
			t.Fatalf("%s: a broken image reached %d instances, batches of %d", name, reached, size)
		}
	}
}
