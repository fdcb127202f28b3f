package lb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/progress"
)

// ErrNotRunning says that no live HAProxy serves a balancer directory:
// Attach's answer after the process died, so the caller calls Start.
var ErrNotRunning = errors.New("lb: balancer not running")

// How long HAProxy gets for each step, and how often kiln looks.
const (
	startTimeout    = 30 * time.Second // from exec to the admin socket answering
	reloadTimeout   = 30 * time.Second // from SIGUSR2 to the new worker answering
	stopTimeout     = 30 * time.Second // soft stop, when ctx has no earlier deadline
	leftoverTimeout = 5 * time.Second  // orphaned workers leaving on their own
	pollInterval    = 20 * time.Millisecond
)

// Balancer is one running HAProxy, started by Start or found by Attach.
// Its methods are safe for concurrent use, and two kiln processes on one
// Dir take turns (a lock file).
type Balancer struct {
	dir    string
	sink   progress.Sink
	guest  Guest    // nil: HAProxy is kiln's child on this host
	pushed [32]byte // sha256 of the config last given to the guest

	mu      sync.Mutex    // guards the fields below
	st      *state        // as last written to state.json
	pid     int           // the master's
	exited  chan struct{} // closed when a master this process started has exited; nil after Attach
	stopped bool          // by Stop: nothing starts it again
}

// ServerStats is one member as HAProxy reports it.
type ServerStats struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`     // where HAProxy sends its requests
	Slot     string `json:"slot"`     // HAProxy's server name, "s3"
	State    State  `json:"state"`    // HAProxy's administrative state
	Status   string `json:"status"`   // HAProxy's own word: "no check" (up, unchecked), "DRAIN", "MAINT", ...
	Sessions int    `json:"sessions"` // in flight, in every HAProxy worker (old ones finishing after a reload too)
	Total    int64  `json:"total"`    // since the current worker started (a reload starts again from 0)
}

// Start validates cfg and servers, writes the config, checks it with
// `haproxy -c`, starts HAProxy in master-worker mode and waits until it
// answers with the servers in their states. A balancer already running in
// cfg.Dir is an error (Attach to it, or Stop it); a dead one's files are
// replaced. When Start fails it leaves no process and none of its files.
func Start(ctx context.Context, cfg Config, servers []Server) (*Balancer, error) {
	servers, err := normalize(servers)
	if err != nil {
		return nil, err
	}
	if cfg, err = cfg.validate(len(servers)); err != nil {
		return nil, err
	}
	listen := cfg.Listen
	if cfg.Guest != nil {
		if err := checkGuestVersion(ctx, cfg.Guest); err != nil {
			return nil, err
		}
	} else {
		if err := checkVersion(ctx, cfg.HAProxy); err != nil {
			return nil, err
		}
		if err := notRunning(cfg.Dir); err != nil {
			return nil, err // rather than "port taken", by this very balancer
		}
		clearLeftovers(ctx, filepath.Join(cfg.Dir, cfgFile)) // a dead one's workers may hold the port a moment longer
		if listen, err = claimListen(cfg.Listen); err != nil {
			return nil, err
		}
	}
	_, statErr := os.Stat(cfg.Dir)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	// Whoever reaches the admin socket commands the balancer.
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	unlock, err := flock.Lock(ctx, filepath.Join(cfg.Dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	defer unlock()
	if cfg.Guest == nil {
		if err := notRunning(cfg.Dir); err != nil {
			return nil, err
		}
	}
	members, _ := assign(nil, servers, cfg.Slots, func(int) bool { return false })
	b := &Balancer{dir: cfg.Dir, sink: progress.Or(cfg.Progress), st: &state{
		SchemaVersion: 1, Name: cfg.Name, Listen: listen, Balance: cfg.Balance,
		Slots: cfg.Slots, HAProxy: cfg.HAProxy, Servers: members,
	}, guest: cfg.Guest}
	if cfg.Guest != nil {
		b.st.GuestUser = cfg.Guest.User()
	}
	if err := b.launch(ctx); err != nil {
		if created {
			os.RemoveAll(cfg.Dir)
		} else {
			for _, f := range []string{cfgFile, stateFile, adminSock, masterSock, pidFile, logFile} {
				os.Remove(filepath.Join(cfg.Dir, f))
			}
		}
		return nil, err
	}
	return b, nil
}

// Attach finds the balancer running in dir, after the controller that
// started it restarted. When its HAProxy is gone (the pid file names a
// dead process, a zombie, or another program), the error wraps
// ErrNotRunning and the caller calls Start. sink may be nil.
func Attach(ctx context.Context, dir string, sink progress.Sink) (*Balancer, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	st, err := readState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s", ErrNotRunning, stateFile, dir)
	}
	if err != nil {
		return nil, err
	}
	pid := readPid(dir)
	if pid == 0 {
		return nil, fmt.Errorf("%w: no pid in %s (stopped)", ErrNotRunning, filepath.Join(dir, pidFile))
	}
	if !ours(pid, filepath.Join(dir, cfgFile)) {
		return nil, fmt.Errorf("%w: %s names pid %d, which is gone or not this balancer's haproxy", ErrNotRunning, filepath.Join(dir, pidFile), pid)
	}
	b := &Balancer{dir: dir, sink: progress.Or(sink), st: st, pid: pid}
	if err := b.waitAnswering(ctx, leftoverTimeout); err != nil {
		return nil, fmt.Errorf("lb: haproxy pid %d runs but does not answer on %s: %w", pid, filepath.Join(dir, adminSock), err)
	}
	return b, nil
}

// Addr is the address the balancer listens on.
func (b *Balancer) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.Listen
}

// Dir is the balancer's runtime directory.
func (b *Balancer) Dir() string { return b.dir }

// Pid is the HAProxy master's process id.
func (b *Balancer) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pid
}

// Servers is the membership kiln last set, by slot.
func (b *Balancer) Servers() []Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Server, len(b.st.Servers))
	for i, m := range b.st.Servers {
		out[i] = m.Server
	}
	return out
}

// Running reports whether the HAProxy master is alive (not whether it
// answers: Ensure checks that too).
func (b *Balancer) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running()
}

func (b *Balancer) running() bool {
	if b.guest != nil {
		// Whether it answers decides (converge kills and restarts one
		// that does not): asking systemd at every poll would cost an SSH
		// round trip each time.
		return true
	}
	if b.exited != nil {
		// Kiln's own child keeps its pid until reaped: no need for /proc.
		select {
		case <-b.exited:
			return false
		default:
			return true
		}
	}
	return ours(b.pid, b.path(cfgFile))
}

// Set makes servers the whole membership. A name keeps its slot while it
// is a member; a new name takes a free slot and a removed one drains
// (maintenance once its sessions are done: HAProxy finishes them either
// way). Only when the servers outgrow the slots is the config rewritten
// with more and HAProxy reloaded, handing its listening socket to the new
// worker: no connection is refused. A dead HAProxy is started again.
// When Set fails, the membership it was given is still the one kiln
// wants (state.json): Ensure, or the next Set, finishes the job.
func (b *Balancer) Set(ctx context.Context, servers []Server) error {
	servers, err := normalize(servers)
	if err != nil {
		return err
	}
	unlock, err := b.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	// A slot whose removed server still has sessions (in any worker) is
	// not handed to a new one yet, so that they are not counted as the
	// newcomer's. When HAProxy does not answer, converge restarts it, and
	// a new process has no session anyway.
	busy, _ := b.sessions(ctx)
	b.mu.Lock()
	next := *b.st
	next.Servers, next.Slots = assign(b.st.Servers, servers, b.st.Slots, func(i int) bool { return busy[i] > 0 })
	b.st = &next
	b.mu.Unlock()
	_, err = b.converge(ctx)
	return err
}

// Drain stops sending new requests to the named member; those in flight
// finish. It stays a member, in Drain, until a Set says otherwise (one in
// maintenance stays there: it takes no new request either).
func (b *Balancer) Drain(ctx context.Context, name string) error {
	unlock, err := b.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	b.mu.Lock()
	next := *b.st
	next.Servers = append([]member(nil), b.st.Servers...)
	found := false
	for i := range next.Servers {
		if m := &next.Servers[i]; m.Name == name {
			if m.State == Ready {
				m.State = Drain
			}
			found = true
		}
	}
	if found {
		b.st = &next
	}
	b.mu.Unlock()
	if !found {
		return fmt.Errorf("lb: drain %q: not a member of balancer %s", name, next.Name)
	}
	_, err = b.converge(ctx)
	return err
}

// WaitDrained returns once the named member, drained or in maintenance,
// has no session in flight in any HAProxy worker, or when ctx ends.
func (b *Balancer) WaitDrained(ctx context.Context, name string) error {
	b.mu.Lock()
	m, ok := b.st.member(name)
	b.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("lb: wait for %q: not a member", name)
	case m.State == Ready:
		return fmt.Errorf("lb: wait for %q: it is ready and takes new requests: Drain it first", name)
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	n := -1 // not read yet
	var last error
	for {
		sessions, err := b.sessions(ctx)
		switch {
		case err == nil:
			if n = sessions[m.Slot]; n == 0 {
				return nil
			}
		case !b.Running():
			return fmt.Errorf("lb: wait for %q: haproxy is not running: %w", name, err)
		default:
			last = err // a worker leaving mid-question: ask again
		}
		select {
		case <-ctx.Done():
			if n < 0 {
				return fmt.Errorf("lb: wait for %q: %w (last: %v)", name, ctx.Err(), last)
			}
			return fmt.Errorf("lb: wait for %q: %d sessions still in flight: %w", name, n, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stats reports every member as HAProxy sees it, by slot.
func (b *Balancer) Stats(ctx context.Context) ([]ServerStats, error) {
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	stats, err := b.stat(ctx)
	if err != nil {
		return nil, err
	}
	sessions, err := b.sessions(ctx)
	if err != nil {
		return nil, err
	}
	var out []ServerStats
	for _, m := range st.Servers {
		s := stats[m.Slot]
		out = append(out, ServerStats{Name: m.Name, Addr: s.Addr, Slot: slotName(m.Slot), State: s.state(),
			Status: s.Status, Sessions: sessions[m.Slot], Total: s.Total})
	}
	return out, nil
}

// Ensure brings HAProxy back to what state.json says: started again, with
// the same membership and port, when it died (restarted is then true);
// reloaded when its slots differ (a crash between writing a config and
// reloading it); every server's address and state put right. A controller
// calls it on a timer to supervise the balancer.
func (b *Balancer) Ensure(ctx context.Context) (restarted bool, err error) {
	unlock, err := b.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	return b.converge(ctx)
}

func (b *Balancer) path(name string) string { return filepath.Join(b.dir, name) }

func (b *Balancer) lock(ctx context.Context) (func(), error) {
	unlock, err := flock.Lock(ctx, b.path(lockFile))
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	return unlock, nil
}

// converge makes HAProxy match b.st, which the caller has set: restarted
// when dead or wedged, reloaded when its slots differ, then every slot
// put right over the admin socket.
func (b *Balancer) converge(ctx context.Context) (restarted bool, err error) {
	b.mu.Lock()
	alive, stopped := b.running(), b.stopped
	b.mu.Unlock()
	if stopped {
		return false, fmt.Errorf("lb: balancer %s was stopped: Start it again", b.dir)
	}
	b.trimLog()
	if alive {
		if err := b.waitAnswering(ctx, leftoverTimeout); err != nil {
			b.sink.Emit(progress.Event{Step: "lb", Kind: progress.Warn, Time: time.Now(),
				Msg: fmt.Sprintf("haproxy pid %d does not answer (%v): killing it", b.Pid(), err)})
			b.kill(ctx)
			alive = false
		}
	}
	if !alive {
		was := b.Pid()
		if err := b.launch(ctx); err != nil {
			return false, err
		}
		b.sink.Emit(progress.Event{Step: "lb", Kind: progress.Warn, Time: time.Now(),
			Msg: fmt.Sprintf("haproxy pid %d was gone: restarted as pid %d", was, b.Pid())})
		return true, nil
	}
	if err := b.writeFiles(); err != nil {
		return false, err
	}
	if b.guest != nil {
		// A changed drop-in (another account) counts only after a restart.
		if unitChanged, err := b.pushGuest(ctx); err != nil || unitChanged {
			if err != nil {
				return false, err
			}
			return true, b.launch(ctx)
		}
	}
	stats, err := b.stat(ctx)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	slots := b.st.Slots
	b.mu.Unlock()
	if len(stats) != slots {
		if err := b.reload(ctx, len(stats)); err != nil {
			return false, err
		}
	}
	return false, b.apply(ctx)
}

// writeFiles writes state.json and haproxy.cfg from b.st.
func (b *Balancer) writeFiles() error {
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	if err := st.write(b.dir); err != nil {
		return fmt.Errorf("lb: %w", err)
	}
	return writeConfig(b.path(cfgFile), st.config(b.dir))
}

func notRunning(dir string) error {
	if pid := readPid(dir); ours(pid, filepath.Join(dir, cfgFile)) {
		return fmt.Errorf("lb: a balancer already runs in %s (haproxy pid %d): Attach to it, or Stop it first", dir, pid)
	}
	return nil
}

func readPid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
