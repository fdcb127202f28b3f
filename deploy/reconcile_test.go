package deploy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// desiredSet places capacity instances of set over hosts (ordinal n on
// hosts[n mod len(hosts)], FD = n mod FDs, UD = n mod 5), as the fleet's
// placement does, for the reconcile tests.
func desiredSet(set string, capacity int, hosts []string, image string) []Desired {
	var out []Desired
	for n := 0; n < capacity; n++ {
		out = append(out, Desired{Host: hosts[n%len(hosts)], Spec: InstanceSpec{
			Name: fmt.Sprintf("%s-%d", set, n),
			Meta: Metadata{Set: set, Ordinal: n, FaultDomain: n % len(hosts), UpdateDomain: n % 5, Image: image, Spec: "s1"},
		}})
	}
	return out
}

func names(f *fakeHost) []string {
	inst, _, _ := f.Instances(context.Background())
	var out []string
	for _, i := range inst {
		out = append(out, i.Name+":"+string(i.State))
	}
	return out
}

func TestApplyScales(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost("qemu:///system")
	hosts := Hosts{h.uri: h}
	one := []string{h.uri}
	for _, c := range []struct {
		capacity int
		want     []string
	}{
		{2, []string{"web-0:running", "web-1:running"}},
		{4, []string{"web-0:running", "web-1:running", "web-2:running", "web-3:running"}},
		{1, []string{"web-0:running"}},
		{0, nil},
	} {
		// One create at a time, so the order below is the plan's.
		if _, err := Apply(ctx, hosts, []string{"web"}, desiredSet("web", c.capacity, one, "sha256:a"), ApplyOptions{LockDir: t.TempDir(), Parallel: 1}); err != nil {
			t.Fatal(err)
		}
		if got := names(h); !reflect.DeepEqual(got, c.want) {
			t.Fatalf("capacity %d: %v, want %v", c.capacity, got, c.want)
		}
		// Idempotent: a second apply changes nothing.
		plan, err := Apply(ctx, hosts, []string{"web"}, desiredSet("web", c.capacity, one, "sha256:a"), ApplyOptions{})
		if err != nil || plan.Pending() {
			t.Fatalf("second apply at capacity %d: %+v %v", c.capacity, plan, err)
		}
	}
	// Scale-in went from the highest ordinal down.
	want := []string{"create web-0", "create web-1", "create web-2", "create web-3", "delete web-3", "delete web-2", "delete web-1", "delete web-0"}
	if !reflect.DeepEqual(h.log, want) {
		t.Errorf("order: %v\nwant %v", h.log, want)
	}
}

// apply --prune replaces an instance made from another spec: deleted, then
// made again from the fleet file; without --prune it stays as it is.
func TestApplyPruneReplaces(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost("qemu:///system")
	hosts := Hosts{h.uri: h}
	one := []string{h.uri}
	if _, err := Apply(ctx, hosts, []string{"web"}, desiredSet("web", 2, one, "sha256:a"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := desiredSet("web", 2, one, "sha256:a")
	changed[1].Spec.Meta.Spec = "s2"
	h.log = nil
	if _, err := Apply(ctx, hosts, []string{"web"}, changed, ApplyOptions{}); err != nil || h.log != nil {
		t.Fatalf("without --prune: %v, log %v", err, h.log)
	}
	if _, err := Apply(ctx, hosts, []string{"web"}, changed, ApplyOptions{Prune: true}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"delete web-1", "create web-1"}; !reflect.DeepEqual(h.log, want) {
		t.Errorf("log %v, want %v", h.log, want)
	}
	if insts, _, _ := h.Instances(ctx); insts[1].Meta.Spec != "s2" || insts[0].Meta.Spec != "s1" {
		t.Errorf("after --prune: %+v", insts)
	}
}

// A kill -9 in the middle of apply leaves a half-made instance; the next
// apply completes what the file wants and removes what it does not, with
// nothing orphaned.
func TestApplyConvergesAfterCrash(t *testing.T) {
	ctx := context.Background()
	for _, capacity := range []int{4, 1} { // the same file again, or one edited to 1
		h := newFakeHost("qemu:///system")
		h.failAfter = 3 // the third create dies after its overlay
		hosts := Hosts{h.uri: h}
		one := []string{h.uri}
		_, err := Apply(ctx, hosts, []string{"db"}, desiredSet("db", 4, one, "sha256:a"), ApplyOptions{Parallel: 1})
		if !errors.Is(err, errKilled) {
			t.Fatalf("want the crash, got %v", err)
		}
		if got := names(h); !reflect.DeepEqual(got, []string{"db-0:running", "db-1:running", "db-2:partial"}) {
			t.Fatalf("after the crash: %v", got)
		}
		desired := desiredSet("db", capacity, one, "sha256:a")
		if _, err := Apply(ctx, hosts, []string{"db"}, desired, ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, d := range desired {
			want = append(want, d.Spec.Name+":running")
		}
		if got := names(h); !reflect.DeepEqual(got, want) || len(h.volumes) != len(desired) {
			t.Fatalf("after re-apply: %v (volumes %v), want %v", got, h.volumes, want)
		}
	}
}

// What apply must never do: touch a foreign domain, delete a kiln set the
// file does not name (unless pruning), or silently replace an outdated
// instance; and what it must: re-create a domain deleted by hand, start a
// stopped one, move an instance whose host changed.
func TestDiff(t *testing.T) {
	a, b := "qemu+unix:///system?socket=/a", "qemu+unix:///system?socket=/b"
	inst := func(name, host string, ord int, state State, image string) Instance {
		return Instance{Name: name, Host: host, State: state, Meta: Metadata{Set: "web", Ordinal: ord, UpdateDomain: ord % 5, FaultDomain: 0, Image: image, Spec: "s1"}}
	}
	desired := desiredSet("web", 3, []string{a}, "sha256:new")
	actual := []Instance{
		inst("web-0", a, 0, Running, "sha256:new"),
		inst("web-1", a, 1, Stopped, "sha256:new"),
		// web-2 was deleted by hand
		inst("web-3", a, 3, Running, "sha256:new"),
		{Name: "api-0", Host: b, State: Running, Meta: Metadata{Set: "api"}},
	}
	got := Diff([]string{"web"}, desired, actual, false)
	want := []Change{
		{Op: OpDelete, Instance: "web-3", Host: a, Set: "web", Act: true, Reason: "beyond the set's capacity"},
		{Op: OpCreate, Instance: "web-2", Host: a, Set: "web", Act: true, Reason: "fault domain 0, update domain 2"},
		{Op: OpStart, Instance: "web-1", Host: a, Set: "web", Act: true, Reason: "stopped"},
		{Op: OpForeign, Instance: "api-0", Host: b, Set: "api", Act: false, Reason: `set "api" is not in this fleet file; kept (--prune removes it)`},
	}
	if !reflect.DeepEqual(got.Changes, want) || got.Unchanged != 1 {
		t.Fatalf("plan:\n%+v\nwant\n%+v (unchanged %d)", got.Changes, want, got.Unchanged)
	}
	if pruned := Diff([]string{"web"}, desired, actual, true); !pruned.Changes[3].Act {
		t.Error("--prune does not remove the foreign set")
	}

	// An outdated image is reported, not acted on.
	old := []Instance{inst("web-0", a, 0, Running, "sha256:old")}
	p := Diff([]string{"web"}, desiredSet("web", 1, []string{a}, "sha256:new"), old, false)
	if len(p.Changes) != 1 || p.Changes[0].Op != OpOutdated || p.Changes[0].Act || p.Pending() {
		t.Errorf("outdated: %+v", p)
	}
	// A foreign spec (kiln's metadata, another spec hash) is reported too.
	other := inst("web-0", a, 0, Running, "sha256:new")
	other.Meta.Spec = "s0"
	p = Diff([]string{"web"}, desiredSet("web", 1, []string{a}, "sha256:new"), []Instance{other}, false)
	if len(p.Changes) != 1 || p.Changes[0].Op != OpOutdated || p.Changes[0].Act {
		t.Errorf("foreign spec: %+v", p)
	}
	// With --prune both are replaced.
	for _, actual := range [][]Instance{old, {other}} {
		p = Diff([]string{"web"}, desiredSet("web", 1, []string{a}, "sha256:new"), actual, true)
		if len(p.Changes) != 1 || p.Changes[0].Op != OpReplace || !p.Changes[0].Act {
			t.Errorf("pruned: %+v", p)
		}
	}
	// A host change moves the instance: delete on the old host, create on the new.
	p = Diff([]string{"web"}, desiredSet("web", 1, []string{b}, "sha256:new"), []Instance{inst("web-0", a, 0, Running, "sha256:new")}, false)
	if len(p.Changes) != 2 || p.Changes[0].Op != OpDelete || p.Changes[0].Host != a || p.Changes[1].Op != OpCreate || p.Changes[1].Host != b {
		t.Errorf("move: %+v", p)
	}
}

// Restarting by update domain: every instance restarts once, grouped by
// update domain in order, and an instance of the next domain restarts only
// after all of the previous domain run again.
func TestRestartByUpdateDomain(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost("qemu:///system")
	hosts := Hosts{h.uri: h}
	if _, err := Apply(ctx, hosts, []string{"web"}, desiredSet("web", 7, []string{h.uri}, "sha256:a"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	h.log = nil
	if err := RestartByUpdateDomain(ctx, hosts, "web", time.Second, nil); err != nil {
		t.Fatal(err)
	}
	// desiredSet puts web-n in update domain n mod 5.
	want := []string{"start web-0", "start web-5", "start web-1", "start web-6", "start web-2", "start web-3", "start web-4"}
	if !reflect.DeepEqual(h.log, want) {
		t.Errorf("restarts: %v\nwant %v", h.log, want)
	}
	if err := RestartByUpdateDomain(ctx, hosts, "nosuch", time.Second, nil); err == nil {
		t.Error("restarting a set with no instances succeeded")
	}
}
