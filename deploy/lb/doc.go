// Package lb is a scale set's load balancer (issue 15): a host HAProxy
// process that kiln configures, starts, supervises and stops, whose
// membership follows the set through HAProxy's runtime API. The
// controller (kiln deploy run) calls it; it sends no probe of its own.
//
// One balancer is one HAProxy in master-worker mode, with one frontend
// (Config.Listen) and one backend of pre-declared server slots, in a
// private directory (0700, files 0600):
//
//	Dir/
//	  state.json    what kiln knows: config, slots, instance → slot (the truth)
//	  haproxy.cfg   made from state.json at every start and reload
//	  admin.sock    runtime API of the current worker (level admin)
//	  master.sock   master CLI: show proc, and every worker through @!PID
//	  haproxy.pid   the master's pid
//	  haproxy.log   HAProxy's own output: alerts, reloads, state changes (no
//	                request log); moved to haproxy.log.1 past 1 MiB
//	  lock          taken by every change, so two controllers take turns
//
//	frontend NAME (bind Listen) ──► backend NAME, balance roundrobin | leastconn
//	                                  server s0 127.0.0.1:41234           # web-0, ready
//	                                  server s1 127.0.0.1:41240 disabled  # web-1, drain
//	                                  server s2 127.0.0.1:9 disabled      # unused
//	                                  ...                                 # Slots in all
//
// Why the runtime API. A reload starts a new worker and retires the old
// one: cheap, and seamless here, but each one is a process and a parse,
// and old workers linger while their sessions finish. Membership changes
// (an instance added, removed, unhealthy, drained, moved to another
// port) are instead commands on the admin socket — set server B/sN addr
// A port P, set server B/sN state ready|drain|maint — which change one
// server in the running worker at once, without touching a connection.
//
// Slots. The backend declares Slots servers s0..sN-1 (default max(8,
// 2×servers), rounded up to a multiple of 8); unused ones sit in
// maintenance at a placeholder address. An instance takes the lowest free
// slot and keeps it while it is a member; which instance holds which slot
// lives in state.json (a server's name cannot change at runtime). A slot
// whose removed instance still has sessions in flight is not given to
// another until they end. HAProxy 2.6 also has dynamic servers (add/del
// server), but they vanish at the next reload or restart unless written
// into the config too, and one can be deleted only once drained: slots
// keep the config the whole truth and the runtime commands to two.
//
// Reload policy. Only when the members outgrow the slots: the config is
// rewritten with about twice as many slots as members (from state.json, so it holds every member
// in its state) and the master is sent SIGUSR2. The new worker receives
// the listening socket from the old one (expose-fd listeners; HAProxy
// 2.6's master passes it over its socketpair, -x sockpair@N), so no
// connection is refused; the old worker serves what it has accepted and
// leaves. Set returns once the new worker answers with every server right.
//
// Drain. Drain stops new requests to an instance; those in flight finish
// (HAProxy never cuts a session when a server is drained or put in
// maintenance). The frontend is in HTTP mode, so each request is balanced
// on its own, even on a kept-alive client connection: a drain ends with
// the requests in flight, not with the clients' connections. WaitDrained polls the instance's sessions in every worker,
// old ones after a reload included, until there are none. Removing an
// instance with Set drains its slot and puts it in maintenance once its
// sessions are done. The rolling-upgrade order is Drain, WaitDrained,
// stop the instance, Set without it. HAProxy's own health checks are off:
// kiln probes (deploy/health) and sets states; `retries 3` with `option
// redispatch 1` sends a refused connection (an instance that died between
// two probes) to another server before the client sees it.
//
// What survives a controller crash. HAProxy runs in a session of its own
// and outlives kiln. state.json is written before HAProxy is told, so it
// is never behind; Attach reads it and the pid file, checks that the pid
// is alive, not a zombie, and runs this directory's haproxy.cfg (a stale
// pid file, or a pid reused by another program, means ErrNotRunning:
// call Start), and that the admin socket answers. Ensure, on a timer,
// finishes whatever a crash left half done: it restarts a dead HAProxy
// with the same membership and port (waiting out, then killing, workers
// of a killed master that still hold the port), reloads when the slots
// in HAProxy differ from state.json, and puts every server right.
//
// HAProxy 2.6 or newer (Debian 12's). The package imports the standard
// library and kiln's internal helpers only (depcheck_test.go).
package lb
