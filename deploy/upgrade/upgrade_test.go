package upgrade

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy/health"
)

// in is an instance of the old image in update domain ud, healthy.
func in(name string, ud int) Instance {
	return Instance{Name: name, Digest: oldImage, UpdateDomain: ud, FaultDomain: ud % 3,
		Health: health.State{Status: health.Healthy, Reason: "2 probes in a row passed", Since: t0.Add(-time.Hour)}}
}

func with(i Instance, f func(*Instance)) Instance {
	f(&i)
	return i
}

func sick(reason string) func(*Instance) {
	return func(i *Instance) {
		i.Health = health.State{Status: health.Unhealthy, Reason: reason, Since: t0.Add(-time.Minute)}
	}
}

func starting(i *Instance) { i.Health = health.Start(t0) }

func upgraded(i *Instance) { i.Digest = newImage }

// set is n healthy instances of the old image, ordinal n in update domain
// n mod 5.
func set(n int, changes map[string]func(*Instance)) []Instance {
	var out []Instance
	for i := range n {
		x := in(fmt.Sprintf("web-%d", i), i%5)
		x.FaultDomain = i % 3 // as deploy places them
		if f := changes[x.Name]; f != nil {
			f(&x)
		}
		out = append(out, x)
	}
	return out
}

// running is an upgrade of web to newImage as Start makes it, with
// batches already finished.
func running(p Policy, finished ...[]string) Upgrade {
	u := Upgrade{SchemaVersion: 1, ID: "web-b2b2b2b2-20250301T110000Z", Set: "web", Target: newImage, Previous: oldImage, From: []string{oldImage},
		Policy: p, HealthTimeout: 20 * time.Second, StartedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Hour), Status: Running}
	for i, ns := range finished {
		u.Batches = append(u.Batches, Batch{Number: i + 1, Instances: ns, StartedAt: t0.Add(-time.Hour), FinishedAt: t0.Add(-time.Minute)})
	}
	return u
}

func TestBatchSize(t *testing.T) {
	for _, c := range []struct{ capacity, percent, want int }{
		{0, 20, 1}, {1, 20, 1}, {4, 20, 1}, {5, 20, 1}, {9, 20, 1}, {10, 20, 2}, {14, 20, 2}, {15, 20, 3},
		{100, 20, 20}, {3, 5, 1}, {19, 5, 1}, {20, 5, 1}, {40, 5, 2}, {7, 50, 3}, {8, 50, 4}, {3, 100, 3}, {1, 100, 1},
	} {
		if got := BatchSize(c.capacity, c.percent); got != c.want {
			t.Errorf("BatchSize(%d, %d%%) = %d, want %d", c.capacity, c.percent, got, c.want)
		}
	}
}

// TestBreaches: "more than p%", Azure's reading: 10 instances at 20% stop
// at 3 unhealthy, not at 2.
func TestBreaches(t *testing.T) {
	for _, c := range []struct {
		n, total, percent int
		want              bool
	}{
		{2, 10, 20, false}, {3, 10, 20, true}, {0, 10, 20, false}, {1, 4, 20, true}, {1, 5, 20, false}, {2, 5, 20, true},
		{1, 1, 20, true}, {1, 1, 100, false}, {0, 0, 20, false}, {1, 0, 20, true}, {1, 10, 0, true}, {0, 10, 0, false},
		{1, 3, 33, true}, {1, 3, 34, false},
	} {
		if got := breaches(c.n, c.total, c.percent); got != c.want {
			t.Errorf("%d of %d at %d%%: %v, want %v", c.n, c.total, c.percent, got, c.want)
		}
	}
}

// TestNext checks single decisions, named.
func TestNext(t *testing.T) {
	later := t0.Add(time.Minute)
	surge := func(u Upgrade) func(*Instance) { return func(i *Instance) { i.Digest, i.SurgeOf = newImage, u.ID } }
	prio := rolling(func(p *Policy) { p.PrioritizeUnhealthyInstances = true })
	for _, c := range []struct {
		name     string
		u        Upgrade
		set      []Instance
		capacity int
		want     Step // Action, Instances, Surge, Until and Reason are compared (a Reason ending in "…" as a prefix)
		batch    []string
	}{
		{"first batch, by update domain then name", running(rolling(nil)), set(10, nil), 10,
			Step{Action: Reimage, Instances: []string{"web-0", "web-5"}, Reason: "batch 1 of about 5: draining and reimaging web-0, web-5 to sha256:b2b2b2b2b2b2 (update domain 0)"}, []string{"web-0", "web-5"}},
		{"the brief's breach", running(rolling(nil), []string{"web-0"}, []string{"web-2"}),
			set(5, map[string]func(*Instance){"web-0": upgraded, "web-2": upgraded, "web-1": sick("GET /healthz: status 503, want 200"), "web-4": sick("connect 8080: connection refused")}), 5,
			Step{Action: Stop, Reason: "maxUnhealthyInstancePercent 20% breached before batch 3: 2 of 5 instances unhealthy (web-1: GET /healthz: status 503, want 200; web-4: connect 8080: connection refused)"}, nil},
		{"one unhealthy of 5 is 20%, not more", running(rolling(nil)), set(5, map[string]func(*Instance){"web-3": sick("down")}), 5,
			Step{Action: Reimage, Instances: []string{"web-0"}}, []string{"web-0"}},
		{"prioritized unhealthy go first", running(prio), set(10, map[string]func(*Instance){"web-8": sick("down"), "web-3": sick("down")}), 10,
			Step{Action: Reimage, Instances: []string{"web-3", "web-8"}}, []string{"web-3", "web-8"}},
		{"breach counts even prioritized", running(prio), set(10, map[string]func(*Instance){"web-8": sick("a"), "web-3": sick("b"), "web-1": sick("c")}), 10,
			Step{Action: Stop, Reason: "maxUnhealthyInstancePercent 20% breached before batch 1: 3 of 10 instances unhealthy (web-1: c; web-3: b; web-8: a)"}, nil},
		{"the breach is of capacity, not of instances seen", running(rolling(nil)), set(3, map[string]func(*Instance){"web-2": sick("down")}), 10,
			Step{Action: Reimage, Instances: []string{"web-0"}}, []string{"web-0"}},
		{"an unhealthy instance shrinks the batch", running(rolling(nil)), set(10, map[string]func(*Instance){"web-9": sick("down")}), 10,
			Step{Action: Reimage, Instances: []string{"web-0"}}, []string{"web-0"}},
		{"an unhealthy member does not", running(rolling(nil)), set(10, map[string]func(*Instance){"web-5": sick("down")}), 10,
			Step{Action: Reimage, Instances: []string{"web-0", "web-5"}}, []string{"web-0", "web-5"}},
		{"surge batches keep their size", running(rolling(func(p *Policy) { p.MaxSurge = true })), set(10, map[string]func(*Instance){"web-9": sick("down")}), 10,
			Step{Action: CreateSurge, Surge: []Placement{{"web-0", 0, 0}, {"web-5", 0, 2}}}, []string{"web-0", "web-5"}},
		{"finished batches are not redone", running(rolling(nil), []string{"web-0", "web-5"}), set(10, nil), 10,
			Step{Action: Reimage, Instances: []string{"web-1", "web-6"}}, []string{"web-1", "web-6"}},
		{"an instance at the target is upgraded", running(rolling(nil)), set(10, map[string]func(*Instance){"web-0": upgraded}), 10,
			Step{Action: Reimage, Instances: []string{"web-5", "web-1"}}, []string{"web-5", "web-1"}},
		{"protected instances are skipped", running(rolling(nil)), set(10, map[string]func(*Instance){"web-0": func(i *Instance) { i.Protected = true }}), 10,
			Step{Action: Reimage, Instances: []string{"web-5", "web-1"}}, []string{"web-5", "web-1"}},
		{"automatic takes everything", running(Policy{Mode: Automatic}), set(4, nil), 4,
			Step{Action: Reimage, Instances: []string{"web-0", "web-1", "web-2", "web-3"}}, []string{"web-0", "web-1", "web-2", "web-3"}},
		{"automatic checks nothing", running(Policy{Mode: Automatic}), set(4, map[string]func(*Instance){"web-1": sick("a"), "web-2": sick("b")}), 4,
			Step{Action: Reimage, Instances: []string{"web-0", "web-1", "web-2", "web-3"}}, []string{"web-0", "web-1", "web-2", "web-3"}},
		{"manual takes the named", func() Upgrade { u := running(Policy{Mode: Manual}); u.Instances = []string{"web-1", "web-3"}; return u }(), set(4, nil), 4,
			Step{Action: Reimage, Instances: []string{"web-1", "web-3"}}, []string{"web-1", "web-3"}},
		{"availability set: one update domain", func() Upgrade { u := running(Policy{Mode: Automatic}); u.ByUpdateDomain = true; return u }(), set(7, nil), 7,
			Step{Action: Reimage, Instances: []string{"web-0", "web-5"}}, []string{"web-0", "web-5"}},
		{"availability set: the unhealthy one's domain first", func() Upgrade { u := running(prio); u.ByUpdateDomain = true; return u }(),
			set(10, map[string]func(*Instance){"web-8": sick("down")}), 10,
			Step{Action: Reimage, Instances: []string{"web-8", "web-3"}}, []string{"web-8", "web-3"}},
		{"pause", func() Upgrade {
			u := running(rolling(func(p *Policy) { p.PauseTimeBetweenBatches = time.Minute }), []string{"web-0", "web-5"})
			u.Status, u.PausedUntil = Paused, later
			return u
		}(), set(10, map[string]func(*Instance){"web-0": upgraded, "web-5": upgraded}), 10,
			Step{Action: Wait, Until: later, Reason: "pausing between batches (pauseTimeBetweenBatches 1m): batch 2 starts at 2025-03-01T12:01:00Z"}, nil},
		{"nothing left, no pause", func() Upgrade {
			u := running(rolling(func(p *Policy) { p.PauseTimeBetweenBatches = time.Minute }), []string{"web-0"})
			u.Status, u.PausedUntil = Paused, later
			return u
		}(), set(1, map[string]func(*Instance){"web-0": upgraded}), 1,
			Step{Action: Complete, Reason: "upgraded 1 instance of web to sha256:b2b2b2b2b2b2 in 1 batch"}, nil},
		{"a half-done batch continues with what is left", func() Upgrade {
			u := running(rolling(nil))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0", "web-5"}, Phase: Reimaging, StartedAt: t0, ActedAt: t0}
			return u
		}(), set(10, map[string]func(*Instance){"web-0": func(i *Instance) { upgraded(i); starting(i) }}), 10,
			Step{Action: Reimage, Instances: []string{"web-5"}}, []string{"web-0", "web-5"}},
		{"waiting for the batch", func() Upgrade {
			u := running(rolling(nil))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0", "web-5"}, Phase: Reimaging, StartedAt: t0, ActedAt: t0}
			return u
		}(), set(10, map[string]func(*Instance){"web-0": func(i *Instance) { upgraded(i); starting(i) }, "web-5": upgraded}), 10,
			Step{Action: Wait, Until: t0.Add(20 * time.Second), Reason: "batch 1: waiting for web-0 to become healthy (at most until 2025-03-01T12:00:20Z)"}, []string{"web-0", "web-5"}},
		{"starting at the deadline counts as unhealthy", func() Upgrade {
			u := running(rolling(nil))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0", "web-5"}, Phase: Reimaging, StartedAt: t0.Add(-time.Minute), ActedAt: t0.Add(-20 * time.Second)}
			return u
		}(), set(10, map[string]func(*Instance){"web-0": func(i *Instance) { upgraded(i); starting(i) }, "web-5": upgraded}), 10,
			Step{Action: Stop, Reason: "after batch 1: 1 of 2 upgraded instances unhealthy (web-0: not healthy within 20s (booted, not probed yet)): maxUnhealthyUpgradedInstancePercent 20%"}, []string{"web-0", "web-5"}},
		{"upgraded instances of earlier batches count", func() Upgrade {
			u := running(rolling(nil), []string{"web-0", "web-5"}, []string{"web-1", "web-6"})
			u.Current = &Batch{Number: 3, Instances: []string{"web-2", "web-7"}, Phase: Reimaging, StartedAt: t0, ActedAt: t0}
			return u
		}(), set(10, map[string]func(*Instance){"web-0": upgraded, "web-5": func(i *Instance) { upgraded(i); sick("a")(i) }, "web-1": upgraded,
			"web-6": func(i *Instance) { upgraded(i); sick("b")(i) }, "web-2": upgraded, "web-7": upgraded}), 10,
			Step{Action: Stop, Reason: "after batch 3: 2 of 6 upgraded instances unhealthy (web-5: a; web-6: b): maxUnhealthyUpgradedInstancePercent 20%"}, []string{"web-2", "web-7"}},
		{"within maxUnhealthyUpgradedInstancePercent, the batch finishes", func() Upgrade {
			u := running(rolling(nil), []string{"web-0", "web-5"}, []string{"web-1", "web-6"})
			u.Current = &Batch{Number: 3, Instances: []string{"web-2", "web-7"}, Phase: Reimaging, StartedAt: t0, ActedAt: t0}
			return u
		}(), set(10, map[string]func(*Instance){"web-0": upgraded, "web-5": upgraded, "web-1": upgraded,
			"web-6": upgraded, "web-2": upgraded, "web-7": func(i *Instance) { upgraded(i); sick("b")(i) }}), 10,
			Step{Action: FinishBatch, Reason: "batch 3 finished: web-2, web-7 run sha256:b2b2b2b2b2b2; unhealthy: web-7: b"}, []string{"web-2", "web-7"}},
		{"a member scaled in is not waited for", func() Upgrade {
			u := running(rolling(nil))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0", "web-5"}, Phase: Reimaging, StartedAt: t0, ActedAt: t0}
			return u
		}(), set(5, map[string]func(*Instance){"web-0": upgraded}), 10,
			Step{Action: FinishBatch, Reason: "batch 1 finished: web-0 run sha256:b2b2b2b2b2b2"}, []string{"web-0"}},
		{"surge: creations already made are not repeated", func() Upgrade {
			u := running(rolling(func(p *Policy) { p.MaxSurge = true }))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0", "web-5"}, Phase: Surging, StartedAt: t0, ActedAt: t0}
			return u
		}(), append(set(10, nil), with(in("web-10", 0), func(i *Instance) { i.FaultDomain = 2; i.Digest, i.SurgeOf = newImage, "web-b2b2b2b2-20250301T110000Z" })), 10,
			Step{Action: CreateSurge, Surge: []Placement{{"web-0", 0, 0}}}, []string{"web-0", "web-5"}},
		{"surge: one too many is deleted", func() Upgrade {
			u := running(rolling(func(p *Policy) { p.MaxSurge = true }))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0"}, Phase: Surging, StartedAt: t0, ActedAt: t0}
			return u
		}(), append(set(5, nil), with(in("web-5", 0), surge(running(Policy{}))), with(in("web-6", 0), surge(running(Policy{})))), 5,
			Step{Action: Delete, Instances: []string{"web-6"}, Reason: "batch 1: deleting web-6: more surge instances than the batch needs"}, []string{"web-0"}},
		{"surge: healthy, the members go", func() Upgrade {
			u := running(rolling(func(p *Policy) { p.MaxSurge = true }))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0"}, Phase: Surging, StartedAt: t0, ActedAt: t0}
			return u
		}(), append(set(5, nil), with(in("web-5", 0), surge(running(Policy{})))), 5,
			Step{Action: Delete, Instances: []string{"web-0"}, Reason: "batch 1: web-5 healthy; draining and deleting web-0"}, []string{"web-0"}},
		{"surge: breach deletes the new ones", func() Upgrade {
			u := running(rolling(func(p *Policy) { p.MaxSurge = true }))
			u.Current = &Batch{Number: 1, Instances: []string{"web-0"}, Phase: Surging, StartedAt: t0, ActedAt: t0}
			return u
		}(), append(set(5, nil), with(in("web-5", 0), func(i *Instance) { surge(running(Policy{}))(i); sick("GET /: 500")(i) })), 5,
			Step{Action: Delete, Instances: []string{"web-5"}, Reason: "after batch 1: 1 of 1 upgraded instance unhealthy (web-5: GET /: 500): maxUnhealthyUpgradedInstancePercent 20%; deleting the batch's surge instance web-5 (the members keep serving), then stopping"}, []string{"web-0"}},
		{"surge of another upgrade, above capacity, goes", running(rolling(nil)),
			append(set(4, nil), with(in("web-9", 0), func(i *Instance) { i.Digest, i.SurgeOf = brokenImage, "web-ffffffff-20250301T100000Z" })), 4,
			Step{Action: Delete, Instances: []string{"web-9"}, Reason: "deleting web-9: surge instance no batch under way needs, above the set's capacity 4"}, nil},
		{"surge of another upgrade, within capacity, stays", running(rolling(nil)),
			append(set(3, nil), with(in("web-9", 0), func(i *Instance) { i.Digest, i.SurgeOf = brokenImage, "web-ffffffff-20250301T100000Z" })), 4,
			Step{Action: Adopt, Instances: []string{"web-9"}, Reason: "adopting web-9: surge instance no batch under way needs, within the set's capacity 4"}, nil},
		{"our own surge outside a surge batch goes", running(rolling(nil)),
			append(set(4, nil), with(in("web-9", 0), surge(running(Policy{})))), 4,
			Step{Action: Delete, Instances: []string{"web-9"}}, nil},
		{"a finished batch's surge with its mark is adopted again", func() Upgrade {
			u := running(rolling(func(p *Policy) { p.MaxSurge = true }))
			u.Batches = []Batch{{Number: 1, Instances: []string{"web-0"}, Surge: []string{"web-4"}}}
			return u
		}(), append(set(4, map[string]func(*Instance){"web-0": func(i *Instance) { i.Name = "web-3" }}), with(in("web-4", 0), surge(running(Policy{})))), 4,
			Step{Action: Adopt, Instances: []string{"web-4"}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := slices.Clone(c.set)
			beforeU := save(t, c.u)
			s := Next(c.u, c.set, c.capacity, t0)
			if !reflect.DeepEqual(c.set, before) || save(t, c.u) != beforeU {
				t.Fatal("Next changed its arguments")
			}
			if s.Action != c.want.Action || !slices.Equal(s.Instances, c.want.Instances) || !slices.Equal(s.Surge, c.want.Surge) || !s.Until.Equal(c.want.Until) {
				t.Errorf("got  %s %v %v %s: %s\nwant %s %v %v %s", s.Action, s.Instances, s.Surge, s.Until, s.Reason, c.want.Action, c.want.Instances, c.want.Surge, c.want.Until)
			}
			if c.want.Reason != "" && s.Reason != c.want.Reason {
				t.Errorf("reason\n%q, want\n%q", s.Reason, c.want.Reason)
			}
			var got []string
			if s.Batch != nil {
				got = s.Batch.Instances
			}
			if !slices.Equal(got, c.batch) {
				t.Errorf("batch %v, want %v", got, c.batch)
			}
		})
	}
}

func TestStart(t *testing.T) {
	p := rolling(nil)
	manual := Policy{}
	Default(&manual)
	for _, c := range []struct {
		name   string
		o      Options
		set    []Instance
		err    string // a part of it; "" for none
		status Status
		reason string
	}{
		{"rolling", Options{Set: "web", Target: newImage, Policy: p}, set(3, nil), "", Running, ""},
		{"everything runs the target", Options{Set: "web", Target: newImage, Policy: p}, set(3, map[string]func(*Instance){"web-0": upgraded, "web-1": upgraded, "web-2": upgraded}),
			"", Done, "nothing to upgrade: every instance of web runs sha256:b2b2b2b2b2b2"},
		{"the named run the target", Options{Set: "web", Target: newImage, Policy: manual, Instances: []string{"web-1"}}, set(3, map[string]func(*Instance){"web-1": upgraded}),
			"", Done, "nothing to upgrade: web-1 already run sha256:b2b2b2b2b2b2"},
		{"the rest is protected", Options{Set: "web", Target: newImage, Policy: p}, set(2, map[string]func(*Instance){"web-0": upgraded, "web-1": func(i *Instance) { i.Protected = true }}),
			"", Done, "nothing to upgrade: every instance of web runs sha256:b2b2b2b2b2b2; protected from scale-set actions, left as they were: web-1 (sha256:a1a1a1a1a1a1)"},
		{"unknown instance", Options{Set: "web", Target: newImage, Policy: manual, Instances: []string{"web-1", "web-9"}}, set(3, nil),
			`upgrade web: instance "web-9" is not in the set (it has web-0, web-1, web-2)`, "", ""},
		{"protected instance named", Options{Set: "web", Target: newImage, Policy: manual, Instances: []string{"web-1"}}, set(3, map[string]func(*Instance){"web-1": func(i *Instance) { i.Protected = true }}),
			"upgrade web: instance web-1 is protected from scale-set actions: remove its protection to upgrade it", "", ""},
		{"manual without instances", Options{Set: "web", Target: newImage, Policy: manual}, set(3, nil), "pass --instances", "", ""},
		{"no target", Options{Set: "web", Policy: p}, set(3, nil), "upgrade web: no target image digest", "", ""},
		{"no set", Options{Target: newImage, Policy: p}, set(3, nil), "upgrade: no set named", "", ""},
		{"invalid policy", Options{Set: "web", Target: newImage, Policy: Policy{Mode: "rolling"}}, set(3, nil), "upgradePolicy.mode: unknown mode", "", ""},
		{"negative timeout", Options{Set: "web", Target: newImage, Policy: p, HealthTimeout: -time.Second}, set(3, nil), "negative health timeout", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := Start(c.o, c.set, t0)
			switch {
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want one saying %q", err, c.err)
			case c.err == "" && err != nil:
				t.Fatal(err)
			case c.err != "":
				return
			}
			if u.Status != c.status || u.Reason != c.reason {
				t.Errorf("%s: %q, want %s: %q", u.Status, u.Reason, c.status, c.reason)
			}
		})
	}

	u, err := Start(Options{Set: "web", Target: newImage, Policy: manual, Instances: []string{"web-10", "web-2", "web-10"}}, set(11, nil), t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Upgrade{SchemaVersion: 1, ID: "web-b2b2b2b2-20250301T120000Z", Set: "web", Target: newImage, Previous: oldImage, From: []string{oldImage},
		Policy: manual, Instances: []string{"web-2", "web-10"}, HealthTimeout: DefaultHealthTimeout, StartedAt: t0, UpdatedAt: t0, Status: Running}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("got  %+v\nwant %+v", u, want)
	}
	// Several images: no previous, unless named.
	mixed := set(3, map[string]func(*Instance){"web-2": func(i *Instance) { i.Digest = brokenImage }})
	if u, _ := Start(Options{Set: "web", Target: newImage, Policy: p}, mixed, t0); u.Previous != "" || !slices.Equal(u.From, []string{oldImage, brokenImage}) {
		t.Errorf("mixed: previous %q, from %v", u.Previous, u.From)
	}
	if u, _ := Start(Options{Set: "web", Target: newImage, Previous: oldImage, Policy: p}, mixed, t0); u.Previous != oldImage {
		t.Errorf("mixed, previous named: %q", u.Previous)
	}
}

func TestRollback(t *testing.T) {
	u := running(rolling(nil), []string{"web-0"})
	u.Status, u.Reason = Stopped, "after batch 1: ..."
	r, err := Rollback(u, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Target != oldImage || r.Previous != newImage || r.RollbackOf != u.ID || r.Status != Running || len(r.Batches) != 0 || r.Policy != u.Policy ||
		r.ID != "web-a1a1a1a1-20250301T120000Z" {
		t.Errorf("rollback %+v", r)
	}
	// The rolled-back image's instances first, unhealthy or not, then
	// by update domain: web-3 runs a third image.
	mixed := set(5, map[string]func(*Instance){
		"web-0": func(i *Instance) { i.Digest = newImage; sick("503")(i) }, "web-4": func(i *Instance) { i.Digest = newImage },
		"web-3": func(i *Instance) { i.Digest = brokenImage },
	})
	r.Policy.MaxBatchInstancePercent, r.Policy.MaxUnhealthyInstancePercent = 100, 100
	if s := Next(r, mixed, 5, t0); !slices.Equal(s.Instances, []string{"web-0", "web-4", "web-3"}) {
		t.Errorf("rollback batch %v: %s", s.Instances, s.Reason)
	}
	// Its own failures do not stop the rollback: 2 of 5 unhealthy.
	r.Policy = rolling(nil)
	mixed[4].Health = mixed[0].Health
	if s := Next(r, mixed, 5, t0); s.Action != Reimage || !slices.Equal(s.Instances, []string{"web-0"}) {
		t.Errorf("rollback with its upgrade's failures: %s %v: %s", s.Action, s.Instances, s.Reason)
	}

	for _, c := range []struct {
		name string
		u    Upgrade
		err  string
	}{
		{"no previous", func() Upgrade { u := running(rolling(nil)); u.Previous, u.From = "", nil; return u }(), "nothing to roll back to: no previous image is known"},
		{"several previous", func() Upgrade {
			u := running(rolling(nil))
			u.Previous, u.From = "", []string{oldImage, brokenImage}
			return u
		}(),
			"nothing to roll back to: the instances ran 2 images when it started (sha256:a1a1a1a1a1a1, sha256:ffffffffffff)"},
		{"previous is the target", func() Upgrade { u := running(rolling(nil)); u.Previous = newImage; return u }(), "the previous image is the target"},
	} {
		if _, err := Rollback(c.u, t0); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}

func TestResume(t *testing.T) {
	stopped := running(rolling(nil))
	stopped.Status, stopped.Reason = Stopped, "maxUnhealthyInstancePercent 20% breached before batch 1"
	r, err := Resume(stopped, t0)
	if err != nil || r.Status != Running || r.Reason != "" || stopped.Status != Stopped {
		t.Errorf("resume: %+v, %v (the stopped record: %s)", r, err, stopped.Status)
	}
	failing := stopped
	failing.Current = &Batch{Number: 1, Instances: []string{"web-0"}, Phase: Failing}
	if r, _ := Resume(failing, t0); r.Current != nil || failing.Current == nil {
		t.Errorf("resuming a failed surge batch keeps it: %+v", r.Current)
	}
	inPlace := stopped
	inPlace.Current = &Batch{Number: 1, Instances: []string{"web-0"}, Phase: Reimaging}
	if r, _ := Resume(inPlace, t0); r.Current == nil {
		t.Error("resuming a stopped in-place batch drops it: its check must be made again")
	}
	for _, st := range []Status{Running, Paused} {
		u := running(rolling(nil))
		u.Status = st
		if r, err := Resume(u, t0); err != nil || save(t, r) != save(t, u) {
			t.Errorf("resume %s: %v", st, err)
		}
	}
	done := running(rolling(nil))
	done.Status, done.Reason = Done, "upgraded 3 instances"
	if _, err := Resume(done, t0); err == nil || !strings.Contains(err.Error(), "has finished (upgraded 3 instances): start a new one") {
		t.Errorf("resume done: %v", err)
	}
}

// TestSimulateResume: a stopped upgrade resumed without a fix stops again
// (the set as it was); once the cause is gone, it finishes, and no
// instance is upgraded twice.
func TestSimulateResume(t *testing.T) {
	for _, surge := range []bool{false, true} {
		t.Run(fmt.Sprintf("maxSurge=%v", surge), func(t *testing.T) {
			f := newFake(t, 4, 5, 3, oldImage)
			u := start(t, f, Options{Target: brokenImage, Policy: rolling(func(p *Policy) { p.MaxSurge = surge })})
			u, s := f.run(u, 4, nil, nil)
			if s.Action != Stop {
				t.Fatalf("%s: %s", s.Action, s.Reason)
			}
			before := f.digests()
			u, _ = Resume(u, f.now)
			u, s = f.run(u, 4, nil, nil)
			if s.Action != Stop || !reflect.DeepEqual(f.digests(), before) {
				t.Fatalf("resumed without a fix: %s, %v: %s", s.Action, f.digests(), s.Reason)
			}
			// The fix: the image works after all (a dependency came back),
			// and the failed instances restart.
			delete(f.broken, brokenImage)
			for _, in := range f.inst {
				if in.Health.Status == health.Unhealthy {
					f.boot(in, in.Digest)
				}
			}
			u, _ = Resume(u, f.now)
			u, s = f.run(u, 4, nil, nil)
			if s.Action != Complete || len(f.inst) != 4 {
				t.Fatalf("resumed after the fix: %s: %s", s.Action, s.Reason)
			}
			for name, in := range f.inst {
				if in.Digest != brokenImage || in.SurgeOf != "" {
					t.Errorf("%s: %+v", name, in.Instance)
				}
			}
			for name, n := range f.reimaged {
				if n > 1 {
					t.Errorf("%s reimaged %d times", name, n)
				}
			}
			if want := map[bool]int{false: 4, true: 4}[surge]; len(u.Batches) != want {
				t.Errorf("%d batches, want %d", len(u.Batches), want)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	u := running(rolling(func(p *Policy) { p.PauseTimeBetweenBatches = time.Minute }))
	b := Batch{Number: 1, Instances: []string{"web-0"}, Phase: Reimaging}
	before := save(t, u)
	r := u.Record(Step{Action: Reimage, Instances: []string{"web-0"}, Batch: &b, Progress: Progress{Pending: 3}}, t0)
	if save(t, u) != before {
		t.Fatal("Record changed its receiver")
	}
	b.Instances[0] = "changed"
	if r.Current == nil || r.Current.Instances[0] != "web-0" || !r.Current.StartedAt.Equal(t0) || !r.Current.ActedAt.Equal(t0) || r.Progress.Pending != 3 {
		t.Fatalf("current %+v, progress %+v", r.Current, r.Progress)
	}
	// A later reimage of the same batch moves the health deadline, not the start.
	r2 := r.Record(Step{Action: Reimage, Batch: r.Current}, t0.Add(time.Minute))
	if !r2.Current.StartedAt.Equal(t0) || !r2.Current.ActedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("second reimage: %+v", r2.Current)
	}
	fin := *r2.Current
	fin.Phase = ""
	r3 := r2.Record(Step{Action: FinishBatch, Batch: &fin}, t0.Add(2*time.Minute))
	if r3.Current != nil || len(r3.Batches) != 1 || r3.Status != Paused || !r3.PausedUntil.Equal(t0.Add(3*time.Minute)) || !r3.Batches[0].FinishedAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("finished: %+v", r3)
	}
	if again := r3.Record(Step{Action: FinishBatch, Batch: &fin}, t0.Add(5*time.Minute)); len(again.Batches) != 1 {
		t.Error("a batch finished twice")
	}
	r4 := r3.Record(Step{Action: Stop, Reason: "why"}, t0.Add(3*time.Minute))
	if r4.Status != Stopped || r4.Reason != "why" {
		t.Errorf("stop: %s %q", r4.Status, r4.Reason)
	}
	if again := r4.Record(Step{Action: Stop, Reason: "another"}, t0.Add(4*time.Minute)); again.Reason != "why" {
		t.Error("a second stop replaced the first's reason")
	}
	r5 := r3.Record(Step{Action: Complete, Reason: "all done"}, t0.Add(3*time.Minute))
	if r5.Status != Done || r5.Reason != "all done" || !r5.PausedUntil.IsZero() {
		t.Errorf("complete: %+v", r5)
	}
	rb := r3
	rb.RollbackOf = "x"
	if rb.Record(Step{Action: Complete}, t0).Status != RolledBack {
		t.Error("a finished rollback is not rolledBack")
	}
}

func TestParse(t *testing.T) {
	u := running(rolling(func(p *Policy) { p.PauseTimeBetweenBatches = 30 * time.Second }), []string{"web-0"})
	u.Current = &Batch{Number: 2, Instances: []string{"web-5"}, UpdateDomains: []int{0}, Phase: Reimaging, StartedAt: t0, ActedAt: t0}
	b, err := json.MarshalIndent(u, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"schemaVersion": 1`, `"healthTimeout": "20s"`, `"pauseTimeBetweenBatches": "30s"`, `"status": "running"`,
		`"phase": "reimaging"`, `"maxBatchInstancePercent": 20`, `"startedAt": "2025-03-01T12:00:00Z"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("the record lacks %s:\n%s", key, b)
		}
	}
	for _, absent := range []string{`"pausedUntil"`, `"rollbackOf"`, `"HealthTimeout"`, `"PauseTimeBetweenBatches"`} {
		if strings.Contains(string(b), absent) {
			t.Errorf("the record has %s:\n%s", absent, b)
		}
	}
	back, err := Parse(b)
	if err != nil || !reflect.DeepEqual(back, u) {
		t.Errorf("round trip: %v\n%+v\n%+v", err, back, u)
	}
	for _, c := range []struct{ json, err string }{
		{`{"schemaVersion":2,"id":"x","set":"web","target":"d","status":"running"}`, "schemaVersion 2 is newer than this kiln reads (1)"},
		{`{"id":"x","set":"web","target":"d","status":"running"}`, "no schemaVersion"},
		{`{"schemaVersion":1,"set":"web","target":"d","status":"running"}`, "id, set and target are required"},
		{`{"schemaVersion":1,"id":"x","set":"web","target":"d","status":"sleeping"}`, `unknown status "sleeping"`},
		{`{"schemaVersion":1,"id":"x","set":"web","target":"d","status":"running","healthTimeout":"long"}`, "healthTimeout"},
		{`[]`, "upgrade record"},
	} {
		if _, err := Parse([]byte(c.json)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.json, err, c.err)
		}
	}
}

func TestCompareNames(t *testing.T) {
	names := []string{"web-10", "web-2", "db-1", "web-1", "web", "web-02", "web-x", "a9", "a10"}
	slices.SortFunc(names, compareNames)
	if want := []string{"a9", "a10", "db-1", "web", "web-1", "web-02", "web-2", "web-10", "web-x"}; !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
}
