package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/view"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testutil"
)

// needHAProxy: the load-balanced tests run a real HAProxy.
func needHAProxy(t *testing.T) {
	t.Helper()
	testutil.Integration(t)
	testutil.NeedTool(t, "haproxy")
}

func healthyCount(c *Controller, set string) int {
	snap, _ := c.Snapshot(context.Background())
	n := 0
	for _, s := range snap.Sets {
		if s.Name != set {
			continue
		}
		for _, in := range s.Instances {
			if in.Health == health.Healthy && in.LoadBalancer != view.OutLoadBalancer && in.LoadBalancer != view.Draining {
				n++
			}
		}
	}
	return n
}

func setView(c *Controller, set string) view.SetView {
	snap, _ := c.Snapshot(context.Background())
	for _, s := range snap.Sets {
		if s.Name == set {
			return s
		}
	}
	return view.SetView{}
}

// TestBalancedRepaired: three instances behind HAProxy share the requests;
// one whose app fails leaves the balancer, and automatic repair replaces
// it; the replacement takes requests again.
func TestBalancedRepaired(t *testing.T) {
	needHAProxy(t)
	d := newFleetDir(t)
	v1 := d.image(t, "v1")
	listen := fmt.Sprintf("127.0.0.1:%d", tcpPort(t))
	file := d.fleet(t, `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./v1.qcow2
recipe: ./web.yaml
capacity: 3
health: {interval: 1s, probes: 2}
loadBalancer: {listen: `+listen+`}
automaticRepairs: {enabled: true, gracePeriod: 3s, repairAction: Replace}
`)
	h := newServerHost(t, nil)
	c := newController(t, file, filepath.Join(d.dir, "state"), h)
	defer c.Close()
	defer c.StopBalancers(context.Background())
	runUntil(t, c, time.Minute, "3 healthy instances in the load balancer", func() bool { return healthyCount(c, "web") == 3 })

	cl := startClient(listen, 3)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && len(h.hits()) == 3 && min3(h.hits()) < 5 {
		time.Sleep(50 * time.Millisecond)
	}
	ok, failed, errs, seen := cl.finish()
	if failed > 0 || len(seen) != 3 {
		t.Fatalf("through the balancer: %d ok, %d failed %v; answered by %v", ok, failed, errs, seen)
	}
	for name, n := range seen {
		if n*5 < ok/3 { // round robin: each about a third
			t.Errorf("%s answered %d of %d requests: not spread", name, n, ok)
		}
	}

	// web-1's app fails: it leaves the balancer, then it is replaced.
	h.setSick("web-1", true)
	runUntil(t, c, 30*time.Second, "web-1 unhealthy and out", func() bool {
		for _, in := range setView(c, "web").Instances {
			if in.Name == "web-1" {
				return in.Health == health.Unhealthy && in.LoadBalancer == view.OutLoadBalancer
			}
		}
		return false
	})
	before := h.hits()["web-1"]
	cl = startClient(listen, 2)
	time.Sleep(500 * time.Millisecond) // traffic for a while; nothing is awaited
	_, failed, errs, seen = cl.finish()
	if failed > 0 || seen["web-1"] > 0 {
		t.Fatalf("an unhealthy instance got requests (%d), or requests failed (%d %v)", seen["web-1"], failed, errs)
	}
	if h.hits()["web-1"] != before {
		t.Errorf("web-1 was sent requests while unhealthy")
	}
	runUntil(t, c, 60*time.Second, "web-1 repaired and healthy", func() bool {
		h.mu.Lock()
		n := h.creates["web-1"]
		h.mu.Unlock()
		return n == 2 && healthyCount(c, "web") == 3
	})
	events, err := ReadEvents(filepath.Join(d.dir, "state"), "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(events, view.EventRepaired, "Replace web-1") || !hasEvent(events, view.EventHealth, "web-1: healthy → unhealthy") {
		t.Errorf("events do not tell the repair: %+v", events)
	}
	_ = v1
}

func min3(m map[string]int) int {
	n := -1
	for _, v := range m {
		if n < 0 || v < n {
			n = v
		}
	}
	return n
}

func hasEvent(events []view.Event, kind view.EventKind, text string) bool {
	for _, e := range events {
		if e.Kind == kind && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// rollingFleet is a set of 4 behind a balancer with a Rolling policy of
// batches of one, maxSurge.
func rollingFleet(listen, image string) string {
	return `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./` + image + `.qcow2
recipe: ./web.yaml
capacity: 4
health: {interval: 1s, probes: 2}
loadBalancer: {listen: ` + listen + `}
upgradePolicy:
  mode: Rolling
  rollingUpgradePolicy: {maxBatchInstancePercent: 25, maxUnhealthyInstancePercent: 25, maxUnhealthyUpgradedInstancePercent: 0, maxSurge: true}
`
}

func digests(c *Controller, set string) map[string]int {
	out := map[string]int{}
	for _, in := range setView(c, set).Instances {
		out[in.Digest]++
	}
	return out
}

// TestRollingUpgradeNoFailedRequest: 4 instances move to a new image one
// batch at a time, new instances before old ones go, while a client sends
// requests through the balancer the whole time: not one fails.
func TestRollingUpgradeNoFailedRequest(t *testing.T) {
	needHAProxy(t)
	d := newFleetDir(t)
	d.image(t, "v1")
	v2 := d.image(t, "v2")
	listen := fmt.Sprintf("127.0.0.1:%d", tcpPort(t))
	file := d.fleet(t, rollingFleet(listen, "v1"))
	h := newServerHost(t, nil)
	c := newController(t, file, filepath.Join(d.dir, "state"), h)
	defer c.Close()
	defer c.StopBalancers(context.Background())
	runUntil(t, c, time.Minute, "4 healthy", func() bool { return healthyCount(c, "web") == 4 })

	cl := startClient(listen, 3)
	if err := deploy.SetImage(file, "web", "./v2.qcow2"); err != nil {
		t.Fatal(err)
	}
	runUntil(t, c, 2*time.Minute, "every instance on v2, healthy", func() bool {
		return digests(c, "web")[v2] == 4 && healthyCount(c, "web") == 4 && setView(c, "web").Upgrade == nil
	})
	ok, failed, errs, _ := cl.finish()
	if failed > 0 || ok < 100 {
		t.Fatalf("during the upgrade: %d ok, %d failed: %v", ok, failed, errs)
	}
	events, _ := ReadEvents(filepath.Join(d.dir, "state"), "web", 0)
	batches := 0
	for _, e := range events {
		if e.Kind == view.EventUpgradeBatch {
			batches++
		}
	}
	if batches != 4 || !hasEvent(events, view.EventUpgradeDone, "") {
		t.Errorf("want 4 batches and a finished upgrade, got %d: %+v", batches, events)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, n := range h.creates {
		if n > 1 {
			t.Errorf("%s was made %d times", name, n)
		}
	}
}

// TestBrokenUpgradeStopsRollback: an image whose instances never become
// healthy stops the upgrade after its first batch, with the rest of the
// set on the old image and serving; a rollback brings the set back.
func TestBrokenUpgradeStopsRollback(t *testing.T) {
	needHAProxy(t)
	d := newFleetDir(t)
	v1 := d.image(t, "v1")
	bad := d.image(t, "bad")
	listen := fmt.Sprintf("127.0.0.1:%d", tcpPort(t))
	file := d.fleet(t, strings.Replace(rollingFleet(listen, "v1"), "maxSurge: true", "maxSurge: false", 1))
	h := newServerHost(t, map[string]behaviour{bad: {broken: true}})
	state := filepath.Join(d.dir, "state")
	c := newController(t, file, state, h)
	defer c.Close()
	defer c.StopBalancers(context.Background())
	runUntil(t, c, time.Minute, "4 healthy", func() bool { return healthyCount(c, "web") == 4 })

	cl := startClient(listen, 2)
	if err := deploy.SetImage(file, "web", "./bad.qcow2"); err != nil {
		t.Fatal(err)
	}
	runUntil(t, c, 2*time.Minute, "the upgrade stopped", func() bool {
		u := setView(c, "web").Upgrade
		return u != nil && u.Status == view.UpgradeStopped
	})
	if got := digests(c, "web"); got[v1] < 3 || got[bad] > 1 {
		t.Errorf("after the stop: %v (want at least 3 of 4 on the old image)", got)
	}
	if n := healthyCount(c, "web"); n < 3 {
		t.Errorf("%d of 4 healthy after the stop, want at least 3", n)
	}
	if r := setView(c, "web").Upgrade.Reason; !strings.Contains(r, "unhealthy") {
		t.Errorf("the stop says why: %q", r)
	}
	// Rollback: the fleet file names the old image again, and the request
	// puts the upgraded instance back first.
	if err := deploy.SetImage(file, "web", "./v1.qcow2"); err != nil {
		t.Fatal(err)
	}
	if err := Submit(state, Request{Kind: RequestRollback, Set: "web"}); err != nil {
		t.Fatal(err)
	}
	runUntil(t, c, 2*time.Minute, "rolled back", func() bool {
		return digests(c, "web")[v1] == 4 && healthyCount(c, "web") == 4 && setView(c, "web").Upgrade == nil
	})
	ok, failed, errs, _ := cl.finish()
	if failed > 0 {
		t.Errorf("through the balancer during the broken upgrade and the rollback: %d ok, %d failed: %v", ok, failed, errs)
	}
	events, _ := ReadEvents(state, "web", 0)
	if !hasEvent(events, view.EventUpgradeStopped, "") || !hasEvent(events, view.EventRolledBack, "") {
		t.Errorf("events: %+v", events)
	}
}

// TestKilledMidUpgradeResumes: a controller that goes away in the middle of
// an upgrade (its state as a kill -9 leaves it) is followed by a new one,
// which resumes the upgrade where it was: no instance is upgraded twice.
func TestKilledMidUpgradeResumes(t *testing.T) {
	needHAProxy(t)
	d := newFleetDir(t)
	d.image(t, "v1")
	v2 := d.image(t, "v2")
	listen := fmt.Sprintf("127.0.0.1:%d", tcpPort(t))
	file := d.fleet(t, rollingFleet(listen, "v1"))
	h := newServerHost(t, nil)
	state := filepath.Join(d.dir, "state")
	c := newController(t, file, state, h)
	runUntil(t, c, time.Minute, "4 healthy", func() bool { return healthyCount(c, "web") == 4 })
	if err := deploy.SetImage(file, "web", "./v2.qcow2"); err != nil {
		t.Fatal(err)
	}
	runUntil(t, c, time.Minute, "the second batch under way", func() bool {
		u := setView(c, "web").Upgrade
		return u != nil && u.Batch >= 2
	})
	c.Close() // the process is gone: no StopBalancers, nothing tidied

	cl := startClient(listen, 2)
	c2 := newController(t, file, state, h)
	defer c2.Close()
	defer c2.StopBalancers(context.Background())
	runUntil(t, c2, 2*time.Minute, "every instance on v2", func() bool {
		return digests(c2, "web")[v2] == 4 && healthyCount(c2, "web") == 4 && setView(c2, "web").Upgrade == nil
	})
	ok, failed, errs, _ := cl.finish()
	if failed > 0 {
		t.Errorf("while the new controller took over: %d ok, %d failed: %v", ok, failed, errs)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, n := range h.creates {
		if n > 1 {
			t.Errorf("%s was made %d times: an upgrade step was done twice", name, n)
		}
	}
}

// TestAutoscaleFollowsCPU: load above the scale-out threshold adds an
// instance; once it stops and the cooldown has passed, one goes again. The
// fleet file holds the capacity throughout.
func TestAutoscaleFollowsCPU(t *testing.T) {
	testutil.Integration(t) // seconds of real time
	d := newFleetDir(t)
	d.image(t, "v1")
	file := d.fleet(t, `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./v1.qcow2
recipe: ./web.yaml
capacity: 1
health: {interval: 1s, probes: 1}
autoscale:
  minimum: 1
  maximum: 3
  interval: 1s
  rules:
    - {metric: cpu, timeWindow: 3s, operator: ">", threshold: 70, direction: out, cooldown: 4s}
    - {metric: cpu, timeWindow: 3s, operator: "<", threshold: 20, direction: in, cooldown: 4s}
`)
	h := newServerHost(t, nil)
	c := newController(t, file, filepath.Join(d.dir, "state"), h)
	defer c.Close()
	runUntil(t, c, 30*time.Second, "1 healthy", func() bool { return healthyCount(c, "web") == 1 })
	h.setLoad(0.9)
	runUntil(t, c, 30*time.Second, "a scale-out", func() bool { return len(setView(c, "web").Instances) == 2 })
	if f, err := deploy.LoadFleet(file); err != nil || f.Set("web").Capacity != 2 {
		t.Fatalf("the fleet file's capacity after a scale-out: %v", err)
	}
	h.setLoad(0.05)
	runUntil(t, c, 30*time.Second, "a scale-in", func() bool { return len(setView(c, "web").Instances) == 1 })
	events, _ := ReadEvents(filepath.Join(d.dir, "state"), "web", 0)
	if !hasEvent(events, view.EventScaled, "scaled out") || !hasEvent(events, view.EventScaled, "scaled in") {
		t.Errorf("events: %+v", events)
	}
}

// TestOneControllerPerFleet: a second controller of the same state is
// refused, and says why.
func TestOneControllerPerFleet(t *testing.T) {
	d := newFleetDir(t)
	d.image(t, "v1")
	file := d.fleet(t, "apiVersion: kiln/v1\nkind: ScaleSet\nname: web\nimage: ./v1.qcow2\nrecipe: ./web.yaml\n")
	h := newServerHost(t, nil)
	state := filepath.Join(d.dir, "state")
	c := newController(t, file, state, h)
	defer c.Close()
	_, err := New(Options{File: file, StateDir: state, Connect: func(context.Context, string) (deploy.Hypervisor, error) { return h, nil },
		Resolve: func(context.Context, *deploy.Set) (*deploy.Resolved, error) { return nil, nil }})
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("second controller: %v", err)
	}
}

// TestStateSurvivesABadFile: a state file that is not kiln's is refused
// with a message that says what to do, not overwritten.
func TestStateSurvivesABadFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, stateFile), []byte("{not json"), 0o600)
	_, err := loadState(dir)
	if err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("loadState: %v", err)
	}
}

// TestSystemdUnitExample: the unit in examples/ is the one docs/deploy.md
// shows, and systemd's own checker finds nothing wrong with it.
func TestSystemdUnitExample(t *testing.T) {
	unit, err := os.ReadFile("../../examples/kiln-deploy@.service")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	body := string(unit)
	for strings.HasPrefix(body, "#") { // the file's own header comment
		body = body[strings.Index(body, "\n")+1:]
	}
	if !strings.Contains(string(doc), "```ini\n"+body+"```") {
		t.Errorf("docs/deploy.md does not show examples/kiln-deploy@.service as it is")
	}
	testutil.Integration(t)
	analyze := testutil.NeedTool(t, "systemd-analyze")
	dir := t.TempDir()
	path := filepath.Join(dir, "kiln-deploy@web.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/kiln", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestPausedRepaired: a paused domain serves nothing and is not started by
// placement: it is unhealthy, and a repair restarts it.
func TestPausedRepaired(t *testing.T) {
	testutil.Integration(t) // seconds of real time
	d := newFleetDir(t)
	d.image(t, "v1")
	file := d.fleet(t, `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./v1.qcow2
recipe: ./web.yaml
capacity: 2
health: {interval: 1s, probes: 1}
automaticRepairs: {enabled: true, gracePeriod: 1s, repairAction: Restart}
`)
	h := newServerHost(t, nil)
	c := newController(t, file, filepath.Join(d.dir, "state"), h)
	defer c.Close()
	runUntil(t, c, 30*time.Second, "2 healthy", func() bool { return healthyCount(c, "web") == 2 })
	h.setState("web-0", deploy.Paused)
	runUntil(t, c, 30*time.Second, "web-0 restarted and healthy", func() bool {
		h.mu.Lock()
		restarted := slices.Contains(h.log, "restart web-0")
		h.mu.Unlock()
		return restarted && healthyCount(c, "web") == 2
	})
	events, _ := ReadEvents(filepath.Join(d.dir, "state"), "web", 0)
	if !hasEvent(events, view.EventHealth, "web-0: healthy → unhealthy (the domain is paused)") || !hasEvent(events, view.EventRepaired, "Restart web-0") {
		t.Errorf("events: %+v", events)
	}
}

// TestProtection: an instance protected from scale-in stays when the
// capacity falls (another goes); one protected from scale-set actions keeps
// its image through an upgrade.
func TestProtection(t *testing.T) {
	testutil.Integration(t) // seconds of real time
	d := newFleetDir(t)
	v1 := d.image(t, "v1")
	v2 := d.image(t, "v2")
	file := d.fleet(t, `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./v1.qcow2
recipe: ./web.yaml
capacity: 3
health: {interval: 1s, probes: 1}
upgradePolicy: {mode: Automatic}
`)
	h := newServerHost(t, nil)
	c := newController(t, file, filepath.Join(d.dir, "state"), h)
	defer c.Close()
	runUntil(t, c, 30*time.Second, "3 healthy", func() bool { return healthyCount(c, "web") == 3 })
	ctx := context.Background()
	if err := h.Protect(ctx, "web-2", deploy.Protection{ScaleIn: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.Protect(ctx, "web-0", deploy.Protection{ScaleSetActions: true}); err != nil {
		t.Fatal(err)
	}
	if err := deploy.SetCapacity(file, "web", 2); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		var out []string
		for _, in := range setView(c, "web").Instances {
			out = append(out, in.Name)
		}
		return out
	}
	runUntil(t, c, 30*time.Second, "scaled in to 2", func() bool { return len(names()) == 2 })
	if got := names(); !slices.Equal(got, []string{"web-0", "web-2"}) {
		t.Errorf("after scale-in: %v, want web-0 and the protected web-2", got)
	}
	if err := deploy.SetImage(file, "web", "./v2.qcow2"); err != nil {
		t.Fatal(err)
	}
	runUntil(t, c, 30*time.Second, "the upgrade done", func() bool {
		return digests(c, "web")[v2] == 1 && setView(c, "web").Upgrade == nil && healthyCount(c, "web") == 2
	})
	for _, in := range setView(c, "web").Instances {
		if in.Name == "web-0" && (in.Digest != v1 || !in.ProtectFromScaleSetActions) {
			t.Errorf("web-0, protected from scale-set actions, was upgraded: %+v", in)
		}
	}
}

func tcpPort(t *testing.T) int {
	t.Helper()
	p, err := qemu.FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOneListPerTick: a tick reads a host's instances once when it changes
// nothing there, and again after it does: the instance it made is in the
// snapshot of the same tick.
func TestOneListPerTick(t *testing.T) {
	d := newFleetDir(t)
	d.image(t, "v1")
	body := "apiVersion: kiln/v1\nkind: ScaleSet\nname: web\nimage: ./v1.qcow2\nrecipe: ./web.yaml\ncapacity: %d\nhealth: {interval: 1s, probes: 1}\n"
	file := d.fleet(t, fmt.Sprintf(body, 1))
	h := newServerHost(t, nil)
	c := newController(t, file, filepath.Join(d.dir, "state"), h)
	defer c.Close()
	ctx := context.Background()
	lists := func() int { h.mu.Lock(); defer h.mu.Unlock(); return h.lists }
	for range 2 { // the first tick creates web-0
		if err := c.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before := lists()
	if err := c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if n := lists() - before; n != 1 {
		t.Errorf("a tick that changed nothing listed the host %d times, want 1", n)
	}
	write(t, file, fmt.Sprintf(body, 2))
	before = lists()
	if err := c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if n := lists() - before; n < 2 {
		t.Errorf("a tick that created an instance listed the host %d times: it saw what it made only from a stale list", n)
	}
	if n := len(setView(c, "web").Instances); n != 2 {
		t.Errorf("the snapshot after the tick that created web-1 shows %d instances, want 2", n)
	}
}
