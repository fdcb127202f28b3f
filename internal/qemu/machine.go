package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stderrKeep is how much of QEMU's stderr (and stdout) a Machine keeps.
const stderrKeep = 64 * 1024

// waitDelay bounds how long Wait keeps reading QEMU's output pipes after
// QEMU exited or was killed.
const waitDelay = 5 * time.Second

// Machine is a running QEMU. Its methods are safe for concurrent use.
type Machine struct {
	cmd     *exec.Cmd
	pid     int
	ctx     context.Context // Start's: cancelling it kills the machine
	console string          // serial console log
	qmp     string          // QMP socket
	stderr  *tailBuffer

	mu     sync.Mutex
	exited bool // QEMU has exited: its process group is no longer ours to signal

	done    chan struct{} // closed when QEMU has exited and been reaped
	waitErr error         // cmd.Wait's result; read only after done is closed
}

// ExitError reports that QEMU ended unsuccessfully: a non-zero exit
// status, or a signal.
type ExitError struct {
	// Code is QEMU's exit status, or -1 when a signal killed it.
	Code int
	// Signal is the signal that killed QEMU, or 0.
	Signal syscall.Signal
	// Stderr is the tail of what QEMU wrote to stderr and stdout.
	Stderr string
	// Err is why QEMU was killed when the context given to Start ended
	// (the context's cause), or nil.
	Err error
}

func (e *ExitError) Error() string {
	var b strings.Builder
	b.WriteString("qemu: ")
	if e.Signal != 0 {
		fmt.Fprintf(&b, "killed by signal %d (%v)", int(e.Signal), e.Signal)
	} else {
		fmt.Fprintf(&b, "exit status %d", e.Code)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " after %v", e.Err)
	}
	if s := lastLines(e.Stderr, 10); s != "" {
		fmt.Fprintf(&b, ": stderr: %q", s)
	}
	return b.String()
}

// Unwrap returns the cause of a kill by context, if any.
func (e *ExitError) Unwrap() error { return e.Err }

// Start runs QEMU for c with its state in workDir (created if missing):
// the serial console log (truncated first), the QMP socket and, for UEFI,
// the machine's copy of the OVMF variable store, made from c.FirmwareVars
// unless the work dir already has one (so a machine started again in the
// same work dir keeps its boot entries).
//
// Before QEMU runs, every qcow2 image of c's drives is read far enough to
// refuse one keeping its data in an external file (ErrExternalData), the
// one reference to another file a stated chain cannot switch off.
//
// QEMU runs in its own process group with stdin from /dev/null and its
// stderr and stdout kept for errors. When ctx is cancelled the whole
// group is killed; Wait then reports it. Start returns once QEMU has
// been started; use WaitConsole to wait for the guest, Wait for power-off.
func Start(ctx context.Context, c Config, workDir string) (*Machine, error) {
	args, err := c.Args(workDir)
	if err != nil {
		return nil, err
	}
	for i, d := range c.Drives {
		if err := d.image().refuseExternalData(); err != nil {
			return nil, fmt.Errorf("qemu: drives[%d]: %w", i, err)
		}
	}
	bin, err := lookTool("qemu", c.Binary, DefaultBinary, "qemu-system-x86")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if c.Firmware == UEFI {
		if err := copyIfMissing(c.FirmwareVars, varsPath(workDir)); err != nil {
			return nil, fmt.Errorf("qemu: copy OVMF variable store: %w", err)
		}
	}
	m := &Machine{
		ctx:     ctx,
		console: c.consolePath(workDir),
		qmp:     qmpPath(workDir),
		stderr:  &tailBuffer{max: stderrKeep},
		done:    make(chan struct{}),
	}
	// A console left by an earlier boot must not satisfy WaitConsole before
	// QEMU truncates it, nor a stale socket answer Stop.
	if st, err := os.Lstat(m.console); err == nil && st.Mode().IsRegular() {
		if err := os.Truncate(m.console, 0); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
	}
	if st, err := os.Lstat(m.qmp); err == nil && st.Mode()&fs.ModeSocket != 0 {
		_ = os.Remove(m.qmp)
	}

	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = m.stderr
	cmd.Stderr = m.stderr
	cmd.SysProcAttr = sysProcAttr()
	// exec calls Cancel from its own goroutine, possibly before Start below
	// returns: it must read the pid from cmd, which Start set before.
	cmd.Cancel = func() error { return m.killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemu: start %s: %w", bin, err)
	}
	m.cmd = cmd
	m.pid = cmd.Process.Pid
	go m.reap()
	return m, nil
}

// reap waits for QEMU to exit, kills whatever it left in its process group
// while the unreaped QEMU still holds the group id, then reaps it.
func (m *Machine) reap() {
	if canWaitWithoutReaping {
		err := waitExited(m.pid)
		m.mu.Lock()
		m.exited = true
		if err == nil {
			_ = syscall.Kill(-m.pid, syscall.SIGKILL)
		}
		m.mu.Unlock()
	}
	err := m.cmd.Wait()
	m.mu.Lock()
	m.exited = true
	m.mu.Unlock()
	m.waitErr = err
	close(m.done)
}

// killGroup sends SIGKILL to QEMU's process group (pid is QEMU's) unless
// QEMU has exited.
func (m *Machine) killGroup(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.exited {
		return os.ErrProcessDone
	}
	if pid <= 0 { // kill(0) or kill(-1) would hit kiln itself
		return fmt.Errorf("bad pid %d", pid)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}

// PID is QEMU's process id, which is also its process group id.
func (m *Machine) PID() int { return m.pid }

// SerialLog is the file the guest's serial console is written to.
func (m *Machine) SerialLog() string { return m.console }

// Stderr is the tail of what QEMU has written to stderr and stdout so far.
func (m *Machine) Stderr() string { return m.stderr.String() }

// Kill kills QEMU's process group with SIGKILL and returns once QEMU has
// been reaped. It is not an error if QEMU had already exited.
func (m *Machine) Kill() error {
	if err := m.killGroup(m.pid); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("qemu: kill process group %d: %w", m.pid, err)
	}
	<-m.done
	return nil
}

// Wait blocks until QEMU exits: nil when it exited cleanly (the guest
// powered off, or rebooted under NoReboot), an *ExitError quoting QEMU's
// stderr otherwise. When ctx ends first, Wait returns a *ConsoleError
// quoting the last console lines and wrapping ctx.Err(); QEMU keeps
// running (call Stop or Kill, or cancel Start's context).
func (m *Machine) Wait(ctx context.Context) error {
	select {
	case <-m.done:
		return m.exitErr()
	default:
	}
	select {
	case <-m.done:
		return m.exitErr()
	case <-ctx.Done():
		return &ConsoleError{
			Reason: fmt.Sprintf("guest did not power off: %v", ctx.Err()),
			Tail:   m.ConsoleTail(consoleTailLines),
			Err:    ctx.Err(),
		}
	}
}

// Stop asks the guest to power off, as a power button press does (ACPI,
// QMP system_powerdown), and waits for QEMU to exit until ctx ends; then
// it kills QEMU's process group. It returns nil when the guest powered
// off in time (or QEMU had already exited cleanly), and a *ConsoleError
// wrapping the reason when QEMU had to be killed.
func (m *Machine) Stop(ctx context.Context) error {
	select {
	case <-m.done:
		return m.exitErr()
	default:
	}
	qerr := qmpExecute(ctx, m.qmp, "system_powerdown", m.done)
	if qerr == nil {
		select {
		case <-m.done:
			return m.exitErr()
		case <-ctx.Done():
		}
	}
	select {
	case <-m.done: // QEMU went away while the request failed or timed out
		return m.exitErr()
	default:
	}
	tail := m.ConsoleTail(consoleTailLines)
	if err := m.Kill(); err != nil {
		return err
	}
	if qerr != nil {
		return &ConsoleError{Reason: fmt.Sprintf("power-off request failed (%v); killed", qerr), Tail: tail, Err: qerr}
	}
	return &ConsoleError{
		Reason: fmt.Sprintf("guest did not power off after system_powerdown (%v); killed", ctx.Err()),
		Tail:   tail,
		Err:    ctx.Err(),
	}
}

// exitErr turns the reaped status into Wait's result.
func (m *Machine) exitErr() error {
	err := m.waitErr
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("qemu: %w", err)
	}
	x := &ExitError{Code: ee.ExitCode(), Stderr: m.stderr.String()}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		x.Signal = ws.Signal()
	}
	if x.Signal != 0 && m.ctx.Err() != nil {
		x.Err = context.Cause(m.ctx)
	}
	return x
}

// lookTool resolves a tool: the configured path or name, else def in PATH.
func lookTool(prefix, configured, def, pkg string) (string, error) {
	name := configured
	if name == "" {
		name = def
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if configured == "" {
			return "", fmt.Errorf("%s: %s not found in PATH: install the %s package", prefix, def, pkg)
		}
		return "", fmt.Errorf("%s: %w", prefix, err)
	}
	return p, nil
}

// copyIfMissing copies src to dst (mode 0600) unless dst exists; the copy
// appears whole or not at all.
func copyIfMissing(src, dst string) (err error) {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if err = out.Chmod(0o600); err != nil {
		return err
	}
	if _, err = io.Copy(out, in); err != nil {
		return err
	}
	if err = out.Sync(); err != nil {
		return err
	}
	if err = out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

// tailBuffer is an io.Writer that keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lastLines returns the last n non-empty lines of s, trimmed.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			keep = append(keep, l)
		}
	}
	for i, j := 0, len(keep)-1; i < j; i, j = i+1, j-1 {
		keep[i], keep[j] = keep[j], keep[i]
	}
	return strings.Join(keep, "\n")
}

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }
