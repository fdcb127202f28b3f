package lb

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/progress"
)

// Guest is a machine that runs a balancer's HAProxy for kiln: a kiln image
// of the proxy role, whose systemd unit (Debian's haproxy.service) kiln
// gives its own config and master socket. The caller connects to it (the
// deploy controller over SSH); lb only asks it for its sockets and for
// commands run as root.
//
// A guest balancer keeps state.json, its lock and a copy of haproxy.cfg in
// Config.Dir on this host, as a host balancer does: what kiln wants
// survives the controller, and a guest that lost its config (reimaged,
// restarted) is given it again.
type Guest interface {
	// DialUnix connects to a unix socket in the guest, as User.
	DialUnix(ctx context.Context, path string) (net.Conn, error)
	// Run runs a shell command as root with stdin and returns its combined
	// output and exit code; err is set only when it could not be run.
	Run(ctx context.Context, cmd string, stdin []byte) (out string, code int, err error)
	// User is the guest account kiln connects as: the sockets are its.
	User() string
}

// Where kiln's HAProxy lives in a guest.
const (
	guestCfg        = "/etc/haproxy/haproxy.cfg"
	guestRoleCfg    = "/etc/haproxy/haproxy.cfg.role" // the proxy role's own, kept once
	guestDropIn     = "/etc/systemd/system/haproxy.service.d/50-kiln-lb.conf"
	guestAdminSock  = "/run/haproxy/kiln-admin.sock"
	guestMasterSock = "/run/haproxy/kiln-master.sock"
	guestUnit       = "haproxy.service"
)

// guestUserRE is an account name safe in a config line and a shell word.
var guestUserRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// admin and master send a line to HAProxy's admin or master CLI, wherever
// it runs.
func (b *Balancer) admin(ctx context.Context, line string) (string, error) {
	if b.guest != nil {
		return command(ctx, b.guestSocket(guestAdminSock), line)
	}
	return command(ctx, unixSocket(b.path(adminSock)), line)
}

func (b *Balancer) master(ctx context.Context, line string) (string, error) {
	if b.guest != nil {
		return command(ctx, b.guestSocket(guestMasterSock), line)
	}
	return command(ctx, unixSocket(b.path(masterSock)), line)
}

func (b *Balancer) guestSocket(path string) dialer {
	return func(ctx context.Context) (net.Conn, error) { return b.guest.DialUnix(ctx, path) }
}

// guestRun runs a command as root in the guest; a non-zero exit is an
// error carrying its output.
func (b *Balancer) guestRun(ctx context.Context, what, cmd string, stdin []byte) (string, error) {
	out, code, err := b.guest.Run(ctx, cmd, stdin)
	if err != nil {
		return out, fmt.Errorf("lb: guest: %s: %w", what, err)
	}
	if code != 0 {
		return out, fmt.Errorf("lb: guest: %s: exit %d: %s", what, code, strings.TrimSpace(out))
	}
	return out, nil
}

// guestDropInText points the unit's master CLI at kiln's socket, owned by
// kiln's account.
func guestDropInText(user string) string {
	return "# Written by kiln (deploy/lb): HAProxy's master CLI, for kiln's account.\n[Service]\n" +
		`Environment="EXTRAOPTS=-S ` + guestMasterSock + ",user," + user + `,mode,600"` + "\n"
}

// pushScript installs the config read from stdin where it differs from
// the one in place, checked by `haproxy -c` before it replaces it (a
// temp file, renamed), and the unit's drop-in. The role's own config is
// kept aside once. It prints "unit-changed" when systemd must restart
// HAProxy for the drop-in to count.
const pushScript = `set -e
umask 022
cfg=` + guestCfg + `
if [ -e "$cfg" ] && [ ! -e ` + guestRoleCfg + ` ] && ! grep -q '^# Written by kiln (deploy/lb)' "$cfg"; then
	cp -p "$cfg" ` + guestRoleCfg + `
fi
new=$(mktemp "$cfg.kiln.XXXXXX")
trap 'rm -f "$new"' EXIT
cat > "$new"
chmod 644 "$new"
if ! cmp -s "$new" "$cfg"; then
	haproxy -c -q -f "$new"
	sync "$new"
	mv -f "$new" "$cfg"
fi
d=` + guestDropIn + `
if [ "$(cat "$d" 2>/dev/null)" != "$DROPIN" ]; then
	mkdir -p "${d%/*}"
	printf '%s\n' "$DROPIN" > "$d.new"
	mv -f "$d.new" "$d"
	systemctl daemon-reload
	echo unit-changed
fi
`

// pushGuest gives the guest the config of b.st (and the unit's drop-in),
// unless it was given exactly that already by this process.
func (b *Balancer) pushGuest(ctx context.Context) (unitChanged bool, err error) {
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	cfg := st.config("")
	sum := sha256.Sum256(cfg)
	if b.pushed == sum {
		return false, nil
	}
	out, err := b.guestRun(ctx, "install haproxy.cfg", withDropIn(st.GuestUser, pushScript), cfg)
	if err != nil {
		return false, err
	}
	b.pushed = sum
	return strings.Contains(out, "unit-changed"), nil
}

// withDropIn is script with $DROPIN set to the drop-in for user, as one
// shell word (its comment has apostrophes).
func withDropIn(user, script string) string {
	dropIn := strings.TrimSuffix(guestDropInText(user), "\n")
	return "DROPIN='" + strings.ReplaceAll(dropIn, "'", `'\''`) + "'\n" + script
}

// guestLog is what HAProxy's unit logged last, for errors.
func (b *Balancer) guestLog(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	out, _, err := b.guest.Run(ctx, "journalctl -u "+guestUnit+" -n 5 -o cat --no-pager", nil)
	if err != nil || strings.TrimSpace(out) == "" {
		return ""
	}
	return " (journal of " + guestUnit + ": " + strings.Join(strings.Fields(strings.ReplaceAll(out, "\n", " | ")), " ") + ")"
}

// launchGuest (re)starts the guest's HAProxy on kiln's config, waits until
// it answers and puts every server in its state. A restart, not a reload:
// the HAProxy it replaces runs the role's config, or none.
func (b *Balancer) launchGuest(ctx context.Context) error {
	if err := b.writeFiles(); err != nil {
		return err
	}
	b.pushed = [32]byte{} // the guest may have lost what this process gave it
	if _, err := b.pushGuest(ctx); err != nil {
		return err
	}
	if _, err := b.guestRun(ctx, "restart haproxy", "systemctl restart "+guestUnit, nil); err != nil {
		return fmt.Errorf("%w%s", err, b.guestLog(ctx))
	}
	if err := b.waitAnswering(ctx, startTimeout); err != nil {
		return fmt.Errorf("lb: the guest's haproxy started but did not answer on %s: %w%s", guestAdminSock, err, b.guestLog(ctx))
	}
	b.mu.Lock()
	st := b.st
	b.mu.Unlock()
	b.sink.Emit(progress.Event{Step: "lb", Kind: progress.Note, Time: time.Now(),
		Msg: fmt.Sprintf("the guest's haproxy balances %s on %s (%d servers, %d slots)", st.Name, st.Listen, len(st.Servers), st.Slots)})
	return b.apply(ctx)
}

// checkGuestVersion wants HAProxy 2.6 or newer in the guest, as on a host.
func checkGuestVersion(ctx context.Context, g Guest) error {
	out, code, err := g.Run(ctx, "haproxy -v", nil)
	if err != nil {
		return fmt.Errorf("lb: guest: haproxy -v: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("lb: guest: haproxy -v: exit %d: %s (is this an image of kiln's proxy role?)", code, firstLine(out))
	}
	return versionOK("the guest's haproxy", out)
}

// AttachGuest finds the balancer that a previous controller started in
// the guest, from its state in dir. When the guest's HAProxy does not
// answer on kiln's sockets (it was restarted with another config, or the
// guest is new), the error wraps ErrNotRunning and the caller calls Start.
func AttachGuest(ctx context.Context, dir string, g Guest, sink progress.Sink) (*Balancer, error) {
	st, err := readState(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: no %s in %s", ErrNotRunning, stateFile, dir)
		}
		return nil, err
	}
	if st.GuestUser == "" {
		return nil, fmt.Errorf("%w: the balancer in %s runs on this host, not in a guest", ErrNotRunning, dir)
	}
	b := &Balancer{dir: dir, sink: progress.Or(sink), st: st, guest: g}
	if err := b.waitAnswering(ctx, leftoverTimeout); err != nil {
		return nil, fmt.Errorf("%w: the guest's haproxy does not answer on %s: %v", ErrNotRunning, guestAdminSock, err)
	}
	return b, nil
}

// stopGuest stops the guest's HAProxy (systemd's stop: the sessions in
// flight are cut, the guest is usually deleted next). The caller holds
// the lock.
func (b *Balancer) stopGuest(ctx context.Context) error {
	if _, err := b.guestRun(ctx, "stop haproxy", "systemctl stop "+guestUnit, nil); err != nil {
		return err
	}
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	b.sink.Emit(progress.Event{Step: "lb", Kind: progress.Note, Time: time.Now(), Msg: "the guest's haproxy stopped"})
	return nil
}

// InGuest reports whether the balancer's HAProxy runs in a guest.
func (b *Balancer) InGuest() bool { return b.guest != nil }
