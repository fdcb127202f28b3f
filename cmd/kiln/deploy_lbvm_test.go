package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/controller"
	"github.com/kiln-project/kiln/deploy/lb"
	"github.com/kiln-project/kiln/internal/guestssh"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/recipes"
)

// sshGuest reaches a balancer VM as the controller does: its account,
// its key, sudo for commands.
type sshGuest struct{ c *guestssh.Client }

func (g sshGuest) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	return g.c.DialUnix(ctx, path)
}

func (g sshGuest) Run(ctx context.Context, cmd string, stdin []byte) (string, int, error) {
	return g.c.RunRoot(ctx, cmd, stdin)
}

func (g sshGuest) User() string { return deploy.BalancerVMUser }

// balancerInVM moves the running fleet's load balancer from this host into
// a VM of kiln's proxy role (loadBalancer placement: vm), as a user edits
// the fleet file under a running controller: the host's HAProxy stops,
// web-lb is made from the proxy example's image (baked through the shared
// cache), and the listen address serves again, from HAProxy in the VM,
// spread over the set's instances as that HAProxy counts them (read over
// SSH with the key the controller keeps, through package lb). It returns
// that view of the VM's balancer.
func balancerInVM(t *testing.T, dir, uri, fleet, state, listen string, get func(int) (int, []string), events func() string, logOf func() string) *lb.Balancer {
	t.Helper()
	plan, err := recipes.LoadPlan("../../examples/proxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := builder.New(builder.Options{CacheDir: testutil.CacheDir(t)}).Bake(context.Background(), plan, filepath.Join(dir, "proxy.qcow2")); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(fleet)
	if err != nil {
		t.Fatal(err)
	}
	onHost := `loadBalancer: {listen: "` + listen + `"}`
	if !strings.Contains(string(before), onHost) {
		t.Fatalf("the fleet file has no %s:\n%s", onHost, before)
	}
	inVM := strings.Replace(string(before), onHost, `loadBalancer: {listen: "`+listen+`", placement: vm, image: ./proxy.qcow2}`, 1)
	if err := os.WriteFile(fleet, []byte(inVM), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := deploy.DialLibvirt(uri, deploy.LibvirtOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// The VM's HAProxy, once it holds the set's three instances, ready.
	var vm *lb.Balancer
	var last error
	ready := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		insts, _, err := h.Instances(ctx)
		if err != nil {
			last = err
			return false
		}
		for _, in := range insts {
			if in.Name != "web-lb" || in.State != deploy.Running {
				continue
			}
			if in.Meta.Set != deploy.BalancerVMSet("web") {
				t.Fatalf("web-lb records set %q", in.Meta.Set)
			}
			key, err := guestssh.LoadOrMakeKey(filepath.Join(state, "lb", "web", "id_ed25519"), "kiln-deploy")
			if err != nil {
				t.Fatal(err)
			}
			c, err := guestssh.Dial(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Ports[22])), deploy.BalancerVMUser, key, nil)
			if err != nil {
				last = err
				return false
			}
			t.Cleanup(func() { c.Close() })
			if vm, err = lb.AttachGuest(ctx, filepath.Join(state, "lb", "web"), sshGuest{c}, nil); err != nil {
				last = err
				return false
			}
			stats, err := vm.Stats(ctx)
			n := 0
			for _, s := range stats {
				if s.State == lb.Ready && strings.HasPrefix(s.Addr, "10.0.2.2:") {
					n++
				}
			}
			last = err
			return n == setSize
		}
		last = errors.New("no running web-lb")
		return false
	}
	deadline := time.Now().Add(8 * time.Minute)
	for !ready() {
		if time.Now().After(deadline) {
			t.Fatalf("the balancer in web-lb: not serving %d instances within 8m (last: %v)\nevents:\n%s\ncontroller:\n%s", setSize, last, events(), logOf())
		}
		time.Sleep(3 * time.Second) // polling a booting guest under TCG
	}
	if _, err := lb.Attach(context.Background(), filepath.Join(state, "lb", "web"), nil); !errors.Is(err, lb.ErrNotRunning) {
		t.Errorf("the host's HAProxy still runs beside the VM's: %v", err)
	}
	stats := func() map[string]int64 {
		ss, err := vm.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, s := range ss {
			out[s.Name] = s.Total
		}
		return out
	}
	was := stats()
	if ok, errs := get(30); ok != 30 {
		t.Fatalf("through the balancer in web-lb: %d of 30 ok: %v", ok, errs)
	}
	now := stats()
	if len(now) != setSize {
		t.Errorf("web-lb's members: %v", now)
	}
	for name, n := range now {
		if n-was[name] < 5 {
			t.Errorf("%s answered %d of 30 requests through web-lb: not spread (%v, before %v)", name, n-was[name], now, was)
		}
	}
	if ev := events(); !strings.Contains(ev, "load balancer VM web-lb created") || !strings.Contains(ev, "HAProxy in web-lb balances web") {
		t.Errorf("events lack the balancer VM:\n%s", ev)
	}
	return vm
}

// balancerVMSurvivesKill kills (-9) the controller under a balancer VM: the
// VM serves on without it; the next controller logs in again and takes its
// HAProxy over as it is (not started again: its request counts go on, and
// there is no second "balances" event). It returns the new controller once
// that has done two whole ticks (it writes its snapshot last in each).
func balancerVMSurvivesKill(t *testing.T, vm *lb.Balancer, state string, kill func(), start func() *exec.Cmd,
	get func(int) (int, []string), events func() string) *exec.Cmd {
	t.Helper()
	total := func() (sum int64, each map[string]int64) {
		ss, err := vm.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		each = map[string]int64{}
		for _, s := range ss {
			sum, each[s.Name] = sum+s.Total, s.Total
		}
		return sum, each
	}
	before, _ := total()
	kill()
	if ok, errs := get(10); ok != 10 {
		t.Errorf("through web-lb with no controller: %d of 10 ok: %v", ok, errs)
	}
	next := start()
	snapshot := filepath.Join(state, controller.SnapshotFile)
	since := time.Now()
	for ticks := 0; ticks < 2; {
		if st, err := os.Stat(snapshot); err == nil && st.ModTime().After(since) {
			ticks++
			since = st.ModTime()
		}
		if time.Since(since) > 2*time.Minute {
			t.Fatalf("the new controller wrote no snapshot for 2m")
		}
		time.Sleep(200 * time.Millisecond) // polling a file the controller rewrites every tick
	}
	if ok, errs := get(10); ok != 10 {
		t.Errorf("through web-lb under the new controller: %d of 10 ok: %v", ok, errs)
	}
	if after, each := total(); after < before+20 {
		t.Errorf("web-lb's HAProxy counted %d requests, then %d after 20 more: it was started again (%v)", before, after, each)
	}
	if n := strings.Count(events(), "HAProxy in web-lb balances web"); n != 1 {
		t.Errorf("HAProxy in web-lb started %d times, want once:\n%s", n, events())
	}
	return next
}
