package repair

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

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const refused = "GET /healthz: connect 127.0.0.1:40001: connection refused"

var on = Policy{Enabled: true, GracePeriod: 10 * time.Minute, Action: Replace}

func ok(name string) Instance {
	return Instance{Name: name, Health: health.State{Status: health.Healthy, Reason: "2 probes in a row passed", Since: t0.Add(-time.Hour), Booted: t0.Add(-2 * time.Hour)}}
}

// bad is an instance unhealthy for d before t0, with reason.
func bad(name string, d time.Duration, reason string) Instance {
	return Instance{Name: name, Health: health.State{Status: health.Unhealthy, Reason: reason, Since: t0.Add(-d), Booted: t0.Add(-2 * time.Hour)}}
}

func boot(name string, at time.Time) Instance {
	return Instance{Name: name, Health: health.Start(at)}
}

func fleet(n int, changes ...Instance) []Instance {
	var out []Instance
	for i := range n {
		out = append(out, ok(fmt.Sprintf("web-%d", i)))
	}
	for _, c := range changes {
		if i := slices.IndexFunc(out, func(x Instance) bool { return x.Name == c.Name }); i >= 0 {
			out[i] = c
		} else {
			out = append(out, c)
		}
	}
	return out
}

// failedRepair is a finished repair of name at at that came back with again.
func failedRepair(name string, at time.Time, again string) Repair {
	return Repair{Instance: name, Action: Replace, At: at, Reason: again, Outcome: FailedAgain, Again: again, SettledAt: at.Add(time.Minute)}
}

func TestDecide(t *testing.T) {
	protect := func(x Instance, scaleIn bool) Instance {
		if scaleIn {
			x.ProtectFromScaleIn = true
		} else {
			x.ProtectFromScaleSetActions = true
		}
		return x
	}
	for _, c := range []struct {
		name      string
		p         Policy
		in        Input
		repair    []string
		held      []string // "name: why" prefixes
		suspended bool
		reason    string // a prefix; "" not checked
	}{
		{"healthy set", on, Input{Capacity: 3, Instances: fleet(3)}, nil, nil, false, "nothing to repair"},
		{"off", Policy{GracePeriod: time.Minute, Action: Replace}, Input{Capacity: 3, Instances: fleet(3, bad("web-1", time.Hour, refused))}, nil, nil, false, "automatic repairs are off"},
		{"in its grace period", on, Input{Capacity: 3, Instances: fleet(3, bad("web-1", 10*time.Minute-time.Nanosecond, refused))}, nil,
			[]string{"web-1: unhealthy for 9m59.999999999s, in its grace period until 2025-03-01T12:00:00Z (" + refused + ")"}, false, "nothing to repair; 1 held"},
		{"at the end of its grace period", on, Input{Capacity: 3, Instances: fleet(3, bad("web-1", 10*time.Minute, refused))}, []string{"web-1"}, nil, false, "repairing: replace web-1"},
		{"starting is not unhealthy", on, Input{Capacity: 3, Instances: fleet(3, boot("web-1", t0.Add(-time.Hour)))}, nil, nil, false, ""},
		{"the policy's action", Policy{Enabled: true, GracePeriod: time.Minute, Action: Restart}, Input{Capacity: 3, Instances: fleet(3, bad("web-2", time.Hour, refused))}, []string{"web-2"}, nil, false, "repairing: restart web-2"},
		{"protected from scale-set actions", on, Input{Capacity: 3, Instances: fleet(3, protect(bad("web-1", time.Hour, refused), false))}, nil,
			[]string{"web-1: protected from scale-set actions"}, false, ""},
		{"protected from scale-in", on, Input{Capacity: 3, Instances: fleet(3, protect(bad("web-1", time.Hour, refused), true))}, nil,
			[]string{"web-1: protected from scale-in"}, false, ""},
		{"one at a time below 10", on, Input{Capacity: 9, Instances: fleet(9, bad("web-1", time.Hour, "a"), bad("web-2", 2*time.Hour, "b"))}, []string{"web-2"},
			[]string{"web-1: waiting for a repair slot: 1 at a time (20% of capacity 9, at least one), 1 under way"}, false, ""},
		{"two at a time at 10", on, Input{Capacity: 10, Instances: fleet(10, bad("web-1", time.Hour, "a"), bad("web-2", 2*time.Hour, "b"), bad("web-3", 3*time.Hour, "c"))},
			[]string{"web-3", "web-2"}, []string{"web-1: waiting for a repair slot: 2 at a time"}, false, ""},
		{"capacity 0 still repairs one", on, Input{Capacity: 0, Instances: fleet(1, bad("web-0", time.Hour, refused))}, []string{"web-0"}, nil, false, ""},
		{"a repair under way holds the slot", on, Input{Capacity: 5, Instances: fleet(5, boot("web-0", t0.Add(-time.Minute)), bad("web-3", time.Hour, "a")),
			History: []Repair{{Instance: "web-0", Action: Replace, At: t0.Add(-2 * time.Minute), Reason: "x"}}}, nil,
			[]string{"web-0: replace under way, ordered at 2025-03-01T11:58:00Z (for: x)", "web-3: waiting for a repair slot"}, false, ""},
		{"a replaced instance not there yet", on, Input{Capacity: 5, Instances: fleet(4),
			History: []Repair{{Instance: "web-4", Action: Replace, At: t0.Add(-2 * time.Minute), Reason: "x"}}}, nil,
			[]string{"web-4: replace under way"}, false, ""},
		{"every instance fails the same way", on, Input{Set: "web", Capacity: 3, Instances: []Instance{
			bad("web-0", time.Hour, "GET /healthz: connect 127.0.0.1:40001: connection refused"),
			bad("web-1", time.Hour, "GET /healthz: connect 127.0.0.1:40002: connection refused"),
			bad("web-2", time.Minute, "GET /healthz: connect 127.0.0.1:40003: connection refused")}}, nil,
			[]string{"web-0: repairs suspended", "web-1: repairs suspended", "web-2: repairs suspended"}, true,
			"every instance of web fails the same way (3 of 3: GET /healthz: connect 127.0.0.1:40001: connection refused): repairs suspended, as new instances would fail alike; they resume by themselves once an instance is healthy again or the failures differ"},
		{"every instance fails, differently", on, Input{Capacity: 2, Instances: []Instance{bad("web-0", time.Hour, "GET /healthz: status 503"), bad("web-1", time.Hour, "GET /healthz: status 500")}},
			[]string{"web-0"}, []string{"web-1: waiting"}, false, ""},
		{"a set of one is not a storm", on, Input{Capacity: 1, Instances: fleet(1, bad("web-0", time.Hour, refused))}, []string{"web-0"}, nil, false, ""},
		{"repairs that do not help", on, Input{Set: "web", Capacity: 5, Instances: fleet(5, bad("web-1", time.Hour, "GET /healthz: status 503"), bad("web-4", time.Hour, "GET /healthz: status 503")),
			History: []Repair{
				{Instance: "web-2", Action: Replace, At: t0.Add(-4 * time.Hour), Outcome: Recovered},
				failedRepair("web-1", t0.Add(-3*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-4", t0.Add(-2*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-1", t0.Add(-90*time.Minute), "GET /healthz: status 503")}}, nil,
			[]string{"web-1: repairs suspended", "web-4: repairs suspended"}, true,
			"the last 3 repairs of web came back failing the same way (web-1, web-4, web-1: GET /healthz: status 503): repairs suspended: fix the image or recipe, then `kiln deploy repair web --resume`"},
		{"resumed", on, Input{Set: "web", Capacity: 5, Instances: fleet(5, bad("web-1", time.Hour, "GET /healthz: status 503")), Resumed: t0.Add(-time.Minute),
			History: []Repair{
				failedRepair("web-1", t0.Add(-3*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-4", t0.Add(-2*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-1", t0.Add(-90*time.Minute), "GET /healthz: status 503")}}, []string{"web-1"}, nil, false, ""},
		{"a storm instance healthy again lifts it", on, Input{Set: "web", Capacity: 5, Instances: fleet(5, bad("web-1", time.Hour, "GET /healthz: status 503")),
			History: []Repair{
				failedRepair("web-1", t0.Add(-3*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-4", t0.Add(-2*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-1", t0.Add(-90*time.Minute), "GET /healthz: status 503")}}, []string{"web-1"}, nil, false, ""},
		{"failures that differ are no storm", on, Input{Capacity: 5, Instances: fleet(5, bad("web-1", time.Hour, "a")),
			History: []Repair{
				failedRepair("web-1", t0.Add(-3*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-4", t0.Add(-2*time.Hour), "GET /healthz: status 500"),
				failedRepair("web-1", t0.Add(-90*time.Minute), "GET /healthz: status 503")}}, []string{"web-1"}, nil, false, ""},
		{"a recovery in between is no storm", on, Input{Capacity: 5, Instances: fleet(5, bad("web-1", time.Hour, "a")),
			History: []Repair{
				failedRepair("web-1", t0.Add(-4*time.Hour), "GET /healthz: status 503"),
				failedRepair("web-4", t0.Add(-3*time.Hour), "GET /healthz: status 503"),
				{Instance: "web-3", Action: Replace, At: t0.Add(-2 * time.Hour), Outcome: Recovered},
				failedRepair("web-1", t0.Add(-90*time.Minute), "GET /healthz: status 503")}}, []string{"web-1"}, nil, false, ""},
		{"repairs that never came back are a storm", on, Input{Set: "web", Capacity: 5, Instances: fleet(5, bad("web-1", time.Hour, "a"), bad("web-2", time.Hour, "a"), bad("web-3", time.Hour, "a")),
			History: []Repair{
				{Instance: "web-1", Action: Replace, At: t0.Add(-3 * time.Hour), Outcome: NotBack, Again: "not back 10m0s after the replace"},
				{Instance: "web-2", Action: Replace, At: t0.Add(-2 * time.Hour), Outcome: NotBack, Again: "not back 10m0s after the replace"},
				{Instance: "web-3", Action: Replace, At: t0.Add(-time.Hour), Outcome: NotBack, Again: "not back 10m0s after the replace"}}},
			nil, []string{"web-1: repairs suspended", "web-2: repairs suspended", "web-3: repairs suspended"}, true, "the last 3 repairs of web came back failing the same way (web-1, web-2, web-3: not back 10m0s after the replace)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.in.Now = t0
			if c.in.Set == "" {
				c.in.Set = "web"
			}
			before, _ := json.Marshal(c.in)
			d := Decide(c.p, c.in)
			if after, _ := json.Marshal(c.in); string(after) != string(before) {
				t.Fatal("Decide changed its input")
			}
			var got []string
			for _, o := range d.Repair {
				got = append(got, o.Instance)
				if o.Action != c.p.Action {
					t.Errorf("%s repaired by %s, the policy says %s", o.Instance, o.Action, c.p.Action)
				}
			}
			if !slices.Equal(got, c.repair) {
				t.Errorf("repair %v, want %v (%s)", got, c.repair, d.Reason)
			}
			if len(d.Held) != len(c.held) {
				t.Errorf("held %v, want %v", d.Held, c.held)
			} else {
				for i, h := range d.Held {
					if s := h.Instance + ": " + h.Why; !strings.HasPrefix(s, c.held[i]) {
						t.Errorf("held\n%q, want\n%q…", s, c.held[i])
					}
				}
			}
			if d.Suspended != c.suspended || !strings.HasPrefix(d.Reason, c.reason) {
				t.Errorf("suspended %v: %q, want %v: %q…", d.Suspended, d.Reason, c.suspended, c.reason)
			}
			// Every order is in the history, under way.
			for _, o := range d.Repair {
				if !slices.ContainsFunc(d.History, func(r Repair) bool { return r.Instance == o.Instance && r.InFlight() && r.At.Equal(t0) }) {
					t.Errorf("order %s not in the history", o.Instance)
				}
			}
		})
	}
}

func TestSettle(t *testing.T) {
	at := t0.Add(-5 * time.Minute)
	under := Repair{Instance: "web-1", Action: Replace, At: at, Reason: refused}
	for _, c := range []struct {
		name  string
		x     *Instance
		now   time.Time
		want  Outcome
		again string
	}{
		{"not there yet", nil, t0, "", ""},
		{"not there a grace period later", nil, at.Add(10 * time.Minute), NotBack, "not back 10m0s after the replace"},
		{"booted before the repair", &Instance{Name: "web-1", Health: health.State{Status: health.Healthy, Booted: at.Add(-time.Second)}}, t0, "", ""},
		{"booted before the repair, a grace period later", &Instance{Name: "web-1", Health: health.State{Status: health.Unhealthy, Booted: at.Add(-time.Second)}}, at.Add(10 * time.Minute), NotBack, "not back 10m0s after the replace"},
		{"booted, starting", &Instance{Name: "web-1", Health: health.Start(at)}, t0, "", ""},
		{"booted, starting past the grace period", &Instance{Name: "web-1", Health: health.Start(at)}, at.Add(time.Hour), "", ""},
		{"booted, healthy", &Instance{Name: "web-1", Health: health.State{Status: health.Healthy, Booted: at.Add(time.Minute)}}, t0, Recovered, ""},
		{"booted, unhealthy", &Instance{Name: "web-1", Health: health.State{Status: health.Unhealthy, Reason: "status 503", Booted: at}}, t0, FailedAgain, "status 503"},
	} {
		t.Run(c.name, func(t *testing.T) {
			by := map[string]Instance{}
			if c.x != nil {
				by[c.x.Name] = *c.x
			}
			in := []Repair{under}
			got := settle(in, by, c.now, 10*time.Minute)[0]
			if in[0] != under {
				t.Fatal("settle changed its input")
			}
			if got.Outcome != c.want || got.Again != c.again {
				t.Errorf("%q (%q), want %q (%q)", got.Outcome, got.Again, c.want, c.again)
			}
			if (got.Outcome != "") != !got.SettledAt.IsZero() {
				t.Errorf("settled at %s", got.SettledAt)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	var h []Repair
	for i := range 40 {
		r := Repair{Instance: fmt.Sprintf("web-%d", i), At: t0.Add(time.Duration(i) * time.Minute), Outcome: Recovered}
		if i%10 == 0 {
			r.Outcome = "" // under way: always kept
		}
		h = append(h, r)
	}
	got := prune(h)
	finished, under := 0, 0
	for i, r := range got {
		if r.InFlight() {
			under++
		} else {
			finished++
		}
		if i > 0 && got[i-1].At.After(r.At) {
			t.Fatal("out of order")
		}
	}
	if finished != HistoryLength || under != 4 || got[len(got)-1].Instance != "web-39" {
		t.Errorf("%d finished, %d under way, last %s", finished, under, got[len(got)-1].Instance)
	}
	if len(prune(h[:5])) != 5 {
		t.Error("a short history was pruned")
	}
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		a, an, b, bn string
		same         bool
	}{
		{"GET /healthz: connect 127.0.0.1:40001: connection refused", "web-0", "GET /healthz: connect 127.0.0.1:40002: connection refused", "web-1", true},
		{"GET /healthz: status 503, want 200", "web-0", "GET /healthz: status 500, want 200", "web-1", false},
		{"GET /healthz: status 503, want 200", "web-0", "GET /ready: status 503, want 200", "web-1", false},
		{"connect 8080: connection refused", "web-0", "connect 8081: connection refused", "web-1", false},
		{"web-0: disk full", "web-0", "web-1: disk full", "web-1", true},
		{"timeout after 2.003s", "a", "timeout after 1.5s", "b", true},
		{"no answer in 1m30s", "a", "no answer in 250ms", "b", true},
		{"web-1 and web-10 differ", "web-1", "web-1 and web-10 differ", "web-10", false},
		{`GET /: status 503 (body "down since 2025-03-01T11:59:02Z")`, "a", `GET /: status 503 (body "down since 2025-03-01T11:58:40.5Z")`, "b", true},
		{`body "restarted at 11:59:02"`, "a", `body "restarted at 09:00:00"`, "b", true},
		{"dial tcp [fe80::1]:8080: no route", "a", "dial tcp [fe80::2]:8080: no route", "b", true},
		{"request id 3f2a9c1b0d4e55aa failed", "a", "request id 0011223344556677 failed", "b", true},
		{"  connection   refused ", "a", "connection refused", "b", true},
		{"not back 10m0s after the replace", "a", "not back 10m0s after the replace", "b", true},
	} {
		na, nb := normalize(c.a, c.an), normalize(c.b, c.bn)
		if (na == nb) != c.same {
			t.Errorf("%q (%s) and %q (%s): %q vs %q, want same=%v", c.a, c.an, c.b, c.bn, na, nb, c.same)
		}
	}
}

func TestReplaceWord(t *testing.T) {
	for _, c := range []struct{ s, word, want string }{
		{"web-1 failed", "web-1", "X failed"},
		{"web-10 failed", "web-1", "web-10 failed"},
		{"aweb-1", "web-1", "aweb-1"},
		{"web-1,web-1 web-1x (web-1)", "web-1", "X,X web-1x (X)"},
		{"3f2a9c1b0d4e55aa a", "a", "3f2a9c1b0d4e55aa X"},
		{"aaa", "aa", "aaa"},
		{"a", "a", "X"},
		{"", "a", ""},
		{"abc", "", "abc"},
	} {
		if got := replaceWord(c.s, c.word, "X"); got != c.want {
			t.Errorf("replaceWord(%q, %q) = %q, want %q", c.s, c.word, got, c.want)
		}
	}
}

func TestHistoryJSON(t *testing.T) {
	h := []Repair{
		{Instance: "web-1", Action: Replace, At: t0, Reason: refused},
		{Instance: "web-2", Action: Restart, At: t0, Reason: "x", Outcome: FailedAgain, Again: "y", SettledAt: t0.Add(time.Minute)},
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"instance":"web-1","action":"Replace","at":"2025-03-01T12:00:00Z","reason":"` + refused + `"},` +
		`{"instance":"web-2","action":"Restart","at":"2025-03-01T12:00:00Z","reason":"x","outcome":"failedAgain","again":"y","settledAt":"2025-03-01T12:01:00Z"}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var back []Repair
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, h) {
		t.Errorf("round trip: %v %+v", err, back)
	}
}
