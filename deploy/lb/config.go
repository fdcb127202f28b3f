package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/internal/progress"
)

// Balance is how HAProxy picks a server for each request.
type Balance string

const (
	// RoundRobin takes the servers in turn (the default).
	RoundRobin Balance = "roundrobin"
	// LeastConn takes the server with the fewest sessions in flight.
	LeastConn Balance = "leastconn"
)

// State is what the balancer does with a server.
type State string

const (
	// Ready takes new requests.
	Ready State = "ready"
	// Drain takes no new requests; those in flight finish.
	Drain State = "drain"
	// Maint takes no requests at all; those in flight still finish
	// (HAProxy does not cut sessions when a server enters maintenance).
	Maint State = "maint"
)

// Config says how to run one balancer: one HAProxy process, one frontend,
// one backend of server slots.
type Config struct {
	// Name names the frontend and backend in haproxy.cfg and in HAProxy's
	// stats: the scale set's name. Letters, digits, '.', '_' and '-'.
	Name string
	// Listen is the frontend's address, IP:PORT ("127.0.0.1:8000"). Port 0
	// picks a free port once, at Start; it is kept across reloads and
	// restarts (Balancer.Addr tells which).
	Listen string
	// Balance is RoundRobin when empty.
	Balance Balance
	// Slots is how many servers the backend declares, used or not. 0 means
	// max(8, 2×servers) rounded up to a multiple of 8. Set grows it (and
	// reloads HAProxy) when the servers outgrow it.
	Slots int
	// Dir is the balancer's private runtime directory (created 0700):
	// haproxy.cfg, state.json, the admin and master sockets, the pid file
	// and haproxy.log. Unix socket paths are short (108 bytes), so Dir must
	// be at most 83 bytes long.
	Dir string
	// HAProxy is the haproxy binary; empty looks for "haproxy" in PATH,
	// then /usr/sbin (where Debian puts it).
	HAProxy string
	// Progress receives notes about starts, reloads and restarts.
	Progress progress.Sink
	// Guest, when set, runs HAProxy in a guest (a kiln image of the proxy
	// role) instead of on this host: Listen is then the address it binds
	// there, with a port, and HAProxy is the guest's own. Dir still holds
	// state.json on this host.
	Guest Guest
}

const (
	maxSlots    = 1024
	maxDirLen   = 107 - len("/master.sock") - len(".4194304.tmp") // see socketPathsFit
	placeholder = "127.0.0.1:9"                                   // an unused slot's address (discard port)
)

// defaultSlots is max(8, 2×n) rounded up to a multiple of 8: room to
// double before the next reload.
func defaultSlots(n int) int {
	s := max(8, 2*n)
	return (s + 7) / 8 * 8
}

// validate checks and fills a Config for n servers; the returned Config has
// an absolute Dir, a Balance, Slots and the HAProxy binary's path.
func (c Config) validate(n int) (Config, error) {
	var errs []error
	if !validName(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: want 1-64 letters, digits, '.', '_' or '-'", c.Name))
	}
	if _, err := parseListen(c.Listen); err != nil {
		errs = append(errs, err)
	}
	switch c.Balance {
	case "":
		c.Balance = RoundRobin
	case RoundRobin, LeastConn:
	default:
		errs = append(errs, fmt.Errorf("balance %q: want %s or %s", c.Balance, RoundRobin, LeastConn))
	}
	switch {
	case c.Slots == 0:
		c.Slots = defaultSlots(n)
	case c.Slots < n || c.Slots > maxSlots:
		errs = append(errs, fmt.Errorf("slots %d: want %d (the servers given) to %d", c.Slots, n, maxSlots))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: required (the balancer's runtime directory)"))
	} else if abs, err := filepath.Abs(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("dir %q: %v", c.Dir, err))
	} else if c.Dir = abs; len(abs) > maxDirLen {
		errs = append(errs, fmt.Errorf("dir %q: %d bytes long, at most %d (unix socket paths are limited to 108 bytes): choose a shorter directory", abs, len(abs), maxDirLen))
	}
	if c.Guest != nil {
		if !guestUserRE.MatchString(c.Guest.User()) {
			errs = append(errs, fmt.Errorf("guest user %q: want a plain account name", c.Guest.User()))
		}
		if ap, err := parseListen(c.Listen); err == nil && ap.Port() == 0 {
			errs = append(errs, fmt.Errorf("listen %q: a guest balancer needs a port (its forward is fixed)", c.Listen))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("lb: invalid config: %w", errors.Join(errs...))
	}
	if c.Guest != nil {
		return c, nil
	}
	bin, err := findHAProxy(c.HAProxy)
	if err != nil {
		return c, err
	}
	c.HAProxy = bin
	return c, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// parseListen accepts IP:PORT with port 0-65535. A host name is refused:
// the balancer must bind the same address after every restart.
func parseListen(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, fmt.Errorf("listen %q: want IP:PORT, such as 127.0.0.1:8000 (port 0 picks a free one)", s)
	}
	return ap, nil
}

// findHAProxy resolves the binary, with the fix in the error.
func findHAProxy(name string) (string, error) {
	if name == "" {
		name = "haproxy"
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if !strings.Contains(name, "/") {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("lb: %s not found (install the haproxy package: apt-get install haproxy)", name)
}

// Server is one member of the balancer: a scale set's instance.
type Server struct {
	// Name is the instance's name ("web-3"). A name keeps its slot for as
	// long as it is a member.
	Name string `json:"name"`
	// Addr is where the instance answers, IP:PORT ("127.0.0.1:41234").
	Addr string `json:"addr"`
	// State is Ready when empty.
	State State `json:"state"`
}

// normalize checks a membership and fills empty states with Ready.
func normalize(servers []Server) ([]Server, error) {
	out := make([]Server, len(servers))
	byName := map[string]bool{}
	byAddr := map[netip.AddrPort]string{}
	var errs []error
	for i, s := range servers {
		if s.State == "" {
			s.State = Ready
		}
		out[i] = s
		switch {
		case s.Name == "" || len(s.Name) > 128 || strings.ContainsFunc(s.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			errs = append(errs, fmt.Errorf("server %d: name %q: want 1-128 printable characters, no spaces", i, s.Name))
		case byName[s.Name]:
			errs = append(errs, fmt.Errorf("server %q appears twice", s.Name))
		}
		byName[s.Name] = true
		ap, err := netip.ParseAddrPort(s.Addr)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("server %q: addr %q: want IP:PORT, such as 127.0.0.1:41234", s.Name, s.Addr))
		case ap.Port() == 0 || ap.Addr().IsUnspecified():
			errs = append(errs, fmt.Errorf("server %q: addr %q: want a real IP and a port other than 0", s.Name, s.Addr))
		case byAddr[ap] != "":
			errs = append(errs, fmt.Errorf("servers %q and %q have the same addr %s", byAddr[ap], s.Name, s.Addr))
		default:
			byAddr[ap] = s.Name
		}
		if s.State != Ready && s.State != Drain && s.State != Maint {
			errs = append(errs, fmt.Errorf("server %q: state %q: want %s, %s or %s", s.Name, s.State, Ready, Drain, Maint))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("lb: invalid servers: %w", errors.Join(errs...))
	}
	return out, nil
}
