// Package repair decides automatic instance repairs (issue 15, automatic
// repairs and instance protection), with the semantics of Azure scale-set
// automatic instance repairs. It is only the decision: it restarts,
// reimages and replaces nothing, and reads no clock. The controller passes
// the policy, the set as it observes it (each instance's health.State),
// the repair history the last decision returned, and the time; Decide says
// which instances to repair now, which are held and why, and whether
// repairs are suspended.
//
// # Fleet file
//
// A set's automaticRepairs, Azure's automaticRepairsPolicy (durations as
// Go writes them):
//
//	automaticRepairs:
//	  enabled: true            # default false, as in Azure
//	  gracePeriod: 10m         # 1s-90m (Azure: 10m-90m; seconds are for tests)
//	  repairAction: Replace    # Replace (default), Restart or Reimage
//
// Validate names these paths in its FieldErrors; the fleet loader prefixes
// the set's and places them at file:line:col.
//
// # Deciding
//
//	for each instance, in name order:
//	  a repair under way (ordered, outcome unknown)  → held: "replace under way ..."
//	  not unhealthy                                  → nothing
//	  protectFromScaleSetActions or protectFromScaleIn → held (Azure: either protection)
//	  repairs suspended (a storm, below)             → held
//	  unhealthy for less than gracePeriod            → held until Since + gracePeriod
//	  otherwise                                      → a candidate
//	candidates, longest unhealthy first, while fewer than
//	max(1, capacity × 20 / 100) repairs are under way → repaired by the policy's action
//	the rest                                         → held: "waiting for a repair slot"
//
// "Unhealthy" is health.Unhealthy, as the set's probes decide it, and the
// grace period runs from health.State.Since, the moment it became so: an
// instance is repaired once it has been unhealthy for the whole grace
// period (at Since + gracePeriod exactly). Since a state is entered after
// its boot, this also keeps Azure's rule that the grace period follows any
// state change (a boot, a reimage, a repair): a repaired instance starts
// over and is not repaired again before it has been unhealthy for as long.
//
// A repair is under way from its order until its instance has booted
// again (health.State.Booted at or after the order: the controller starts
// the health of a repaired instance over) and been found healthy
// (Recovered) or unhealthy (FailedAgain, with its new failure); one whose
// instance has not booted again, or is not there, a grace period after the
// order is NotBack (the action itself failed). A replaced instance keeps
// its name, as deploy keeps ordinals.
//
// # Storms
//
// Repairing instances that will fail again only churns the set. Two rules
// suspend repairs, and say so in Decision.Reason:
//
//   - Every instance fails the same way: a set of two or more instances,
//     all unhealthy with the same failure. A dependency is down, or every
//     instance has the same fault; new instances would fail alike. It lifts
//     by itself once an instance is healthy again or the failures differ.
//     A set of one is never suspended by this rule (its failure is as
//     likely its own): the second rule bounds its repairs.
//   - Repairs do not help: the last 3 finished repairs ordered since the
//     last `kiln deploy repair SET --resume` all came back failing (or not
//     at all), the same way, and none of their instances is healthy now.
//     The image or recipe is broken. It lifts when the operator resumes
//     (Input.Resumed), or one of those instances is healthy again; if the
//     cause is still there, at most 3 more repairs suspend them again.
//
// Failures are compared normalised: the instance's own name, times,
// addresses, durations and long hex strings stand for what they are
// ("connect 127.0.0.1:40123: connection refused" is the failure of every
// instance whose port is not listening), status codes and paths are kept.
//
// # Limits
//
// At most 20% of the set's capacity is under repair at once, and at least
// one instance, as the issue asks (Azure repairs 5%, one at a time below
// 20 instances). The history keeps every repair under way and the last 32
// finished ones.
//
// The package imports only the standard library and deploy/health
// (depcheck_test.go).
package repair
