// Package controller runs a fleet: `kiln deploy run FILE` keeps each set
// placed, probed, balanced, repaired, upgraded and scaled until it is
// stopped (issue 15). It is the loop around the pure decision packages:
//
//	fleet file ──► tick ──► observe hosts ──► per set:
//	                 health    probe running instances (deploy/health)
//	                 upgrade   start one when the image changed (Automatic,
//	                           Rolling) and take its next step (deploy/upgrade)
//	                 place     create up to capacity (+ surge), start what
//	                           stopped, drain and delete what is beyond it
//	                 repair    replace or restart instances unhealthy past the
//	                           grace period (deploy/repair)
//	                 autoscale sample cpu and user metrics, evaluate, write the
//	                           new capacity into the fleet file (deploy/autoscale)
//	                 balance   HAProxy's membership: healthy instances ready,
//	                           the rest in maintenance (deploy/lb)
//	               ──► state.json, events.jsonl, snapshot.json
//
// The fleet file stays the one desired state: it is read at every tick,
// and what changes the desired state — autoscale, `kiln deploy scale`,
// `kiln deploy upgrade --image` — writes it there. What only the controller
// knows (health, repair history, the upgrade under way, metric series) is
// in its state directory, written atomically after each decision and
// before the decision is acted on. A controller killed at any point (kill
// -9) is started again and converges: placement is idempotent, an upgrade
// resumes from its record (deploy/upgrade never redoes a finished batch),
// a repair already ordered is not ordered twice, and the load balancers,
// which keep running without a controller, are attached to again.
//
// Operators talk to the controller through requests (Submit): a file in
// the state directory the controller takes at its next tick, whether it
// was running already or started by the command that wrote it.
//
// One controller holds a state directory at a time (a lock file).
package controller
