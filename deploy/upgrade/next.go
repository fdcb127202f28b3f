package upgrade

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln/deploy/health"
)

// Action is what a Step asks of the controller.
type Action string

// The actions.
const (
	// Wait: nothing to do until Step.Until at the latest; call Next again
	// then, or sooner when an instance's health changes.
	Wait Action = "wait"
	// Reimage: drain Step.Instances from the load balancer, then reimage
	// them to the target digest (health starts over).
	Reimage Action = "reimage"
	// CreateSurge: make one instance at the target digest per
	// Step.Surge, marked with the upgrade's ID (Instance.SurgeOf), and
	// add it to the load balancer once healthy.
	CreateSurge Action = "createSurge"
	// Delete: drain Step.Instances from the load balancer, then delete
	// them.
	Delete Action = "delete"
	// FinishBatch: the batch is done; clear the surge mark of
	// Step.Instances (the surge instances it adopts, if any), which are
	// ordinary members of the set from now on.
	FinishBatch Action = "finishBatch"
	// Adopt: clear the surge mark of Step.Instances, surge instances no
	// batch is working on that the set keeps (see strays in doc.go).
	Adopt Action = "adopt"
	// Stop: the policy halts the upgrade; Step.Reason says why and which
	// instances. Nothing more is done until Resume or Rollback.
	Stop Action = "stop"
	// Complete: the upgrade is over; Step.Reason sums it up.
	Complete Action = "complete"
)

// Placement is where a surge instance goes: beside the instance it
// replaces.
type Placement struct {
	Replaces                  string
	UpdateDomain, FaultDomain int
}

// Step is what to do now, and why.
type Step struct {
	Action Action
	// Instances are the instances of a Reimage or a Delete, and the surge
	// instances a FinishBatch adopts.
	Instances []string
	Surge     []Placement // CreateSurge
	Until     time.Time   // Wait
	// Reason is for people: the progress, or the cause of a stop, naming
	// instances and their health.
	Reason string
	// Batch is the batch as it stands after this step (Record keeps it);
	// nil for a step outside any batch.
	Batch    *Batch
	Progress Progress
}

// BatchSize is the most instances a rolling batch takes:
// max(1, capacity × percent / 100), rounded down.
func BatchSize(capacity, percent int) int {
	return max(1, capacity*percent/100)
}

// breaches reports whether n of total is more than percent: the policy's
// "more than percent% unhealthy", in integers.
func breaches(n, total, percent int) bool {
	return n*100 > percent*total
}

// Next says what to do now for upgrade u of a set whose instances are set
// (as observed now) and whose capacity is capacity (the number it should
// have; percentages of the set are of it). It is pure: the same record,
// set and time always give the same Step. The package documentation has
// the rules.
func Next(u Upgrade, set []Instance, capacity int, now time.Time) Step {
	v := newView(u, set, capacity, now)
	var s Step
	switch {
	case u.Status == Stopped:
		s = Step{Action: Stop, Reason: u.Reason}
		if u.Current != nil {
			b := u.Current.clone()
			s.Batch = &b
		}
	case u.Status == Done || u.Status == RolledBack:
		s = Step{Action: Complete, Reason: u.Reason}
	default:
		var ok bool
		if s, ok = v.strays(); !ok {
			if u.Current != nil {
				s = v.batch(u.Current.clone())
			} else {
				s = v.nextBatch()
			}
		}
	}
	s.Progress = v.progress()
	return s
}

// view is one observation of the set, for one upgrade.
type view struct {
	u        Upgrade
	set      []Instance // by name
	by       map[string]Instance
	capacity int
	now      time.Time
	done     map[string]bool // members of finished batches
	adopted  map[string]bool // surge instances finished batches adopted
}

func newView(u Upgrade, set []Instance, capacity int, now time.Time) *view {
	v := &view{u: u, set: slices.Clone(set), by: map[string]Instance{}, capacity: capacity, now: now,
		done: map[string]bool{}, adopted: map[string]bool{}}
	slices.SortFunc(v.set, func(a, b Instance) int { return compareNames(a.Name, b.Name) })
	for _, in := range set {
		v.by[in.Name] = in
	}
	for _, b := range u.Batches {
		for _, n := range b.Instances {
			v.done[n] = true
		}
		for _, n := range b.Surge {
			v.adopted[n] = true
		}
	}
	return v
}

// inScope reports whether the upgrade may touch the instance at all.
func (v *view) inScope(in Instance) bool {
	return len(v.u.Instances) == 0 || slices.Contains(v.u.Instances, in.Name)
}

// surge is the current batch's surge instances: marked by this upgrade
// and not adopted.
func (v *view) surge() []Instance {
	var out []Instance
	for _, in := range v.set {
		if in.SurgeOf == v.u.ID && !v.adopted[in.Name] {
			out = append(out, in)
		}
	}
	return out
}

// strays are surge instances no batch of this upgrade is working on: made
// by another upgrade that never adopted them (superseded mid-batch), or by
// this one outside a surge batch (a creation repeated after a crash), or
// adopted by a finished batch whose mark was not cleared. While the set is
// above its capacity, strays are deleted (unhealthy ones first, then the
// newest); the others are serving capacity, and are adopted.
func (v *view) strays() (Step, bool) {
	var strays []Instance
	inSurge := v.u.Current != nil && v.u.Current.Phase != Reimaging
	for _, in := range v.set {
		if in.SurgeOf != "" && (in.SurgeOf != v.u.ID || v.adopted[in.Name] || !inSurge) {
			strays = append(strays, in)
		}
	}
	if len(strays) == 0 {
		return Step{}, false
	}
	if excess := len(v.set) - v.capacity; excess > 0 {
		var extra []Instance
		for _, in := range strays {
			if !v.adopted[in.Name] {
				extra = append(extra, in)
			}
		}
		if len(extra) > 0 {
			ns := names(worstFirst(extra)[:min(excess, len(extra))])
			return Step{Action: Delete, Instances: ns,
				Reason: fmt.Sprintf("deleting %s: surge %s no batch under way needs, above the set's capacity %d", strings.Join(ns, ", "), plural(len(ns), "instance", "instances"), v.capacity)}, true
		}
	}
	ns := names(strays)
	return Step{Action: Adopt, Instances: ns,
		Reason: fmt.Sprintf("adopting %s: surge %s no batch under way needs, within the set's capacity %d", strings.Join(ns, ", "), plural(len(ns), "instance", "instances"), v.capacity)}, true
}

// worstFirst orders instances for deletion: unhealthy ones first, then
// the newest (highest name).
func worstFirst(ins []Instance) []Instance {
	out := slices.Clone(ins)
	slices.SortStableFunc(out, func(a, b Instance) int {
		ua, ub := a.Health.Status == health.Unhealthy, b.Health.Status == health.Unhealthy
		if ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return -compareNames(a.Name, b.Name)
	})
	return out
}

// candidates are the instances left to upgrade, in the order batches take
// them: for a rollback, those running the digest rolled back first; then,
// with PrioritizeUnhealthyInstances, unhealthy ones; then by update
// domain and name.
func (v *view) candidates() []Instance {
	var out []Instance
	for _, in := range v.set {
		if in.Digest != v.u.Target && !in.Protected && in.SurgeOf == "" && !v.done[in.Name] && v.inScope(in) {
			out = append(out, in)
		}
	}
	rank := func(in Instance) int {
		r := 0
		if v.u.RollbackOf != "" && in.Digest != v.u.Previous {
			r += 2
		}
		if v.u.Policy.PrioritizeUnhealthyInstances && in.Health.Status != health.Unhealthy {
			r++
		}
		return r
	}
	slices.SortStableFunc(out, func(a, b Instance) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		if c := a.UpdateDomain - b.UpdateDomain; c != 0 {
			return c
		}
		return compareNames(a.Name, b.Name)
	})
	return out
}

// unhealthy is the set's instances that are unhealthy now, surge
// instances aside, and for a rollback those running the digest rolled
// back: an upgrade's failures do not stop its undoing.
func (v *view) unhealthy() []Instance {
	var out []Instance
	for _, in := range v.set {
		if v.u.RollbackOf != "" && in.Digest == v.u.Previous {
			continue
		}
		if in.SurgeOf == "" && in.Health.Status == health.Unhealthy {
			out = append(out, in)
		}
	}
	return out
}

// nextBatch starts the next batch, or completes the upgrade.
func (v *view) nextBatch() Step {
	u, pol := v.u, v.u.Policy
	cands := v.candidates()
	if len(cands) == 0 {
		return Step{Action: Complete, Reason: v.summary()}
	}
	number := len(u.Batches) + 1
	if v.now.Before(u.PausedUntil) {
		return Step{Action: Wait, Until: u.PausedUntil,
			Reason: fmt.Sprintf("pausing between batches (pauseTimeBetweenBatches %s): batch %d starts at %s", formatDuration(pol.PauseTimeBetweenBatches), number, stamp(u.PausedUntil))}
	}
	if pol.Mode == Rolling {
		if bad := v.unhealthy(); breaches(len(bad), v.capacity, pol.MaxUnhealthyInstancePercent) {
			return Step{Action: Stop, Reason: fmt.Sprintf("maxUnhealthyInstancePercent %d%% breached before batch %d: %d of %d instances unhealthy (%s)",
				pol.MaxUnhealthyInstancePercent, number, len(bad), v.capacity, describe(bad))}
		}
	}
	members := v.choose(cands)
	b := Batch{Number: number, Phase: Reimaging}
	var uds []int
	for _, in := range members {
		b.Instances = append(b.Instances, in.Name)
		if !slices.Contains(uds, in.UpdateDomain) {
			uds = append(uds, in.UpdateDomain)
		}
	}
	slices.Sort(uds)
	b.UpdateDomains = uds
	where := v.where(b)
	if pol.Mode == Rolling && pol.MaxSurge {
		b.Phase = Surging
		return Step{Action: CreateSurge, Surge: placements(members), Batch: &b,
			Reason: fmt.Sprintf("batch %d%s: creating %d surge %s at %s for %s%s", number, v.of(len(cands), len(members)), len(members), plural(len(members), "instance", "instances"), short(u.Target), strings.Join(b.Instances, ", "), where)}
	}
	return Step{Action: Reimage, Instances: slices.Clone(b.Instances), Batch: &b,
		Reason: fmt.Sprintf("batch %d%s: draining and reimaging %s to %s%s", number, v.of(len(cands), len(members)), strings.Join(b.Instances, ", "), short(u.Target), where)}
}

// of is " of N", the batches an upgrade will take at this batch's size,
// when there is more than one.
func (v *view) of(left, size int) string {
	total := len(v.u.Batches) + (left+size-1)/size
	if total <= 1 {
		return ""
	}
	return fmt.Sprintf(" of about %d", total)
}

func (v *view) where(b Batch) string {
	if len(b.UpdateDomains) == 1 {
		return fmt.Sprintf(" (update domain %d)", b.UpdateDomains[0])
	}
	return ""
}

// choose takes the next batch from the candidates. Rolling: at most
// BatchSize instances; in place, also no more than keeps the unhealthy
// instances and the batch within maxUnhealthyInstancePercent (but at least
// one). Automatic and Manual: all. An availability set: only the first
// candidate's update domain.
func (v *view) choose(cands []Instance) []Instance {
	pol := v.u.Policy
	if v.u.ByUpdateDomain {
		ud := cands[0].UpdateDomain
		cands = slices.DeleteFunc(slices.Clone(cands), func(in Instance) bool { return in.UpdateDomain != ud })
	}
	if pol.Mode != Rolling {
		return cands
	}
	size := BatchSize(v.capacity, pol.MaxBatchInstancePercent)
	if pol.MaxSurge {
		return cands[:min(size, len(cands))]
	}
	allowance := v.capacity * pol.MaxUnhealthyInstancePercent / 100
	down := map[string]bool{}
	for _, in := range v.unhealthy() {
		down[in.Name] = true
	}
	var out []Instance
	for _, in := range cands {
		if len(out) == size {
			break
		}
		if !down[in.Name] && len(down)+1 > allowance && len(out) > 0 {
			break
		}
		down[in.Name] = true
		out = append(out, in)
	}
	return out
}

func placements(members []Instance) []Placement {
	out := make([]Placement, len(members))
	for i, in := range members {
		out[i] = Placement{Replaces: in.Name, UpdateDomain: in.UpdateDomain, FaultDomain: in.FaultDomain}
	}
	return out
}

// batch continues the current batch.
func (v *view) batch(b Batch) Step {
	switch b.Phase {
	case Surging:
		return v.surging(b)
	case Retiring:
		return v.retiring(b)
	case Failing:
		return v.failing(b)
	}
	return v.inPlace(b)
}

// inPlace: reimage what is left of the batch, wait for it, check it.
func (v *view) inPlace(b Batch) Step {
	u := v.u
	var pending, upgraded []string
	for _, n := range b.Instances {
		in, ok := v.by[n]
		switch {
		case !ok: // gone (scaled in): nothing to upgrade
		case in.Digest == u.Target:
			upgraded = append(upgraded, n)
		case !in.Protected: // protected since the batch began: left alone
			pending = append(pending, n)
		}
	}
	if len(pending) > 0 {
		return Step{Action: Reimage, Instances: pending, Batch: &b,
			Reason: fmt.Sprintf("batch %d: draining and reimaging %s to %s", b.Number, strings.Join(pending, ", "), short(u.Target))}
	}
	if u.Policy.Mode != Rolling && !u.ByUpdateDomain {
		return v.finish(b, nil) // Automatic and Manual make no health promise
	}
	if s, waiting := v.waitFor(b, upgraded); waiting {
		return s
	}
	return v.check(b, upgraded, func(reason string) Step {
		b.Unhealthy = v.unhealthyOf(upgraded)
		return Step{Action: Stop, Reason: reason, Batch: &b}
	}, func() Step { return v.finish(b, nil) })
}

// surging: make the surge instances, wait for them, check them; then
// retire the members, or delete the surge instances and stop.
func (v *view) surging(b Batch) Step {
	u := v.u
	surge := v.surge()
	var need []Instance // members that still need a replacement
	for _, n := range b.Instances {
		if in, ok := v.by[n]; ok && in.Digest != u.Target && !in.Protected {
			need = append(need, in)
		}
	}
	if extra := len(surge) - len(need); extra > 0 {
		// More than the batch needs (a member went away, or a creation
		// was repeated): the unhealthy and the newest go.
		names := names(worstFirst(surge)[:extra])
		return Step{Action: Delete, Instances: names, Batch: &b,
			Reason: fmt.Sprintf("batch %d: deleting %s: more surge instances than the batch needs", b.Number, strings.Join(names, ", "))}
	}
	if len(surge) < len(need) {
		// Pair the surge instances made so far with members in their
		// domains; the rest of the members get one.
		unpaired := slices.Clone(need)
		for _, s := range surge {
			i := slices.IndexFunc(unpaired, func(m Instance) bool {
				return m.UpdateDomain == s.UpdateDomain && m.FaultDomain == s.FaultDomain
			})
			if i < 0 {
				i = 0
			}
			unpaired = slices.Delete(unpaired, i, i+1)
		}
		return Step{Action: CreateSurge, Surge: placements(unpaired), Batch: &b,
			Reason: fmt.Sprintf("batch %d: creating %d surge %s at %s for %s", b.Number, len(unpaired), plural(len(unpaired), "instance", "instances"), short(u.Target), strings.Join(names(unpaired), ", "))}
	}
	sn := names(surge)
	if len(sn) == 0 {
		return v.finish(b, nil) // every member went away or was protected
	}
	if s, waiting := v.waitFor(b, sn); waiting {
		return s
	}
	return v.check(b, sn, func(reason string) Step {
		b.Phase, b.Reason = Failing, reason
		b.Unhealthy = v.unhealthyOf(sn)
		return Step{Action: Delete, Instances: sn, Batch: &b,
			Reason: reason + fmt.Sprintf("; deleting the batch's surge %s %s (the members keep serving), then stopping", plural(len(sn), "instance", "instances"), strings.Join(sn, ", "))}
	}, func() Step {
		b.Phase, b.Surge = Retiring, sn
		return v.retiring(b)
	})
}

// retiring: drain and delete the members the surge instances replace,
// then finish the batch, adopting them.
func (v *view) retiring(b Batch) Step {
	var old []string
	for _, n := range b.Instances {
		if in, ok := v.by[n]; ok && in.Digest != v.u.Target && !in.Protected {
			old = append(old, n)
		}
	}
	if len(old) > 0 {
		return Step{Action: Delete, Instances: old, Batch: &b,
			Reason: fmt.Sprintf("batch %d: %s healthy; draining and deleting %s", b.Number, strings.Join(b.Surge, ", "), strings.Join(old, ", "))}
	}
	return v.finish(b, names(v.surge()))
}

// failing: delete the failed batch's surge instances, then stop.
func (v *view) failing(b Batch) Step {
	if sn := names(v.surge()); len(sn) > 0 {
		return Step{Action: Delete, Instances: sn, Batch: &b,
			Reason: fmt.Sprintf("batch %d failed: deleting its surge %s %s", b.Number, plural(len(sn), "instance", "instances"), strings.Join(sn, ", "))}
	}
	return Step{Action: Stop, Reason: b.Reason, Batch: &b}
}

// waitFor waits while any of the batch's new instances (names) is still
// starting, until the batch's health deadline.
func (v *view) waitFor(b Batch, names []string) (Step, bool) {
	deadline := b.ActedAt.Add(v.u.HealthTimeout)
	if !v.now.Before(deadline) {
		return Step{}, false
	}
	var starting []string
	for _, n := range names {
		if in, ok := v.by[n]; ok && in.Health.Status != health.Healthy && in.Health.Status != health.Unhealthy {
			starting = append(starting, n)
		}
	}
	if len(starting) == 0 {
		return Step{}, false
	}
	return Step{Action: Wait, Until: deadline, Batch: &b,
		Reason: fmt.Sprintf("batch %d: waiting for %s to become healthy (at most until %s)", b.Number, strings.Join(starting, ", "), stamp(deadline))}, true
}

// check is the check after a batch (Rolling only): of the instances that
// run the target, no more than maxUnhealthyUpgradedInstancePercent may be
// unhealthy, one of the batch's new instances (fresh) still starting at
// the deadline counting as unhealthy.
//
// Manual and Automatic make no check, except in an availability set, where
// every instance of the update domain must be healthy again before the
// next domain is touched (as deploy.RestartByUpdateDomain).
func (v *view) check(b Batch, fresh []string, stop func(string) Step, pass func() Step) Step {
	pol := v.u.Policy
	inBatch := map[string]bool{}
	for _, n := range fresh {
		inBatch[n] = true
	}
	if pol.Mode != Rolling {
		var bad []Instance
		for _, n := range fresh {
			if in, ok := v.by[n]; ok && v.failed(in, true) {
				bad = append(bad, in)
			}
		}
		if len(bad) > 0 && v.u.ByUpdateDomain {
			return stop(fmt.Sprintf("batch %d: update domain %s not healthy again (%s): the next update domains were not touched",
				b.Number, joinInts(b.UpdateDomains), describeFailed(bad, v)))
		}
		return pass()
	}
	upgraded := v.upgradedAll()
	var bad []Instance
	for _, in := range upgraded {
		if v.failed(in, inBatch[in.Name]) {
			bad = append(bad, in)
		}
	}
	if breaches(len(bad), len(upgraded), pol.MaxUnhealthyUpgradedInstancePercent) {
		return stop(fmt.Sprintf("after batch %d: %d of %d upgraded %s unhealthy (%s): maxUnhealthyUpgradedInstancePercent %d%%",
			b.Number, len(bad), len(upgraded), plural(len(upgraded), "instance", "instances"), describeFailed(bad, v), pol.MaxUnhealthyUpgradedInstancePercent))
	}
	return pass()
}

// failed reports whether an upgraded instance counts as unhealthy: it is,
// or it is one of the batch's and still starting at the deadline.
func (v *view) failed(in Instance, ofBatch bool) bool {
	switch in.Health.Status {
	case health.Unhealthy:
		return true
	case health.Healthy:
		return false
	}
	return ofBatch
}

// upgradedAll is the instances that run the target, surge instances of
// the current batch included.
func (v *view) upgradedAll() []Instance {
	var out []Instance
	for _, in := range v.set {
		if in.Digest == v.u.Target {
			out = append(out, in)
		}
	}
	return out
}

// unhealthyOf lists the batch's new instances (ns) that count as
// unhealthy, "name: reason".
func (v *view) unhealthyOf(ns []string) []string {
	var out []string
	for _, n := range ns {
		if in, ok := v.by[n]; ok && v.failed(in, true) {
			out = append(out, n+": "+reasonOf(in))
		}
	}
	return out
}

// finish ends the batch. In place, its members become those it brought
// to the target; with surge instances, those that are gone (replaced), and
// Surge the instances it adopts.
func (v *view) finish(b Batch, adopt []string) Step {
	fresh := []string{}
	if b.Phase == Reimaging {
		for _, n := range b.Instances {
			if in, ok := v.by[n]; ok && in.Digest == v.u.Target {
				fresh = append(fresh, n)
			}
		}
		b.Instances = fresh
	} else {
		gone := []string{}
		for _, n := range b.Instances {
			if _, ok := v.by[n]; !ok {
				gone = append(gone, n)
			}
		}
		b.Instances, b.Surge, fresh = gone, adopt, adopt
	}
	b.Unhealthy = v.unhealthyOf(fresh)
	what := strings.Join(b.Instances, ", ")
	switch {
	case len(b.Instances) == 0:
		what = "nothing was left to upgrade in it"
	case len(adopt) > 0:
		what += " replaced by " + strings.Join(adopt, ", ")
	default:
		what += " run " + short(v.u.Target)
	}
	reason := fmt.Sprintf("batch %d finished: %s", b.Number, what)
	if len(b.Unhealthy) > 0 {
		reason += "; unhealthy: " + strings.Join(b.Unhealthy, "; ")
	}
	return Step{Action: FinishBatch, Instances: adopt, Batch: &b, Reason: reason}
}

// summary is the Reason of a completed upgrade.
func (v *view) summary() string {
	u := v.u
	n := 0
	for _, b := range u.Batches {
		n += len(b.Instances)
	}
	var s string
	switch {
	case n == 0 && len(u.Instances) > 0:
		s = fmt.Sprintf("nothing to upgrade: %s already run %s", strings.Join(u.Instances, ", "), short(u.Target))
	case n == 0:
		s = fmt.Sprintf("nothing to upgrade: every instance of %s runs %s", u.Set, short(u.Target))
	case u.RollbackOf != "":
		s = fmt.Sprintf("rolled %d %s of %s back to %s in %d %s", n, plural(n, "instance", "instances"), u.Set, short(u.Target), len(u.Batches), plural(len(u.Batches), "batch", "batches"))
	default:
		s = fmt.Sprintf("upgraded %d %s of %s to %s in %d %s", n, plural(n, "instance", "instances"), u.Set, short(u.Target), len(u.Batches), plural(len(u.Batches), "batch", "batches"))
	}
	var kept []string
	for _, in := range v.set {
		if in.Protected && in.Digest != u.Target && v.inScope(in) {
			kept = append(kept, fmt.Sprintf("%s (%s)", in.Name, short(in.Digest)))
		}
	}
	if len(kept) > 0 {
		s += fmt.Sprintf("; protected from scale-set actions, left as they were: %s", strings.Join(kept, ", "))
	}
	var bad []Instance
	for _, in := range v.upgradedAll() {
		if in.Health.Status == health.Unhealthy {
			bad = append(bad, in)
		}
	}
	if len(bad) > 0 {
		s += fmt.Sprintf("; unhealthy now: %s", describe(bad))
	}
	return s
}

func (v *view) progress() Progress {
	var p Progress
	for _, in := range v.set {
		switch {
		case in.SurgeOf != "" || !v.inScope(in):
		case in.Digest == v.u.Target:
			p.Upgraded++
			if in.Health.Status == health.Unhealthy {
				p.Unhealthy++
			}
		case in.Protected:
			p.Protected++
		case !v.done[in.Name]:
			p.Pending++
		}
	}
	return p
}

// describe lists instances with their health's reason, "web-1: ...".
func describe(ins []Instance) string {
	parts := make([]string, len(ins))
	for i, in := range ins {
		parts[i] = in.Name + ": " + reasonOf(in)
	}
	return strings.Join(parts, "; ")
}

// describeFailed is describe, saying of one still starting that it did
// not become healthy in time.
func describeFailed(ins []Instance, v *view) string {
	parts := make([]string, len(ins))
	for i, in := range ins {
		parts[i] = in.Name + ": " + reasonOf(in)
		if in.Health.Status != health.Unhealthy {
			parts[i] = fmt.Sprintf("%s: not healthy within %s (%s)", in.Name, formatDuration(v.u.HealthTimeout), reasonOf(in))
		}
	}
	return strings.Join(parts, "; ")
}

func reasonOf(in Instance) string {
	if in.Health.Reason != "" {
		return in.Health.Reason
	}
	if in.Health.Status == "" {
		return "no health known"
	}
	return string(in.Health.Status)
}

func names(ins []Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.Name
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprint(n)
	}
	return strings.Join(parts, ", ")
}
