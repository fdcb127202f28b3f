package qemu

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/testutil"
)

// Every test here boots at most one QEMU at a time and kills it on exit.

// bootConfig is a 64 MiB SeaBIOS machine under TCG booting disk.
func bootConfig(t *testing.T, disk string) Config {
	t.Helper()
	testutil.Integration(t)
	return Config{
		Binary:    testutil.NeedTool(t, "qemu-system-x86_64"),
		Accel:     TCG,
		Firmware:  BIOS,
		MemoryMiB: 64,
		Drives:    []Drive{{Path: disk, Format: "raw"}},
		NoReboot:  true,
	}
}

// start starts c and makes sure the machine is gone when the test ends.
func start(t *testing.T, ctx context.Context, c Config, workDir string) *Machine {
	t.Helper()
	m, err := Start(ctx, c, workDir)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		_ = m.Kill()
		assertGone(t, m.PID())
	})
	return m
}

func waitConsole(t *testing.T, m *Machine, substr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	begin := time.Now()
	if err := m.WaitConsole(ctx, substr); err != nil {
		t.Fatalf("WaitConsole(%q): %v\nqemu stderr: %s", substr, err, m.Stderr())
	}
	t.Logf("console showed %q after %v", substr, time.Since(begin).Round(time.Millisecond))
}

// assertGone fails unless process pid and its process group are gone:
// no such process, or only an unreaped zombie (when init does not reap).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if !processGone(pid) {
		t.Errorf("process %d is still running", pid)
	}
	if err := syscall.Kill(-pid, 0); err != syscall.ESRCH && !groupAllZombies(pid) {
		t.Errorf("process group %d still has live members (kill: %v)", pid, err)
	}
}

func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	return procState(pid) == "Z"
}

// procState is the state letter in /proc/PID/stat, "" when there is none.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), ") ") // after "pid (comm) "
	if !ok || rest == "" {
		return ""
	}
	return rest[:1]
}

// groupAllZombies reports whether every process in group pgid is a zombie.
func groupAllZombies(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		f := strings.Fields(rest) // state ppid pgrp ...
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			return false
		}
	}
	return true
}

// TestMachine_BootSectorPowersOff boots the hand-made boot sector under
// SeaBIOS: its marker reaches the console log and the guest's ACPI
// power-off ends QEMU cleanly, so Wait returns nil.
func TestMachine_BootSectorPowersOff(t *testing.T) {
	dir := t.TempDir()
	c := bootConfig(t, writeBootDisk(t, dir, modePowerOff))
	begin := time.Now()
	m := start(t, context.Background(), c, dir)
	waitConsole(t, m, bootMarker, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	t.Logf("boot to power-off: %v", time.Since(begin).Round(time.Millisecond))
	if got := m.ConsoleTail(5); got != bootMarker {
		t.Errorf("ConsoleTail = %q, want %q", got, bootMarker)
	}
	if m.SerialLog() != filepath.Join(dir, ConsoleLogName) {
		t.Errorf("SerialLog = %q", m.SerialLog())
	}
	assertGone(t, m.PID())
}

// TestMachine_StopPowerButton: Stop presses the ACPI power button through
// QMP, the guest (waiting for exactly that) powers off, Stop returns nil.
func TestMachine_StopPowerButton(t *testing.T) {
	dir := t.TempDir()
	m := start(t, context.Background(), bootConfig(t, writeBootDisk(t, dir, modePowerButton)), dir)
	waitConsole(t, m, bootMarker, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	begin := time.Now()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("graceful stop: %v", time.Since(begin).Round(time.Millisecond))
	if err := m.Wait(ctx); err != nil {
		t.Errorf("Wait after a clean power-off: %v", err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	assertGone(t, m.PID())
}

// TestMachine_DebugExit: a guest that leaves through isa-debug-exit makes
// QEMU exit with status 33, which Wait reports as an *ExitError the
// caller can recognise.
func TestMachine_DebugExit(t *testing.T) {
	dir := t.TempDir()
	c := bootConfig(t, writeBootDisk(t, dir, modeDebugExit))
	c.ExtraArgs = debugExitDevice
	m := start(t, context.Background(), c, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.Wait(ctx)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != debugExitStatus || ee.Signal != 0 {
		t.Fatalf("Wait = %v; want an *ExitError with status %d", err, debugExitStatus)
	}
	if got := m.ConsoleTail(1); got != bootMarker {
		t.Errorf("ConsoleTail = %q", got)
	}
}

// TestMachine_WaitConsoleQEMUExits: waiting for text the guest never
// prints ends when QEMU exits, with the console tail as evidence.
func TestMachine_WaitConsoleQEMUExits(t *testing.T) {
	dir := t.TempDir()
	m := start(t, context.Background(), bootConfig(t, writeBootDisk(t, dir, modePowerOff)), dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.WaitConsole(ctx, "login:")
	var ce *ConsoleError
	if !errors.As(err, &ce) {
		t.Fatalf("WaitConsole = %v; want a *ConsoleError", err)
	}
	if ce.Err != nil || !strings.Contains(ce.Reason, `qemu exited before the console showed "login:"`) ||
		!strings.Contains(ce.Reason, "powered off") || ce.Tail != bootMarker ||
		!strings.Contains(err.Error(), "    "+bootMarker) {
		t.Errorf("ConsoleError = %+v\n%v", ce, err)
	}
}

// TestMachine_WaitDeadline: Wait gives up at its context's deadline with
// the console tail, and leaves the machine running for Kill.
func TestMachine_WaitDeadline(t *testing.T) {
	dir := t.TempDir()
	m := start(t, context.Background(), bootConfig(t, writeBootDisk(t, dir, modePowerButton)), dir)
	waitConsole(t, m, bootMarker, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := m.Wait(ctx)
	var ce *ConsoleError
	if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) || ce.Tail != bootMarker {
		t.Fatalf("Wait = %v; want a *ConsoleError at the deadline quoting the console", err)
	}
	if processGone(m.PID()) {
		t.Fatal("Wait's deadline killed the machine")
	}
	if err := m.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	assertGone(t, m.PID())
	err = m.Wait(context.Background())
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL {
		t.Errorf("Wait after Kill = %v; want killed by SIGKILL", err)
	}
	if err := m.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

// TestMachine_CancelKillsGroup: cancelling Start's context kills QEMU and
// everything in its process group; nothing is left behind. QEMU is
// started through a wrapper script that leaves a child in the group.
func TestMachine_CancelKillsGroup(t *testing.T) {
	dir := t.TempDir()
	c := bootConfig(t, writeBootDisk(t, dir, modePowerButton))
	childPID := filepath.Join(dir, "child.pid")
	wrapper := filepath.Join(dir, "qemu-wrapper")
	writeFile(t, wrapper, fmt.Sprintf("#!/bin/sh\nsleep 300 &\necho $! > %s\nexec %s \"$@\"\n", childPID, c.Binary))
	if err := os.Chmod(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Binary = wrapper

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := start(t, ctx, c, dir)
	waitConsole(t, m, bootMarker, 30*time.Second)
	b, err := os.ReadFile(childPID)
	if err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || processGone(child) {
		t.Fatalf("wrapper child %q is not running", b)
	}

	begin := time.Now()
	cancel()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	err = m.Wait(wctx)
	t.Logf("cancel to reaped: %v", time.Since(begin).Round(time.Millisecond))
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != syscall.SIGKILL || !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v; want killed by SIGKILL, wrapping context.Canceled", err)
	}
	if err := syscall.Kill(m.PID(), 0); err != syscall.ESRCH {
		t.Errorf("kill(%d, 0) = %v, want ESRCH", m.PID(), err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(child) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !processGone(child) {
		t.Errorf("child %d of QEMU's process group survived the cancel", child)
	}
	assertGone(t, m.PID())
}

// TestMachine_PortForward: QEMU binds the host side of its forwards on
// 127.0.0.1 while it runs, and the ports are free again after.
func TestMachine_PortForward(t *testing.T) {
	dir := t.TempDir()
	c := bootConfig(t, writeBootDisk(t, dir, modePowerButton))
	tcpPort, err := FreePort("tcp")
	if err != nil {
		t.Fatal(err)
	}
	udpPort, err := FreePort("udp")
	if err != nil {
		t.Fatal(err)
	}
	c.NICs = []NIC{{Forwards: []Forward{
		{Proto: "tcp", HostPort: tcpPort, GuestPort: 22},
		{Proto: "udp", HostPort: udpPort, GuestPort: 53},
	}}}
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", tcpPort)
	udpAddr := fmt.Sprintf("127.0.0.1:%d", udpPort)

	m := start(t, context.Background(), c, dir)
	waitConsole(t, m, bootMarker, 30*time.Second) // QEMU set up its network before the guest ran
	if l, err := net.Listen("tcp", tcpAddr); err == nil {
		l.Close()
		t.Errorf("tcp %s is free while QEMU runs", tcpAddr)
	}
	if p, err := net.ListenPacket("udp", udpAddr); err == nil {
		p.Close()
		t.Errorf("udp %s is free while QEMU runs", udpAddr)
	}
	if local, ok := tcpListener(t, tcpPort); !ok || local != "0100007F" {
		t.Errorf("tcp port %d: listener address %q, want 127.0.0.1 (0100007F) only", tcpPort, local)
	}

	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		t.Errorf("tcp %s still taken after QEMU exited: %v", tcpAddr, err)
	} else {
		l.Close()
	}
	p, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		t.Errorf("udp %s still taken after QEMU exited: %v", udpAddr, err)
	} else {
		p.Close()
	}
}

// tcpListener finds the listening socket on port in /proc/net/tcp and
// returns its local address in the kernel's hex notation.
func tcpListener(t *testing.T, port int) (string, bool) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Logf("cannot read /proc/net/tcp: %v", err)
		return "", false
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line) // sl local_address rem_address st ...
		if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return strings.TrimSuffix(f[1], want), true
		}
	}
	return "", false
}

// TestMachine_UEFI boots OVMF with nothing bootable: the firmware writes to
// the serial console up to its shell. The machine gets a copy of the
// variable store; the template is left untouched.
func TestMachine_UEFI(t *testing.T) {
	testutil.Integration(t)
	bin := testutil.NeedTool(t, "qemu-system-x86_64")
	code, vars, err := FindFirmware(UEFI)
	if err != nil {
		testutil.Unavailable(t, "%v", err)
	}
	before := fileSum(t, vars)
	dir := t.TempDir()
	c := Config{
		Binary:       bin,
		Accel:        TCG,
		Firmware:     UEFI,
		FirmwareCode: code,
		FirmwareVars: vars,
		MemoryMiB:    128,
		NoReboot:     true,
	}
	begin := time.Now()
	m := start(t, context.Background(), c, dir)
	waitConsole(t, m, "BdsDxe", 45*time.Second)
	waitConsole(t, m, "UEFI Interactive Shell", 45*time.Second)
	t.Logf("UEFI shell after %v", time.Since(begin).Round(time.Millisecond))

	st, err := os.Stat(filepath.Join(dir, VarsName))
	if err != nil {
		t.Fatalf("no variable store copy in the work dir: %v", err)
	}
	tpl, _ := os.Stat(vars)
	if st.Size() != tpl.Size() {
		t.Errorf("variable store copy is %d bytes, template %d", st.Size(), tpl.Size())
	}

	// The shell does not act on the power button: Stop must fall back to
	// killing, and say so.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = m.Stop(ctx)
	var ce *ConsoleError
	if err != nil && (!errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(ce.Tail, "UEFI Interactive Shell")) {
		t.Errorf("Stop = %v; want nil or a *ConsoleError at the deadline quoting the shell", err)
	}
	t.Logf("Stop: %v", err)
	assertGone(t, m.PID())
	if fileSum(t, vars) != before {
		t.Errorf("the OVMF variable template %s was modified", vars)
	}
}

// TestMachine_BadArgs: QEMU refusing its command line is reported with
// its stderr, by Wait and by WaitConsole.
func TestMachine_BadArgs(t *testing.T) {
	testutil.Integration(t)
	dir := t.TempDir()
	c := Config{Binary: testutil.NeedTool(t, "qemu-system-x86_64"), ExtraArgs: []string{"-no-such-option"}}
	m := start(t, context.Background(), c, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := m.WaitConsole(ctx, "anything")
	var ce *ConsoleError
	var ee *ExitError
	if !errors.As(err, &ce) || !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("WaitConsole = %v; want a *ConsoleError wrapping an *ExitError", err)
	}
	err = m.Wait(ctx)
	if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "-no-such-option") ||
		!strings.Contains(err.Error(), `stderr: "`) || !strings.Contains(err.Error(), "invalid option") {
		t.Errorf("Wait = %v; want an *ExitError quoting stderr", err)
	}
}

func TestStart_Errors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Start(context.Background(), Config{Binary: filepath.Join(dir, "no-qemu")}, dir); err == nil ||
		!strings.HasPrefix(err.Error(), "qemu: ") {
		t.Errorf("missing binary: err = %v", err)
	}
	if _, err := Start(context.Background(), Config{Accel: "xen"}, dir); err == nil || !strings.Contains(err.Error(), `unknown accel "xen"`) {
		t.Errorf("invalid config: err = %v", err)
	}
	t.Setenv("PATH", dir)
	if _, err := Start(context.Background(), Config{}, dir); err == nil ||
		!strings.Contains(err.Error(), "install the qemu-system-x86 package") {
		t.Errorf("no qemu in PATH: err = %v", err)
	}
}

func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
