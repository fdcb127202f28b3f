package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-project/kiln/internal/atomicfile"
	"github.com/kiln-project/kiln/internal/progress"
)

// launch starts HAProxy from b.st (the process is dead or was never
// started), waits until it answers and puts every server in its state.
//
// The master runs in the foreground (-W, no -D) as kiln's child, so kiln
// reaps it and sees its exit at once, with its output in haproxy.log; in
// a session of its own (Setsid), so that neither kiln's terminal nor
// kiln's death reaches it, and Attach finds it again.
func (b *Balancer) launch(ctx context.Context) error {
	if b.guest != nil {
		return b.launchGuest(ctx)
	}
	clearLeftovers(ctx, b.path(cfgFile))
	if err := b.writeFiles(); err != nil {
		return err
	}
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	if err := checkConfig(ctx, st.HAProxy, b.path(cfgFile)); err != nil {
		return err
	}
	if err := listenFree(st.Listen); err != nil {
		return err
	}
	b.trimLog()
	logf, err := os.OpenFile(b.path(logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("lb: %w", err)
	}
	offset, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(st.HAProxy, "-W", "-S", b.path(masterSock)+",mode,600", "-f", b.path(cfgFile), "-p", b.path(pidFile))
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("lb: start %s: %w", st.HAProxy, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	b.mu.Lock()
	b.pid, b.exited = cmd.Process.Pid, exited
	b.mu.Unlock()

	if err := b.waitAnswering(ctx, startTimeout); err != nil {
		// A master seen gone is reaped at once: its status and log are the error.
		select {
		case <-exited:
			return b.startFailed(st.Listen, fmt.Sprintf("haproxy exited at start (%v)", waitErr), offset)
		case <-time.After(time.Second):
		}
		b.kill(context.WithoutCancel(ctx))
		return fmt.Errorf("lb: haproxy started but did not answer on %s: %w%s", b.path(adminSock), err, b.logTail(ctx, offset))
	}
	// HAProxy makes its pid file 0644; everything in Dir is private.
	os.Chmod(b.path(pidFile), 0o600)
	b.sink.Emit(progress.Event{Step: "lb", Kind: progress.Note, Time: time.Now(),
		Msg: fmt.Sprintf("haproxy pid %d balances %s on %s (%d servers, %d slots)", cmd.Process.Pid, st.Name, st.Listen, len(st.Servers), st.Slots)})
	return b.apply(ctx)
}

// maxLog is how large haproxy.log grows before trimLog moves it aside.
// HAProxy's workers write a line there at every server state change.
const maxLog = 1 << 20

// trimLog keeps haproxy.log and one haproxy.log.1 of at most maxLog each.
// HAProxy appends through the descriptor it was started with (O_APPEND),
// so the file is copied and truncated rather than renamed.
func (b *Balancer) trimLog() {
	path := b.path(logFile)
	if fi, err := os.Stat(path); err != nil || fi.Size() < maxLog {
		return
	}
	if err := atomicfile.Copy(path, path+".1", 0o600); err == nil {
		os.Truncate(path, 0)
	}
}

// startFailed explains a start that exited, with HAProxy's alerts.
func (b *Balancer) startFailed(listen, what string, offset int64) error {
	tail := b.logTail(context.Background(), offset)
	if strings.Contains(tail, "Address already in use") {
		return fmt.Errorf("lb: listen address %s is in use by another process: choose another port%s", listen, tail)
	}
	return fmt.Errorf("lb: %s%s", what, tail)
}

// logTail is what HAProxy logged as alerts since offset, for errors.
func (b *Balancer) logTail(ctx context.Context, offset int64) string {
	if b.guest != nil {
		return b.guestLog(ctx)
	}
	f, err := os.Open(b.path(logFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	f.Seek(offset, io.SeekStart)
	data, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	var alerts []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "[ALERT]") {
			alerts = append(alerts, strings.TrimSpace(line))
		}
	}
	if len(alerts) > 5 {
		alerts = alerts[len(alerts)-5:]
	}
	if len(alerts) == 0 {
		return ""
	}
	return " (haproxy.log: " + strings.Join(alerts, "; ") + ")"
}

// waitAnswering polls until the current worker answers on the admin
// socket, for at most timeout.
func (b *Balancer) waitAnswering(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		_, err := b.answering(ctx)
		if err == nil {
			return nil
		}
		if !b.Running() {
			return fmt.Errorf("haproxy pid %d exited", b.Pid())
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

// answering asks the master for its current worker and the admin socket
// for its pid, and returns the worker's pid when both agree: the socket
// file of a dead process, or an old worker, is not an answer.
func (b *Balancer) answering(ctx context.Context) (int, error) {
	p, err := b.procs(ctx)
	if err != nil {
		return 0, err
	}
	cur := p.current()
	if cur == 0 {
		return 0, errors.New("the master lists no current worker")
	}
	out, err := b.admin(ctx, "show info")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "Pid: "); ok {
			if pid, _ := strconv.Atoi(strings.TrimSpace(v)); pid == cur {
				return cur, nil
			}
			return 0, fmt.Errorf("the admin socket answers from pid %s, the current worker is %d", v, cur)
		}
	}
	return 0, fmt.Errorf("show info: unexpected answer %q", firstLine(out))
}

// procs is the master's `show proc`.
func (b *Balancer) procs(ctx context.Context) (procs, error) {
	out, err := b.master(ctx, "show proc")
	if err != nil {
		return procs{}, err
	}
	return parseShowProc(out)
}

// stat is the current worker's view of the backend's slots.
func (b *Balancer) stat(ctx context.Context) (map[int]slotStat, error) {
	out, err := b.admin(ctx, "show stat")
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	b.mu.Lock()
	name := b.st.Name
	b.mu.Unlock()
	stats, err := showStat(out, name)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	return stats, nil
}

// sessions counts each slot's sessions in flight in every worker: after a
// reload, old workers finish theirs, and a drain is over only when they
// have.
func (b *Balancer) sessions(ctx context.Context) (map[int]int, error) {
	p, err := b.procs(ctx)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	b.mu.Lock()
	name := b.st.Name
	b.mu.Unlock()
	sum := map[int]int{}
	for _, w := range p.Workers {
		out, err := b.master(ctx, fmt.Sprintf("@!%d show stat", w.Pid))
		if err != nil || out == "" || strings.Contains(out, "Can't find the target PID") {
			// An old worker that has finished its last session exits:
			// between show proc and now, it may have gone (or answer
			// nothing on its way out). Any other silence is an error.
			if w.Old && (b.guest != nil || !ours(w.Pid, b.path(cfgFile))) {
				continue
			}
			if err == nil {
				err = fmt.Errorf("worker %d: %q", w.Pid, firstLine(out))
			}
			return nil, fmt.Errorf("lb: %w", err)
		}
		stats, err := showStat(out, name)
		if err != nil {
			return nil, fmt.Errorf("lb: worker %d: %w", w.Pid, err)
		}
		for slot, s := range stats {
			sum[slot] += s.Sessions
		}
	}
	return sum, nil
}

// apply puts every slot of the current worker in the address and state
// b.st wants, over the admin socket, and checks the result. A slot
// without a member drains while it still has sessions, then goes to
// maintenance.
func (b *Balancer) apply(ctx context.Context) error {
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	stats, err := b.stat(ctx)
	if err != nil {
		return err
	}
	if len(stats) != st.Slots {
		return fmt.Errorf("lb: haproxy has %d slots, state.json %d", len(stats), st.Slots)
	}
	want := map[int]member{}
	for _, m := range st.Servers {
		want[m.Slot] = m
	}
	wantState := func(i int, have slotStat) State {
		if m, ok := want[i]; ok {
			return m.State
		}
		if have.Sessions > 0 && have.state() != Maint {
			return Drain
		}
		return Maint
	}
	server := st.Name + "/" + "s"
	for i := range st.Slots {
		have := stats[i]
		if m, ok := want[i]; ok && !sameAddr(m.Addr, have.Addr) {
			ap, _ := netip.ParseAddrPort(m.Addr)
			line := fmt.Sprintf("set server %s%d addr %s port %d", server, i, ap.Addr(), ap.Port())
			out, err := b.admin(ctx, line)
			if err != nil {
				return fmt.Errorf("lb: %w", err)
			}
			if !strings.Contains(out, "changed from") && !strings.Contains(out, "no need to change") {
				return fmt.Errorf("lb: %s: haproxy says %q", line, strings.TrimSpace(out))
			}
		}
		if w := wantState(i, have); have.state() != w {
			line := fmt.Sprintf("set server %s%d state %s", server, i, w)
			out, err := b.admin(ctx, line)
			if err != nil {
				return fmt.Errorf("lb: %w", err)
			}
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("lb: %s: haproxy says %q", line, strings.TrimSpace(out))
			}
		}
	}
	if stats, err = b.stat(ctx); err != nil {
		return err
	}
	for i := range st.Slots {
		have := stats[i]
		m, ok := want[i]
		if ok && (!sameAddr(m.Addr, have.Addr) || have.state() != m.State) {
			return fmt.Errorf("lb: haproxy reports %s (%s) at %s in %s (%q), want %s in %s", slotName(i), m.Name, have.Addr, have.state(), have.Status, m.Addr, m.State)
		}
		if !ok && have.state() == Ready {
			return fmt.Errorf("lb: haproxy reports unused slot %s ready at %s", slotName(i), have.Addr)
		}
	}
	return nil
}

// reload has the master start a worker on the config just written (more
// slots) and waits until that worker answers. The old worker hands over
// the listening socket and finishes its sessions: nothing is refused.
func (b *Balancer) reload(ctx context.Context, had int) error {
	b.mu.Lock()
	st, pid := b.st, b.pid
	b.mu.Unlock()
	if b.guest == nil {
		if err := checkConfig(ctx, st.HAProxy, b.path(cfgFile)); err != nil {
			return err
		}
	} // a guest checked it before it took it (pushGuest)
	before, err := b.procs(ctx)
	if err != nil {
		return fmt.Errorf("lb: reload: %w", err)
	}
	var offset int64
	if fi, err := os.Stat(b.path(logFile)); err == nil {
		offset = fi.Size()
	}
	if b.guest != nil {
		if _, err := b.guestRun(ctx, "reload haproxy", "systemctl reload "+guestUnit, nil); err != nil {
			return fmt.Errorf("%w%s", err, b.guestLog(ctx))
		}
	} else if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("lb: reload: signal haproxy pid %d: %w", pid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		// The master CLI is closed while the master executes itself again.
		if p, err := b.procs(ctx); err == nil {
			if p.Failed > before.Failed {
				return fmt.Errorf("lb: haproxy refused the reload; the old worker still serves%s", b.logTail(ctx, offset))
			}
			if cur := p.current(); cur != 0 && cur != before.current() {
				if w, err := b.answering(ctx); err == nil && w == cur {
					break
				}
			}
		}
		if !b.Running() {
			return fmt.Errorf("lb: haproxy pid %d exited during a reload%s", pid, b.logTail(ctx, offset))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lb: reload: no new worker answered within %s: %w%s", reloadTimeout, ctx.Err(), b.logTail(ctx, offset))
		case <-tick.C:
		}
	}
	b.sink.Emit(progress.Event{Step: "lb", Kind: progress.Note, Time: time.Now(),
		Msg: fmt.Sprintf("haproxy reloaded with %d slots (had %d) for %d servers", st.Slots, had, len(st.Servers))})
	return nil
}

// Stop stops HAProxy gracefully (a soft stop: the listener closes, the
// sessions in flight finish) until ctx ends or 30 s pass, then kills it,
// and removes the sockets and the pid file. state.json, haproxy.cfg and
// haproxy.log stay for a look afterwards; Start replaces them.
func (b *Balancer) Stop(ctx context.Context) error {
	// Stopping is cleanup: it goes on when ctx is already cancelled.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	unlock, err := b.lock(lctx)
	if err != nil {
		return err
	}
	defer unlock()
	if b.guest != nil {
		return b.stopGuest(lctx)
	}
	pid := b.Pid()
	if b.Running() {
		syscall.Kill(pid, syscall.SIGUSR1)
		soft, cancel := context.WithTimeout(ctx, stopTimeout)
		b.waitGone(soft)
		cancel()
	}
	b.kill(lctx)
	if b.Running() {
		return fmt.Errorf("lb: haproxy pid %d survived SIGKILL", pid)
	}
	if left := leftovers(b.path(cfgFile)); len(left) > 0 {
		return fmt.Errorf("lb: haproxy workers %v of %s survived SIGKILL", left, b.dir)
	}
	for _, f := range []string{adminSock, masterSock, pidFile} {
		os.Remove(b.path(f))
	}
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.sink.Emit(progress.Event{Step: "lb", Kind: progress.Note, Time: time.Now(), Msg: fmt.Sprintf("haproxy pid %d stopped", pid)})
	return nil
}

// kill ends the master with SIGKILL, if it still runs, and then its
// workers (which leave by themselves once they see the master gone).
func (b *Balancer) kill(ctx context.Context) {
	if b.guest != nil {
		b.guestRun(ctx, "stop haproxy", "systemctl stop "+guestUnit, nil)
		return
	}
	if b.Running() {
		syscall.Kill(b.Pid(), syscall.SIGKILL)
		wait, cancel := context.WithTimeout(ctx, leftoverTimeout)
		b.waitGone(wait)
		cancel()
	}
	clearLeftovers(ctx, b.path(cfgFile))
}

func (b *Balancer) waitGone(ctx context.Context) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for b.Running() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// clearLeftovers waits for workers of a dead master running cfg to leave
// (they hold the listening socket), and kills those that have not after
// leftoverTimeout.
func clearLeftovers(ctx context.Context, cfg string) {
	ctx, cancel := context.WithTimeout(ctx, leftoverTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		left := leftovers(cfg)
		if len(left) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		case <-tick.C:
		}
	}
}

// claimListen checks the listen address before anything is written, and
// picks a free port for port 0.
func claimListen(listen string) (string, error) {
	ap, err := parseListen(listen)
	if err != nil {
		return "", fmt.Errorf("lb: invalid config: %w", err)
	}
	if ap.Port() != 0 {
		return listen, listenFree(listen)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return "", fmt.Errorf("lb: cannot listen on %s: %w", ap.Addr(), err)
	}
	defer l.Close()
	return netip.AddrPortFrom(ap.Addr(), uint16(l.Addr().(*net.TCPAddr).Port)).String(), nil
}

// listenFree says which address is taken before HAProxy fails on it.
func listenFree(listen string) error {
	l, err := net.Listen("tcp", listen)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("lb: listen address %s is in use by another process: choose another port, or stop what listens there", listen)
	}
	if err != nil {
		return fmt.Errorf("lb: cannot listen on %s: %w", listen, err)
	}
	return l.Close()
}

func writeConfig(path string, data []byte) error {
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("lb: %w", err)
	}
	return nil
}

// checkConfig runs `haproxy -c`: a config HAProxy rejects is never
// started or reloaded.
func checkConfig(ctx context.Context, bin, path string) error {
	out, err := exec.CommandContext(ctx, bin, "-c", "-q", "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lb: haproxy rejects the config kiln wrote, %s (a kiln bug, or an HAProxy it does not know): %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

var versionRE = regexp.MustCompile(`(?i)HA-?Proxy version (\d+)\.(\d+)`)

// checkVersion wants HAProxy 2.6 or newer: master CLI routing to old
// workers (@!PID), `show proc`'s old workers, runtime address changes.
func checkVersion(ctx context.Context, bin string) error {
	out, err := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	if err != nil {
		return fmt.Errorf("lb: %s -v: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	return versionOK(bin, string(out))
}

// versionOK reads `haproxy -v` of what and wants 2.6 or newer.
func versionOK(what, out string) error {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("lb: %s -v: no version in %q", what, firstLine(out))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < 2 || major == 2 && minor < 6 {
		return fmt.Errorf("lb: %s is HAProxy %s.%s: kiln needs 2.6 or newer (Debian 12's)", what, m[1], m[2])
	}
	return nil
}
