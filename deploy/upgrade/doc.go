// Package upgrade plans the upgrade of a set to a new image (issue 15,
// upgrade policy), with the semantics of Azure scale-set upgrade policies.
// It is only the planner: it drains, reimages, creates and deletes
// nothing, and reads no clock. The controller observes the set, asks Next
// what to do, records the Step in the Upgrade (Record), writes the record
// to disk, and does it:
//
//	u, err := upgrade.Start(opts, observe(), now)        // kiln deploy upgrade SET --image REF
//	for {
//		s := upgrade.Next(u, observe(), capacity, now)
//		u = u.Record(s, now)                             // before acting: a crash resumes this step
//		save(u)                                          // atomically
//		act(s)                                           // Wait, Reimage, CreateSurge, Delete, FinishBatch, Adopt
//		if s.Action == upgrade.Stop || s.Action == upgrade.Complete { break }
//	}
//
// Resuming after a crash or kill -9 is the same loop on the saved record:
// an instance already at the target digest counts as upgraded, so a batch
// half done continues with what is left, a finished batch is never
// redone, and the current one is never skipped. After a stop, Resume
// continues (the checks are made again); Rollback starts an upgrade back
// to the previous digest.
//
// # Fleet file
//
// A set's upgradePolicy, as Azure spells it (durations as Go writes them):
//
//	upgradePolicy:
//	  mode: Rolling                          # Manual (default), Automatic or Rolling
//	  rollingUpgradePolicy:
//	    maxBatchInstancePercent: 20          # 5-100, at most maxUnhealthyInstancePercent
//	    maxUnhealthyInstancePercent: 20      # 5-100, checked before each batch
//	    maxUnhealthyUpgradedInstancePercent: 20  # 0-100, checked after each batch
//	    pauseTimeBetweenBatches: 30s         # 0 (default) to 1h
//	    prioritizeUnhealthyInstances: false
//	    maxSurge: false                      # new instances before old ones go
//
// Validate names these paths in its FieldErrors; the fleet loader prefixes
// the set's and places them at file:line:col. The loader lays what the file
// says over Default's values, so a written 0 stays 0.
//
// # Modes
//
//	Manual     only the instances named (`--instances a,b`), all at once, in place
//	Automatic  every instance at once, in place; no health gate
//	Rolling    batches, by the rolling policy below
//
// An availability set (Options.ByUpdateDomain) never has two update
// domains in one batch, whatever the mode: a batch takes the next
// candidate's update domain only, and Manual and Automatic take a whole
// domain per batch and wait for it to be healthy before the next one, so
// at most one update domain is ever down (design.md, section 6): a domain
// not healthy again within the health timeout stops the upgrade, the next
// domains untouched, as deploy.RestartByUpdateDomain does. A domain
// larger than a rolling batch takes several batches, one after the other:
// the batch size is the policy's promise too.
//
// Protected instances (protectFromScaleSetActions) are never touched, and
// the final report names them; the other instances of the set, the
// candidates, are taken in this order: for a rollback, those that run the
// digest rolled back first; with prioritizeUnhealthyInstances, unhealthy
// ones first; then by update domain, then by name (web-2 before web-10).
//
// # A rolling batch
//
//	         ┌───────────── pauseTimeBetweenBatches ◄───────────────┐
//	         ▼                                                       │
//	before:  unhealthy > maxUnhealthyInstancePercent of capacity? ── yes ─► Stop
//	         │ no: choose the batch
//	         ▼
//	in place:  drain, reimage ──► wait for health ──► check ─┬─ pass ─► FinishBatch
//	maxSurge:  create new ones ─► wait for health ──► check ─┤           ▲
//	                                                         │  pass: drain, delete the old ones
//	                                                         └─ fail ─► Stop (surge: delete the new ones first)
//
// Batch size is max(1, capacity × maxBatchInstancePercent / 100), rounded
// down (20% of 4 is 1; 20% of 10 is 2; 20% of 0 is still 1). In place, a
// batch also shrinks, to no fewer than one instance, so that the unhealthy
// instances and the batch together (all are down while it runs) stay
// within maxUnhealthyInstancePercent of capacity: Azure's "unhealthy
// instances can cause the percentage of instances in a batch to decrease".
// With maxSurge nothing goes down before its replacement is healthy, so
// the batch keeps its size.
//
// "Unhealthy" is health.Unhealthy, as the set's health probes decide it
// (deploy/health: a starting instance becomes unhealthy once it fails past
// its grace period). Two checks use it:
//
//   - Before each batch: more than maxUnhealthyInstancePercent of the set's
//     capacity unhealthy (surge instances aside) stops the upgrade
//     ("maxUnhealthyInstancePercent 20% breached before batch 3: 2 of 5
//     instances unhealthy (web-1: ...; web-4: ...)"). Azure: "checked prior
//     to starting any batch"; its example, 10 instances at 20%, stops at
//     more than two.
//   - After each batch: more than maxUnhealthyUpgradedInstancePercent of
//     the instances that run the target (this batch's, earlier ones', a
//     surge batch's new ones) unhealthy stops it ("after batch 1: 1 of 1
//     upgraded instance unhealthy (web-0: ...): maxUnhealthyUpgraded...
//     20%"). Azure's reference says "of upgraded instances"; one of its
//     guides counts them against the whole set instead, which lets a broken
//     image through two batches of 10 at 20%: kiln takes the reference's
//     reading, so the first batch is a canary. Here an instance of the batch
//     that is still starting when the batch's health timeout ends (from its
//     reimage or creation; Options.HealthTimeout, default 30m) counts as
//     unhealthy: the probes did not vouch for it.
//
// A breach is a stop, not an undo: instances already upgraded stay as they
// are and the reason names the unhealthy ones; with maxSurge the failed
// batch's new instances are deleted first, so the set is back to its old
// instances, all serving. Resume checks again (a batch whose instances
// have recovered finishes; one still failing stops again); Rollback
// replaces the upgraded instances with the previous image, by the same
// policy; the instances that run the digest it rolls back do not count
// in its check before a batch (they are what it undoes, and go first).
// Manual and Automatic make no checks but that of an availability set's
// update domain.
//
// # maxSurge
//
// The controller creates the batch's surge instances marked with the
// upgrade's ID (Instance.SurgeOf), in the update and fault domains of the
// instances they replace, and clears the mark when the batch adopts them
// (FinishBatch). A marked instance no batch is working on (its upgrade was
// superseded mid-batch by a rollback or a new upgrade, or a creation was
// repeated after a crash) is deleted while the set is above its capacity,
// unhealthy ones and the newest first, and adopted (Adopt) otherwise: one
// that already replaced a deleted instance is serving capacity. One whose
// batch finished before its mark was cleared is adopted again.
// Placement is by count, not by name: the controller may name surge
// instances as it likes (and rename one to the name it replaces once
// adopted).
//
// # The record
//
// Upgrade is JSON with camelCase keys, string durations and a
// schemaVersion: the target and previous digests, the policy as it was at
// the start (a fleet edit does not change an upgrade under way), the
// finished batches (members, when, which were unhealthy), the current one
// (members, phase), the status (running, paused, stopped with its reason,
// done, rolledBack) and the last counts. Parse reads it back.
//
// The package imports only the standard library and deploy/health
// (depcheck_test.go).
package upgrade
