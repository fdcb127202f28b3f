package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/deploy/view"
)

// upgradeView is the set as deploy/upgrade sees it.
func (c *Controller) upgradeView(st *SetState, insts []deploy.Instance) []upgrade.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []upgrade.Instance
	for _, in := range insts {
		if in.State == deploy.Partial {
			continue
		}
		h, ok := st.Health[in.Name]
		switch {
		case !ok && in.State == deploy.Running:
			// Made since the last probes (a surge or a reimage): starting.
			h = health.Start(c.now())
		case !ok:
			// Not running: it serves nothing.
			h = health.State{Status: health.Unhealthy, Reason: "not running (" + string(in.State) + ")", Since: c.now()}
		}
		out = append(out, upgrade.Instance{Name: in.Name, Digest: in.Meta.Image, UpdateDomain: in.Meta.UpdateDomain,
			FaultDomain: in.Meta.FaultDomain, Health: h, SurgeOf: st.SurgeOf[in.Name], Protected: in.Meta.Protection().ScaleSetActions})
	}
	return out
}

// previousDigest is the digest most of the set runs that is not target:
// what a rollback returns to.
func previousDigest(insts []deploy.Instance, target string) string {
	count := map[string]int{}
	for _, in := range insts {
		if in.Meta.Image != target && in.Meta.Image != "" {
			count[in.Meta.Image]++
		}
	}
	best := ""
	for d, n := range count {
		if n > count[best] || (n == count[best] && d < best) {
			best = d
		}
	}
	return best
}

// upgradeSet starts an upgrade when the fleet file's image changed under an
// Automatic or Rolling policy, and carries the one under way a step
// further: the step is recorded (and the state saved) before it is acted
// on, so a controller killed half-way resumes it.
func (c *Controller) upgradeSet(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, st *SetState, res *deploy.Resolved, insts []deploy.Instance) error {
	now := c.now()
	if st.Upgrade == nil && s.Upgrade.Mode != upgrade.Manual {
		outdated := 0
		for _, in := range insts {
			if in.State != deploy.Partial && in.Meta.Image != res.Digest {
				outdated++
			}
		}
		if outdated > 0 {
			u, err := upgrade.Start(upgrade.Options{Set: s.Name, Target: res.Digest, Previous: previousDigest(insts, res.Digest),
				Policy: s.Upgrade, ByUpdateDomain: s.Kind == deploy.AvailabilitySet, HealthTimeout: c.opts.HealthTimeout},
				c.upgradeView(st, insts), now)
			if err != nil {
				return err
			}
			c.setUpgrade(st, &u)
			c.event(s.Name, "", view.EventUpgradeStarted, fmt.Sprintf("upgrade to %s, %s: %d of %d instances to upgrade", short(res.Digest), s.Upgrade.Mode, outdated, len(insts)))
		}
	}
	u := st.Upgrade
	if u == nil || u.Status == upgrade.Stopped {
		return nil
	}
	if u.Target != res.Digest {
		// The fleet file names another image than the upgrade under way:
		// a new upgrade replaces it (Start counts what it left behind).
		c.event(s.Name, "", view.EventUpgradeStopped, fmt.Sprintf("upgrade to %s superseded: the fleet file now wants %s", short(u.Target), short(res.Digest)))
		c.setUpgrade(st, nil)
		return nil
	}
	for range 8 { // a few steps per tick: those that need no waiting follow at once
		step := upgrade.Next(*u, c.upgradeView(st, insts), s.Capacity, now)
		next := u.Record(step, now)
		c.setUpgrade(st, &next)
		c.mu.Lock()
		err := c.state.save(c.opts.StateDir)
		c.mu.Unlock()
		if err != nil {
			return err
		}
		u = &next
		acted, err := c.act(ctx, hosts, s, st, res, insts, *u, step)
		if err != nil || !acted {
			return err
		}
		if insts, err = c.observe(ctx, hosts, s.Name); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) setUpgrade(st *SetState, u *upgrade.Upgrade) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u == nil && st.Upgrade != nil {
		last := *st.Upgrade
		st.Last = &last
	}
	st.Upgrade = u
}

// act carries out one upgrade step; acted is false when the step is to
// wait (or the upgrade ended), so the tick goes on to other work.
func (c *Controller) act(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, st *SetState, res *deploy.Resolved, insts []deploy.Instance, u upgrade.Upgrade, step upgrade.Step) (bool, error) {
	by := map[string]deploy.Instance{}
	for _, in := range insts {
		by[in.Name] = in
	}
	switch step.Action {
	case upgrade.Wait:
		return false, nil
	case upgrade.Reimage:
		var errs []error
		for _, name := range step.Instances {
			in, ok := by[name]
			if !ok {
				continue
			}
			if err := c.replace(ctx, hosts, s, st, res, in); err != nil {
				errs = append(errs, err)
			}
		}
		return true, errors.Join(errs...)
	case upgrade.CreateSurge:
		var used []int
		for _, in := range insts {
			used = append(used, in.Meta.Ordinal)
		}
		var placements []deploy.Placement
		for _, p := range step.Surge {
			old, ok := by[p.Replaces]
			if !ok {
				continue
			}
			o := s.Spread().SurgeOrdinal(old.Meta.Ordinal, s.Capacity, used)
			used = append(used, o)
			placements = append(placements, s.Spread().Place(o))
		}
		desired, err := res.DesiredAt(placements)
		if err != nil {
			return true, err
		}
		// Marked (and saved) before they exist: a controller killed between
		// the create and its next save must not take a surge instance for
		// one beyond the capacity, and delete it.
		c.mu.Lock()
		for _, d := range desired {
			st.SurgeOf[d.Spec.Name] = u.ID
		}
		err = c.state.save(c.opts.StateDir)
		c.mu.Unlock()
		if err != nil {
			return true, err
		}
		var errs []error
		for _, d := range desired {
			h, ok := hosts[d.Host]
			if !ok {
				errs = append(errs, fmt.Errorf("host %s is not connected", d.Host))
				continue
			}
			if err := h.Create(ctx, d.Spec); err != nil {
				errs = append(errs, fmt.Errorf("create surge instance %s: %w", d.Spec.Name, err))
			}
		}
		return true, errors.Join(errs...)
	case upgrade.Delete:
		var errs []error
		for _, name := range step.Instances {
			in, ok := by[name]
			if !ok {
				continue
			}
			c.drain(ctx, s, name)
			if h, ok := hosts[in.Host]; ok {
				if err := h.Delete(ctx, name); err != nil {
					errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
					continue
				}
			}
			c.mu.Lock()
			delete(st.SurgeOf, name)
			c.mu.Unlock()
		}
		return true, errors.Join(errs...)
	case upgrade.FinishBatch, upgrade.Adopt:
		c.mu.Lock()
		for _, name := range step.Instances {
			delete(st.SurgeOf, name)
		}
		c.mu.Unlock()
		if step.Action == upgrade.FinishBatch {
			c.event(s.Name, "", view.EventUpgradeBatch, step.Reason)
		}
		return true, nil
	case upgrade.Stop:
		c.event(s.Name, "", view.EventUpgradeStopped, step.Reason)
		return false, nil
	case upgrade.Complete:
		kind := view.EventUpgradeDone
		if u.RollbackOf != "" {
			kind = view.EventRolledBack
		}
		c.event(s.Name, "", kind, step.Reason)
		c.setUpgrade(st, nil)
		return false, nil
	}
	return false, fmt.Errorf("upgrade: unknown step %q", step.Action)
}

// short is a digest cut for messages.
func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
