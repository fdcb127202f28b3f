package lb

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kiln-project/kiln/internal/atomicfile"
)

// Files in a balancer's Dir.
const (
	cfgFile    = "haproxy.cfg"
	stateFile  = "state.json"
	adminSock  = "admin.sock"
	masterSock = "master.sock"
	pidFile    = "haproxy.pid"
	logFile    = "haproxy.log"
	lockFile   = "lock"
)

// state is what kiln knows about a balancer and what outlives the
// controller: state.json. haproxy.cfg is made from it at every start and
// reload, so the two never disagree.
type state struct {
	SchemaVersion int      `json:"schemaVersion"`
	Name          string   `json:"name"`
	Listen        string   `json:"listen"` // with the port chosen when Config.Listen had 0
	Balance       Balance  `json:"balance"`
	Slots         int      `json:"slots"`
	HAProxy       string   `json:"haproxy"`
	Servers       []member `json:"servers"` // by slot
	// GuestUser is set when HAProxy runs in a guest (Config.Guest): the
	// account its sockets belong to, which kiln connects as.
	GuestUser string `json:"guestUser,omitempty"`
}

// member is a server in its slot: HAProxy's server "s<Slot>".
type member struct {
	Server
	Slot int `json:"slot"`
}

func slotName(i int) string { return fmt.Sprintf("s%d", i) }

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lb: %s: %v", filepath.Join(dir, stateFile), err)
	}
	if st.SchemaVersion != 1 {
		return nil, fmt.Errorf("lb: %s: schemaVersion %d, this kiln reads 1", filepath.Join(dir, stateFile), st.SchemaVersion)
	}
	return &st, nil
}

func (st *state) write(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}

func (st *state) member(name string) (member, bool) {
	for _, m := range st.Servers {
		if m.Name == name {
			return m, true
		}
	}
	return member{}, false
}

// assign places the wanted servers in slots: a name that is already a
// member keeps its slot; a new one takes the lowest slot that no member
// holds and busy does not report (sessions of a removed server still in
// flight). When the slots run out, it returns a larger count: the config
// must then be rewritten and HAProxy reloaded.
func assign(old []member, want []Server, slots int, busy func(slot int) bool) ([]member, int) {
	was := map[string]int{}
	for _, m := range old {
		was[m.Name] = m.Slot
	}
	taken := map[int]bool{}
	var out []member
	var fresh []Server
	for _, s := range want {
		if slot, ok := was[s.Name]; ok && slot < slots {
			out = append(out, member{s, slot})
			taken[slot] = true
		} else {
			fresh = append(fresh, s)
		}
	}
	next := 0
	for _, s := range fresh {
		for next < slots && (taken[next] || busy(next)) {
			next++
		}
		out = append(out, member{s, next})
		taken[next] = true
		next++
	}
	if next > slots {
		// Room to double before the next reload, and at least every
		// slot the new servers took past the end.
		slots = max(defaultSlots(len(want)), (next+7)/8*8)
	}
	slices.SortFunc(out, func(a, b member) int { return a.Slot - b.Slot })
	return out, slots
}

// config renders haproxy.cfg: every slot declared, members at their
// address, unused slots at a placeholder; whatever is not Ready starts in
// maintenance (`disabled`; a drain is set over the runtime API once the
// process answers, and until then neither takes new requests).
func (st *state) config(dir string) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by kiln (deploy/lb) for balancer %q from state.json at every start and reload.", st.Name)
	w("# Do not edit: membership changes go through the admin socket.")
	w("global")
	admin, owner := filepath.Join(dir, adminSock), ""
	if st.GuestUser != "" {
		// The guest's systemd starts the master as root: the sockets are
		// kiln's account's alone, the workers run as haproxy.
		admin, owner = guestAdminSock, " user "+st.GuestUser
		w("\tuser haproxy")
		w("\tgroup haproxy")
	}
	// expose-fd listeners: a reload hands the listening sockets to the new
	// worker, so no connection is refused (HAProxy 2.6's master also passes
	// them over its socketpair with the old worker: -x sockpair@N).
	w("\tstats socket %s%s mode 600 level admin expose-fd listeners", admin, owner)
	w("\tstats timeout 30s")
	// An old worker still serving a long request after a reload or a soft
	// stop is killed after this long.
	w("\thard-stop-after 10m")
	w("")
	w("defaults")
	w("\tmode http")
	w("\ttimeout connect 2s")
	w("\ttimeout client 60s")
	w("\ttimeout server 60s")
	w("\ttimeout http-request 10s")
	w("\ttimeout http-keep-alive 10s")
	w("\ttimeout queue 30s")
	// A refused connection (an instance that died between two probes) is
	// tried again, on another server each time, before the client sees it.
	w("\tretries 3")
	w("\toption redispatch 1")
	w("")
	w("frontend %s", st.Name)
	w("\tbind %s", st.Listen)
	w("\tdefault_backend %s", st.Name)
	w("")
	w("backend %s", st.Name)
	w("\tbalance %s", st.Balance)
	bySlot := map[int]member{}
	for _, m := range st.Servers {
		bySlot[m.Slot] = m
	}
	for i := range st.Slots {
		m, ok := bySlot[i]
		switch {
		case !ok:
			w("\tserver %s %s disabled", slotName(i), placeholder)
		case m.State == Ready:
			w("\tserver %s %s # %s", slotName(i), m.Addr, m.Name)
		default:
			w("\tserver %s %s disabled # %s (%s)", slotName(i), m.Addr, m.Name, m.State)
		}
	}
	return []byte(b.String())
}
