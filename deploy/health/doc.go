// Package health is the model of instance health probes (issue 15, item 1):
// what a probe asks, how one answer becomes a pass or a failure, and how a
// run of answers moves an instance between states. It sends no request and
// reads no clock: the caller probes, passes the outcome and the time in,
// and keeps the State. That keeps the controller's loop thin and every
// transition testable without a guest.
//
// Three states, changed only by a run of Config.Probes equal answers in a
// row, so one dropped packet neither takes an instance out of the load
// balancer nor puts it back:
//
//	            N passes                    N failures (after the grace period)
//	starting ───────────────► healthy ◄──────────────────────────────┐
//	    │                        │ N failures                          │ N passes
//	    │ N failures after       ▼                                     │
//	    └──── grace ──────────► unhealthy (Reason: the last failure) ──┘
//
// The grace period protects a booting instance only: failures before
// Booted+GracePeriod keep it starting and are not counted, so a slow boot
// is not unhealthy. Once it has been healthy, the grace period no longer
// applies (an instance that fails while serving must leave the load
// balancer at once).
//
// Defaults follow the Azure Application Health extension, with the
// issue's count of probes: Interval 5s, Probes 2, GracePeriod Interval ×
// Probes (at most two hours).
//
// The package imports only the standard library (depcheck_test.go).
package health
