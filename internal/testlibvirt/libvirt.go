package testlibvirt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/kiln-project/kiln/internal/testutil"
)

// Options for Start and Launch.
type Options struct {
	// SmallPool, a size such as "16M", gives the daemon a tmpfs of that
	// size at Daemon.SmallPoolDir, seen only by libvirtd and its guests:
	// a host whose disk is nearly full.
	SmallPool string
	// TCP makes libvirtd listen on a free port of 127.0.0.1 too, without
	// authentication (tests only): Daemon.TCPURI is qemu+tcp://… to it.
	TCP bool
	// NetNS runs libvirtd, and so its guests, its networks' bridges and
	// their dnsmasq, in a network namespace of its own (with only lo, up):
	// libvirt networks whose addresses never meet the host's. Tests reach
	// into it with nsenter --net=Daemon.NetNS(): entering a namespace
	// from a Go process is best left to a process of its own. Not with TCP.
	NetNS bool
}

// Daemon is a running libvirtd (qemu:///system driver, as root) with a
// virtlogd of its own, each in a private mount namespace that sees the
// directories under Dir in place of libvirt's system directories.
type Daemon struct {
	Dir     string // everything the daemon keeps; see the package doc for the layout
	Socket  string // libvirtd's read-write socket, a path on the host
	URI     string // qemu+unix:///system?socket=<Socket>, for virsh -c and kiln
	TCPURI  string // qemu+tcp://127.0.0.1:PORT/system with Options.TCP
	PoolDir string // an empty directory for a dir-type storage pool
	// SmallPoolDir is the tmpfs of Options.SmallPool (in libvirtd's
	// namespace only; from outside, an empty directory).
	SmallPoolDir string
	Log          string // libvirtd's log file (log_outputs)

	opts    Options
	mu      sync.Mutex
	procs   []*proc // virtlogd, then libvirtd; stopped in reverse order
	stopped bool
}

// proc is one daemon process and the mount namespace it runs in.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been waited for
	// ns is the process's /proc/PID/ns/mnt, held open until Stop: an
	// open namespace keeps its inode number, which a new namespace could
	// otherwise reuse once this one is gone.
	ns *os.File
}

const (
	// readyTimeout bounds one daemon start. libvirtd probes QEMU's
	// capabilities before it answers (about 9 s on these machines,
	// unless cached: copyCaps); a loaded CI machine may be much slower.
	readyTimeout = 2 * time.Minute
	// stopTimeout bounds the wait for a killed process to be reaped.
	stopTimeout = 30 * time.Second
	// maxSocketPath is sun_path's size on Linux, less its NUL.
	maxSocketPath = 107
)

// The host's libvirt directories each daemon sees replaced by one of its
// own, as dir-under-Dir -> path in the namespace. /run is replaced whole:
// libvirtd and virtlogd keep their pid files (the lock that allows one
// daemon per host) directly in /run, and /run/libvirt need not exist on
// the host to be mounted over.
var binds = []struct{ dir, target string }{
	{"run", "/run"},
	{"etc", "/etc/libvirt"},
	{"lib", "/var/lib/libvirt"},
	{"cache", "/var/cache/libvirt"},
	{"log", "/var/log/libvirt"},
}

// Start runs virtlogd and libvirtd for the test in a fresh directory and
// waits until libvirtd answers with its QEMU driver. Both are stopped in
// t.Cleanup. It fails the test, with the tail of the daemons' logs, when
// they do not come up.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	needTools(t)
	testutil.NeedRoot(t)
	// Not t.TempDir: its path carries the test's name, and the socket's
	// path must fit in 107 bytes.
	dir, err := os.MkdirTemp("", "testlibvirt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testlibvirt: %v", err)
		}
	})
	d, err := launch(dir, opts)
	if d != nil {
		t.Cleanup(d.Stop) // before RemoveAll: cleanups run last-in first-out
	}
	if err != nil {
		t.Fatalf("testlibvirt: %v", err)
	}
	return d
}

// needTools checks that the daemons and mount(8) are installed:
// testutil.NeedTool skips on a laptop, fails under CI.
func needTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"libvirtd", "virtlogd", "mount"} {
		testutil.NeedTool(t, tool)
	}
}

// Launch is Start for programs that are not tests (the benchmarks): the
// daemon keeps its files in dir (made if missing), and the caller stops it.
func Launch(dir string, opts Options) (*Daemon, error) {
	for _, tool := range []string{"libvirtd", "virtlogd", "mount"} {
		if _, err := lookPath(tool); err != nil {
			return nil, err
		}
	}
	d, err := launch(dir, opts)
	if err != nil && d != nil {
		d.Stop()
	}
	return d, err
}

func launch(dir string, opts Options) (*Daemon, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		Dir:     dir,
		Socket:  filepath.Join(dir, "run", "libvirt", "libvirt-sock"),
		PoolDir: filepath.Join(dir, "pool"),
		opts:    opts,
		Log:     filepath.Join(dir, "log", "libvirtd.log"),
	}
	// Unescaped, as libvirt's documents write it: the path is checked to
	// need no escaping.
	d.URI = "qemu+unix:///system?socket=" + d.Socket
	if len(d.Socket) > maxSocketPath {
		return nil, fmt.Errorf("socket path %s is longer than %d bytes: use a shorter dir", d.Socket, maxSocketPath)
	}
	if !plain(d.Socket) {
		return nil, fmt.Errorf("socket path %q has characters a URI would need escaped: use a plainer dir", d.Socket)
	}
	if err := d.writeFiles(); err != nil {
		return nil, err
	}

	// virtlogd first: libvirtd hands it every guest's console and log.
	if err := d.spawn("virtlogd"); err != nil {
		return d, err
	}
	if err := d.waitFile(d.procs[0], filepath.Join(dir, "run", "libvirt", "virtlogd-sock")); err != nil {
		return d, fmt.Errorf("start virtlogd: %v\n%s", err, d.logTail())
	}
	caps := filepath.Join(dir, "cache", "qemu", "capabilities")
	shared := filepath.Join(testutil.CacheRoot(), "libvirt-qemu-capabilities")
	if err := copyCaps(shared, caps); err != nil {
		return d, err
	}
	var listen []string
	if opts.TCP {
		listen = []string{"--listen"}
	}
	if err := d.spawn("libvirtd", listen...); err != nil {
		return d, err
	}
	if err := d.waitReady(d.procs[1]); err != nil {
		return d, fmt.Errorf("start libvirtd: %v\n%s", err, d.logTail())
	}
	// Best effort: the cache only saves time, and a read-only one is no
	// reason to fail a test.
	_ = copyCaps(caps, shared)
	return d, nil
}

// copyCaps copies libvirt's cache of QEMU's capabilities from one
// directory to another, replacing each file atomically. Probing QEMU is
// most of a daemon's start (about 9 s here, 0.3 s with the cache), and
// every daemon would probe the same binaries. Sharing the cache is safe:
// libvirt checks each entry against the QEMU binary, libvirtd itself, the
// kernel and the host CPU, and probes again when one changed.
func copyCaps(from, to string) error {
	files, err := filepath.Glob(filepath.Join(from, "*.xml"))
	if err != nil || len(files) == 0 {
		return err
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, filepath.Base(f))
		if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
			continue
		}
		// Another test process may be copying the same file.
		tmp, err := os.CreateTemp(to, ".caps-*")
		if err != nil {
			return err
		}
		_, err = tmp.Write(b)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), dst)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("QEMU capabilities cache: %w", err)
		}
	}
	return nil
}

// writeFiles makes the directories the namespaces mount and libvirt's
// configuration. Every path in the configuration files is the one seen
// inside the namespace.
func (d *Daemon) writeFiles() error {
	for _, b := range binds {
		if err := os.MkdirAll(filepath.Join(d.Dir, b.dir), 0o755); err != nil {
			return err
		}
	}
	// The socket's directory is seen from outside the namespace too.
	if err := os.MkdirAll(filepath.Join(d.Dir, "run", "libvirt"), 0o755); err != nil {
		return err
	}
	if d.opts.SmallPool != "" {
		d.SmallPoolDir = filepath.Join(d.Dir, "small-pool")
		if err := os.MkdirAll(d.SmallPoolDir, 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(d.PoolDir, 0o755); err != nil {
		return err
	}
	// As the Debian package leaves a host: the QEMU driver's log directory
	// exists (libvirt logs each domain's QEMU there).
	if err := os.MkdirAll(filepath.Join(d.Dir, "log", "qemu"), 0o755); err != nil {
		return err
	}
	files := map[string]string{
		// Root only, and no polkit: there is no D-Bus in the namespace.
		"libvirtd.conf": `unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
`,
		"virtlogd.conf": `log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
`,
		// Guests run as root, unconfined (there is no AppArmor, SELinux
		// or systemd to work with here), and libvirt leaves cgroups,
		// per-guest /dev namespaces and file ownership alone: host state
		// that a test could not undo.
		"qemu.conf": `user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
`,
	}
	if d.opts.TCP {
		port, err := freePort()
		if err != nil {
			return err
		}
		d.TCPURI = fmt.Sprintf("qemu+tcp://127.0.0.1:%d/system", port)
		files["libvirtd.conf"] += fmt.Sprintf("listen_tls = 0\nlisten_tcp = 1\nlisten_addr = \"127.0.0.1\"\ntcp_port = \"%d\"\nauth_tcp = \"none\"\n", port)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(d.Dir, "etc", name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// spawn starts the named daemon in the foreground in a new mount namespace
// (sysProcAttr) through a shell that first mounts the binds.
func (d *Daemon) spawn(name string, args ...string) error {
	bin, err := lookPath(name)
	if err != nil {
		return err
	}
	mount, err := lookPath("mount")
	if err != nil {
		return err
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, b := range binds {
		fmt.Fprintf(&script, "%s --bind -- %s %s\n", mount, shellQuote(filepath.Join(d.Dir, b.dir)), b.target)
	}
	if name == "libvirtd" && d.opts.NetNS {
		fmt.Fprintf(&script, "ip link set lo up\n")
	}
	if name == "libvirtd" && d.SmallPoolDir != "" {
		fmt.Fprintf(&script, "%s -t tmpfs -o size=%s -- kiln-small-pool %s\n", mount, shellQuote(d.opts.SmallPool), shellQuote(d.SmallPoolDir))
	}
	script.WriteString(`exec "$@"` + "\n")

	out, err := os.OpenFile(filepath.Join(d.Dir, "log", name+".out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close() // the child keeps its own descriptor
	cmd := exec.Command("/bin/sh", append([]string{"-c", script.String(), "sh", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr, err = sysProcAttr(name == "libvirtd" && d.opts.NetNS)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	// Start returns after the exec, so the child has its namespace.
	p.ns, err = os.Open(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	if err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return fmt.Errorf("%s's mount namespace: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	return nil
}

// waitFile waits until path exists (virtlogd's socket) or p exits.
func (d *Daemon) waitFile(p *proc, path string) error {
	return poll(p, func(time.Time) error {
		_, err := os.Stat(path)
		return err
	})
}

// waitReady waits until libvirtd answers on its socket with the QEMU
// driver loaded, or exits.
func (d *Daemon) waitReady(p *proc) error {
	return poll(p, d.probe)
}

// probe connects once and asks for the hypervisor's version (not the
// library's: that needs the QEMU driver, the slow part of a start).
// go-libvirt's calls have no timeout, and with a read deadline on its
// connection it spins (it retries timeouts), so the probe closes the
// connection at the deadline instead.
func (d *Daemon) probe(deadline time.Time) error {
	conn, err := net.DialTimeout("unix", d.Socket, time.Until(deadline))
	if err != nil {
		return err
	}
	abort := time.AfterFunc(time.Until(deadline), func() { conn.Close() })
	defer abort.Stop()
	l := libvirt.NewWithDialer(dialers.NewAlreadyConnected(conn))
	if err := l.ConnectToURI(libvirt.QEMUSystem); err != nil {
		return err // the connection is closed
	}
	defer l.Disconnect()
	v, err := l.ConnectGetVersion()
	if err == nil && v == 0 {
		err = errors.New("no hypervisor version yet")
	}
	return err
}

// poll calls probe until it succeeds, p exits or readyTimeout passes.
func poll(p *proc, probe func(deadline time.Time) error) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := probe(deadline)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%v; last probe: %v)", p.name, p.cmd.ProcessState, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v", p.name, readyTimeout, err)
		}
		select {
		case <-p.done:
		case <-tick.C:
		}
	}
}

// connect opens a go-libvirt connection by the daemon's URI, the way kiln
// will (libvirt.ConnectToURI reads the socket from the URI).
func (d *Daemon) connect() (*libvirt.Libvirt, error) {
	u, err := url.Parse(d.URI)
	if err != nil {
		return nil, err
	}
	return libvirt.ConnectToURI(u)
}

// Connect returns a go-libvirt connection to the daemon, disconnected in
// t.Cleanup.
func (d *Daemon) Connect(t testing.TB) *libvirt.Libvirt {
	t.Helper()
	l, err := d.connect()
	if err != nil {
		t.Fatalf("testlibvirt: connect to %s: %v", d.URI, err)
	}
	t.Cleanup(func() {
		// Errors are expected when the test stopped the daemon first.
		_ = l.Disconnect()
	})
	return l
}

// PIDs returns the process ids of the daemon's virtlogd and libvirtd
// (0 for one not started), also after Stop.
func (d *Daemon) PIDs() (virtlogd, libvirtd int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	pids := [2]int{}
	for i, p := range d.procs {
		pids[i] = p.cmd.Process.Pid
	}
	return pids[0], pids[1]
}

// Stop kills libvirtd and virtlogd, and every other process left in their
// mount namespaces (a guest's QEMU, which libvirtd starts in a session of
// its own), and waits for them to exit. The namespaces, and with them the
// mounts, end with their last process. It is idempotent.
func (d *Daemon) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stopped = true
	for i := len(d.procs) - 1; i >= 0; i-- {
		p := d.procs[i]
		select {
		case <-p.done:
			// Already reaped: its pid, and so its group id, may belong
			// to someone else now.
		default:
			// The group: the shell's mount(8) children, or a QEMU
			// capability probe.
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
		killNamespace(p.ns)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			// Nothing sensible is left to do; the test binary's exit
			// takes it (Pdeathsig).
		}
		p.ns.Close()
	}
}

// killNamespace kills every process in the mount namespace ns.
func killNamespace(ns *os.File) {
	want, err := ns.Stat()
	if err != nil {
		return
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if st, err := os.Stat(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && os.SameFile(st, want) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// logTail is the end of each of the daemon's logs, for failure messages.
func (d *Daemon) logTail() string {
	var b strings.Builder
	for _, name := range []string{"virtlogd.out", "virtlogd.log", "libvirtd.out", "libvirtd.log"} {
		path := filepath.Join(d.Dir, "log", name)
		fmt.Fprintf(&b, "--- tail of %s ---\n%s\n", path, tail(path, 4<<10))
	}
	return b.String()
}

func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// lookPath finds an executable, also in the sbin directories a non-root
// PATH may lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (run make deps)", name)
}

// plain reports whether s has only letters, digits and "/._-".
func plain(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._-", r)) {
			return false
		}
	}
	return true
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// freePort is a port of 127.0.0.1 free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NetNS is the path of libvirtd's network namespace (with Options.NetNS:
// where its libvirt networks and their guests are), for nsenter --net.
func (d *Daemon) NetNS() string {
	_, pid := d.PIDs()
	return fmt.Sprintf("/proc/%d/ns/net", pid)
}
