package lb

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// dialer opens a connection to an HAProxy CLI socket.
type dialer func(ctx context.Context) (net.Conn, error)

// unixSocket dials a socket on this host.
func unixSocket(path string) dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
}

// command sends one line to an HAProxy CLI socket (the admin socket, or
// the master socket) and returns the whole answer. The master CLI answers
// only once the client has closed its side, hence CloseWrite.
func command(ctx context.Context, dial dialer, line string) (string, error) {
	out, err := command1(ctx, dial, line)
	// A socket deadline taken from ctx can pass before ctx reports it:
	// say it is ctx's, so callers that poll until ctx ends see it so.
	if dl, ok := ctx.Deadline(); err != nil && ok && !time.Now().Before(dl) {
		return "", fmt.Errorf("%s: %w", line, context.DeadlineExceeded)
	}
	return out, err
}

func command1(ctx context.Context, dial dialer, line string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// Not every connection keeps deadlines (an SSH channel does not):
	// closing it is what ends a read that waits too long.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return "", err
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	out, err := io.ReadAll(conn)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err() // closed by the timer, not by HAProxy
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", line, err)
	}
	return string(out), nil
}

// slotStat is one server slot as one HAProxy worker reports it.
type slotStat struct {
	Slot     int
	Addr     string // IP:PORT
	Status   string // "no check" (up, unchecked), "UP", "DOWN", "DRAIN", "MAINT", ...
	Sessions int    // scur: sessions in flight
	Total    int64  // stot: sessions since this worker started
}

// state reads HAProxy's status as one of ours. With checks off, a server
// taking requests reports "no check" (or "UP"); "DOWN" only comes from a
// check, which kiln does not configure.
func (s slotStat) state() State {
	switch {
	case strings.HasPrefix(s.Status, "MAINT"):
		return Maint
	case strings.Contains(s.Status, "DRAIN"):
		return Drain
	}
	return Ready
}

// showStat parses `show stat` (CSV with a "# " header) into the slots of
// backend, by slot number.
func showStat(out, backend string) (map[int]slotStat, error) {
	if !strings.HasPrefix(out, "# ") {
		return nil, fmt.Errorf("show stat: unexpected answer %q", firstLine(out))
	}
	r := csv.NewReader(strings.NewReader(out[2:]))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"pxname", "svname", "scur", "stot", "status", "addr"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("show stat: no %s column", h)
		}
	}
	get := func(row []string, h string) string {
		if i := col[h]; i < len(row) {
			return row[i]
		}
		return ""
	}
	slots := map[int]slotStat{}
	for _, row := range rows[1:] {
		if get(row, "pxname") != backend {
			continue
		}
		name := get(row, "svname")
		n, err := strconv.Atoi(strings.TrimPrefix(name, "s"))
		if !strings.HasPrefix(name, "s") || err != nil {
			continue // BACKEND, and nothing else in a kiln config
		}
		scur, _ := strconv.Atoi(get(row, "scur"))
		stot, _ := strconv.ParseInt(get(row, "stot"), 10, 64)
		slots[n] = slotStat{Slot: n, Addr: get(row, "addr"), Status: get(row, "status"), Sessions: scur, Total: stot}
	}
	return slots, nil
}

// sameAddr compares a server address as kiln wrote it with one HAProxy
// reports (which may spell an IPv6 address another way).
func sameAddr(want, have string) bool {
	a, err1 := netip.ParseAddrPort(want)
	b, err2 := netip.ParseAddrPort(have)
	if err1 != nil || err2 != nil {
		return want == have
	}
	return a == b
}

// worker is one HAProxy worker process in `show proc` on the master CLI.
type worker struct {
	Pid int
	Old bool // left over from before a reload, finishing its sessions
}

// procs is the master CLI's `show proc`: the workers, and how many
// reloads failed.
type procs struct {
	Workers []worker
	Failed  int
}

func (p procs) current() int {
	for _, w := range p.Workers {
		if !w.Old {
			return w.Pid
		}
	}
	return 0
}

// parseShowProc reads HAProxy 2.6's `show proc`:
//
//	#<PID>          <type>          <reloads>       <uptime>        <version>
//	10745           master          1 [failed: 0]   0d00h10m41s     2.6.12-1+deb12u4
//	# workers
//	15886           worker          0               0d00h00m01s     2.6.12-1+deb12u4
//	# old workers
//	10748           worker          1               0d00h10m40s     2.6.12-1+deb12u4
//	# programs
func parseShowProc(out string) (procs, error) {
	var p procs
	section, master := "", false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(line, "#"):
			section = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		case len(f) >= 2 && f[1] == "master":
			master = true
			if i := strings.Index(line, "[failed: "); i >= 0 {
				fmt.Sscanf(line[i:], "[failed: %d]", &p.Failed)
			}
		case len(f) >= 2 && f[1] == "worker":
			pid, err := strconv.Atoi(f[0])
			if err != nil {
				return p, fmt.Errorf("show proc: bad line %q", line)
			}
			p.Workers = append(p.Workers, worker{Pid: pid, Old: section == "old workers"})
		}
	}
	if !master {
		return p, fmt.Errorf("show proc: unexpected answer %q", firstLine(out))
	}
	return p, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
