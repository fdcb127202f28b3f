package lb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the test binary as a stand-in controller when asked: it
// starts a balancer, says so, and waits to be killed (TestControllerKilled).
func TestMain(m *testing.M) {
	if dir := os.Getenv("KILN_LB_TEST_CONTROLLER"); dir != "" {
		os.Exit(controller(dir, os.Getenv("KILN_LB_TEST_SERVERS")))
	}
	os.Exit(m.Run())
}

func controller(dir, serversJSON string) int {
	var servers []Server
	if err := json.Unmarshal([]byte(serversJSON), &servers); err != nil {
		fmt.Println(err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Start(ctx, Config{Name: "web", Listen: "127.0.0.1:0", Dir: dir}, servers); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("started")
	<-ctx.Done() // killed long before
	return 1
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}

func TestEnsureAfterKill(t *testing.T) {
	needHAProxy(t)
	a, b, c := newBackend(t, "web-0"), newBackend(t, "web-1"), newBackend(t, "web-2")
	lb := start(t, Config{}, servers(a, b, c))
	ctx := ctxT(t, time.Minute)
	addr, members := lb.Addr(), lb.Servers()

	if restarted, err := lb.Ensure(ctx); err != nil || restarted {
		t.Fatalf("Ensure on a healthy balancer: restarted %v, %v; want nothing done", restarted, err)
	}
	for _, victim := range []string{"master", "worker"} {
		pid := lb.Pid()
		if victim == "worker" {
			// HAProxy's master exits when its current worker dies.
			p, err := lb.procs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pid = p.current()
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the balancer is seen dead after kill -9 of its "+victim, func() bool { return !lb.Running() })
		restarted, err := lb.Ensure(ctx)
		if err != nil || !restarted {
			t.Fatalf("Ensure after kill -9 of the %s: restarted %v, %v; want a restart", victim, restarted, err)
		}
		if lb.Addr() != addr || !reflect.DeepEqual(lb.Servers(), members) {
			t.Errorf("after the restart: %s %v, want %s %v as before", lb.Addr(), lb.Servers(), addr, members)
		}
		if got := spread(t, lb, 30); len(got) != 3 {
			t.Errorf("after kill -9 of the %s and Ensure: %v, want all three servers", victim, got)
		}
	}

	// A crash between writing a larger config and reloading it: Ensure
	// reloads.
	before, err := lb.procs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lb.mu.Lock()
	grown := *lb.st
	grown.Slots = 16
	lb.st = &grown
	lb.mu.Unlock()
	if err := lb.writeFiles(); err != nil {
		t.Fatal(err)
	}
	if restarted, err := lb.Ensure(ctx); err != nil || restarted {
		t.Fatalf("Ensure with more slots in state.json: restarted %v, %v; want a reload", restarted, err)
	}
	after, _ := lb.procs(ctx)
	if stats, _ := lb.stat(ctx); len(stats) != 16 || after.current() == before.current() {
		t.Errorf("after Ensure: %d slots, worker %d (was %d); want 16 slots from a new worker", len(stats), after.current(), before.current())
	}

	// Set restarts a dead balancer too, with the new membership.
	syscall.Kill(lb.Pid(), syscall.SIGKILL)
	waitFor(t, "the balancer is seen dead", func() bool { return !lb.Running() })
	if err := lb.Set(ctx, servers(a, c)); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, lb, 30); got["web-1"] != 0 || len(got) != 2 {
		t.Errorf("Set on a dead balancer: %v, want web-0 and web-2", got)
	}
}

func TestAttach(t *testing.T) {
	needHAProxy(t)
	a, b, c := newBackend(t, "web-0"), newBackend(t, "web-1"), newBackend(t, "web-2")
	cfg := Config{Name: "web", Listen: freeAddr(t), Dir: shortDir(t)}
	first := start(t, cfg, servers(a, b, c))
	ctx := ctxT(t, time.Minute)

	if _, err := Start(ctx, cfg, servers(a)); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("Start over a running balancer: %v, want an error saying it runs", err)
	}
	again, err := Attach(ctx, cfg.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Pid() != first.Pid() || again.Addr() != first.Addr() || !reflect.DeepEqual(again.Servers(), first.Servers()) {
		t.Errorf("Attach: pid %d, %s, %v; want %d, %s, %v", again.Pid(), again.Addr(), again.Servers(), first.Pid(), first.Addr(), first.Servers())
	}
	if err := again.Set(ctx, servers(a, c)); err != nil {
		t.Fatal(err)
	}
	if got := spread(t, again, 30); got["web-1"] != 0 || len(got) != 2 {
		t.Errorf("Set through the attached balancer: %v, want web-0 and web-2", got)
	}

	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(cfg.Dir, pidFile)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, stale := range []struct {
		what string
		pid  int
	}{
		{"no pid file", 0},
		{"a pid that is gone", dead.Process.Pid},
		{"a pid that is not haproxy", os.Getpid()},
	} {
		if stale.pid != 0 {
			os.WriteFile(pidFile, []byte(strconv.Itoa(stale.pid)+"\n"), 0o600)
		}
		if _, err := Attach(ctx, cfg.Dir, nil); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Attach with %s: %v, want ErrNotRunning", stale.what, err)
		}
	}
	// Start converges from the stale files.
	next := start(t, cfg, servers(a, b, c))
	if got := spread(t, next, 30); len(got) != 3 {
		t.Errorf("Start over a stale pid file: %v, want all three", got)
	}
	if _, err := Attach(ctx, cfg.Dir, nil); err != nil {
		t.Errorf("Attach after the new Start: %v", err)
	}
}

// TestControllerKilled: kill -9 of the process that started the balancer
// leaves HAProxy serving, and a new controller attaches to it.
func TestControllerKilled(t *testing.T) {
	needHAProxy(t)
	a, b := newBackend(t, "web-0"), newBackend(t, "web-1")
	dir := shortDir(t)
	js, _ := json.Marshal(servers(a, b))
	ctl := exec.Command(os.Args[0])
	ctl.Env = append(os.Environ(), "KILN_LB_TEST_CONTROLLER="+dir, "KILN_LB_TEST_SERVERS="+string(js))
	out, err := ctl.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "started\n" {
		ctl.Process.Kill()
		ctl.Wait()
		t.Fatalf("the controller process: %q", line)
	}
	ctl.Process.Kill() // SIGKILL
	ctl.Wait()

	ctx := ctxT(t, time.Minute)
	lb, err := Attach(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAndCheck(t, lb) })
	if got := spread(t, lb, 20); len(got) != 2 {
		t.Errorf("after the controller's kill -9: %v, want both servers", got)
	}
	if restarted, err := lb.Ensure(ctx); err != nil || restarted {
		t.Errorf("Ensure after Attach: restarted %v, %v; want nothing to do", restarted, err)
	}
}

// TestStartRejects: invalid input is refused before anything is written.
func TestStartRejects(t *testing.T) {
	ok := []Server{{Name: "web-0", Addr: "127.0.0.1:40000"}, {Name: "web-1", Addr: "127.0.0.1:40001"}}
	for _, c := range []struct {
		name    string
		cfg     Config
		servers []Server
		want    string
	}{
		{"host name", Config{Listen: "localhost:8000"}, ok, `listen "localhost:8000": want IP:PORT`},
		{"no port", Config{Listen: "127.0.0.1"}, ok, `listen "127.0.0.1": want IP:PORT`},
		{"empty listen", Config{Listen: ""}, ok, `listen "": want IP:PORT`},
		{"name", Config{Name: "web set"}, ok, `name "web set"`},
		{"balance", Config{Balance: "random"}, ok, `balance "random": want roundrobin or leastconn`},
		{"slots", Config{Slots: 1}, ok, "slots 1: want 2 (the servers given) to 1024"},
		{"no dir", Config{Dir: "-"}, ok, "dir: required"},
		{"long dir", Config{Dir: "/tmp/" + strings.Repeat("d", 90)}, ok, "unix socket paths are limited to 108 bytes"},
		{"duplicate", Config{}, append(ok, Server{Name: "web-0", Addr: "127.0.0.1:40002"}), `server "web-0" appears twice`},
		{"same addr", Config{}, append(ok, Server{Name: "web-2", Addr: "127.0.0.1:40000"}), `servers "web-0" and "web-2" have the same addr`},
		{"addr", Config{}, []Server{{Name: "web-0", Addr: "web-0:8080"}}, `server "web-0": addr "web-0:8080": want IP:PORT`},
		{"port 0", Config{}, []Server{{Name: "web-0", Addr: "127.0.0.1:0"}}, "a port other than 0"},
		{"state", Config{}, []Server{{Name: "web-0", Addr: "127.0.0.1:1", State: "up"}}, `state "up": want ready, drain or maint`},
		{"server name", Config{}, []Server{{Name: "web 0", Addr: "127.0.0.1:1"}}, `name "web 0"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := shortDir(t)
			cfg := Config{Name: "web", Listen: "127.0.0.1:0", Dir: dir}
			if c.cfg.Listen != "" || c.name == "empty listen" {
				cfg.Listen = c.cfg.Listen
			}
			if c.cfg.Name != "" {
				cfg.Name = c.cfg.Name
			}
			switch c.cfg.Dir {
			case "-":
				cfg.Dir = ""
			case "":
			default:
				cfg.Dir = c.cfg.Dir
			}
			cfg.Balance, cfg.Slots = c.cfg.Balance, c.cfg.Slots
			_, err := Start(context.Background(), cfg, c.servers)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, c.want)
			}
			if _, err := os.Stat(cfg.Dir); cfg.Dir != "" && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a rejected Start made %s", cfg.Dir)
			}
		})
	}
}

// TestStartFailures: what can only fail once HAProxy is involved fails
// clearly and leaves no file and no process.
func TestStartFailures(t *testing.T) {
	needHAProxy(t)
	ctx := ctxT(t, time.Minute)
	ok := []Server{{Name: "web-0", Addr: "127.0.0.1:40000"}}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"port in use", Config{Listen: taken.Addr().String()}, "listen address " + taken.Addr().String() + " is in use by another process"},
		{"address not here", Config{Listen: "192.0.2.1:8000"}, "cannot listen on 192.0.2.1:8000"},
		{"no haproxy", Config{HAProxy: "/nonexistent/haproxy"}, "install the haproxy package"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Name, cfg.Dir = "web", shortDir(t)
			if cfg.Listen == "" {
				cfg.Listen = "127.0.0.1:0"
			}
			if _, err := Start(ctx, cfg, ok); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, c.want)
			}
			if _, err := os.Stat(cfg.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed Start left %s", cfg.Dir)
			}
		})
	}

	t.Run("haproxy fails", func(t *testing.T) {
		// A directory where the admin socket goes: HAProxy cannot bind it.
		dir := shortDir(t)
		os.MkdirAll(filepath.Join(dir, adminSock, "x"), 0o700)
		_, err := Start(ctx, Config{Name: "web", Listen: "127.0.0.1:0", Dir: dir}, ok)
		if err == nil || !strings.Contains(err.Error(), "haproxy exited at start") || !strings.Contains(err.Error(), "[ALERT]") {
			t.Fatalf("Start: %v, want haproxy's exit and its alert", err)
		}
		for _, f := range []string{cfgFile, stateFile, pidFile, logFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed Start left %s", f)
			}
		}
		if left := leftovers(filepath.Join(dir, cfgFile)); len(left) > 0 {
			t.Errorf("a failed Start left haproxy processes %v", left)
		}
	})
}

// TestStop: a soft stop lets the request in flight finish, then nothing is
// left: no process, no socket, no pid file.
func TestStop(t *testing.T) {
	needHAProxy(t)
	a := newBackend(t, "web-0")
	dir := shortDir(t)
	ctx := ctxT(t, time.Minute)
	lb, err := Start(ctx, Config{Name: "web", Listen: "127.0.0.1:0", Dir: dir}, servers(a))
	if err != nil {
		t.Fatal(err)
	}
	long := make(chan error, 1)
	go func() {
		name, err := fetch(client, lb.Addr(), "/hold")
		if err == nil && name != "web-0" {
			err = fmt.Errorf("answered by %q", name)
		}
		long <- err
	}()
	<-a.held
	pid := lb.Pid()
	stopped := make(chan error, 1)
	go func() { stopped <- lb.Stop(ctx) }()
	waitFor(t, "the balancer stops listening", func() bool {
		c, err := net.DialTimeout("tcp", lb.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a request in flight", err)
	default:
	}
	close(a.release)
	if err := <-long; err != nil {
		t.Errorf("the request in flight during Stop: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if ours(pid, filepath.Join(dir, cfgFile)) || len(leftovers(filepath.Join(dir, cfgFile))) > 0 {
		t.Errorf("haproxy still runs after Stop")
	}
	for _, f := range []string{adminSock, masterSock, pidFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stop left %s", f)
		}
	}
	if err := lb.Stop(ctx); err != nil {
		t.Errorf("Stop again: %v", err)
	}
	if err := lb.Set(ctx, servers(a)); err == nil || !strings.Contains(err.Error(), "was stopped") {
		t.Errorf("Set after Stop: %v, want an error (a stopped balancer is not started behind the caller's back)", err)
	}
}
