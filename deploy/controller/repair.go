package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/repair"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/deploy/view"
)

// repairSet repairs instances unhealthy past the grace period, by the set's
// policy, while no upgrade is under way (an upgrade replaces instances
// itself, and judges their health by its own limits).
func (c *Controller) repairSet(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, st *SetState, res *deploy.Resolved) error {
	if !s.Repairs.Enabled || !s.Health.Enabled() {
		return nil
	}
	if u := st.Upgrade; u != nil && u.Status != upgrade.Stopped {
		return nil
	}
	insts, err := c.observe(ctx, hosts, s.Name)
	if err != nil {
		return err
	}
	by := map[string]deploy.Instance{}
	var seen []repair.Instance
	c.mu.Lock()
	for _, in := range insts {
		h, ok := st.Health[in.Name]
		if !ok {
			continue // not running: placement starts it again
		}
		by[in.Name] = in
		p := in.Meta.Protection()
		seen = append(seen, repair.Instance{Name: in.Name, Health: h, ProtectFromScaleIn: p.ScaleIn, ProtectFromScaleSetActions: p.ScaleSetActions})
	}
	in := repair.Input{Set: s.Name, Now: c.now(), Capacity: s.Capacity, Instances: seen, History: st.Repairs, Resumed: st.Resumed}
	c.mu.Unlock()
	d := repair.Decide(s.Repairs, in)
	c.mu.Lock()
	st.Repairs = d.History
	reported := st.Repairing
	if d.Suspended {
		st.Repairing = d.Reason
	} else {
		st.Repairing = ""
	}
	c.mu.Unlock()
	if d.Suspended && reported != d.Reason {
		c.event(s.Name, "", view.EventRepaired, "repairs suspended: "+d.Reason)
	}
	if len(d.Repair) == 0 {
		return nil
	}
	// The orders are in the history now: saved before acting, so a
	// controller killed half-way does not repair the same instance twice.
	c.mu.Lock()
	err = c.state.save(c.opts.StateDir)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range d.Repair {
		in, ok := by[o.Instance]
		if !ok {
			continue
		}
		c.event(s.Name, o.Instance, view.EventRepaired, fmt.Sprintf("%s %s: %s", o.Action, o.Instance, o.Why))
		switch o.Action {
		case repair.Restart:
			c.drain(ctx, s, o.Instance)
			h, ok := hosts[in.Host]
			if !ok {
				errs = append(errs, fmt.Errorf("%s is on %s, which the fleet file no longer lists", in.Name, in.Host))
				continue
			}
			if err := h.Restart(ctx, o.Instance); err != nil {
				errs = append(errs, fmt.Errorf("restart %s: %w", o.Instance, err))
			}
			c.restartHealth(st, o.Instance)
		default: // Replace and Reimage: a new overlay from the image, same name and place
			if err := c.replace(ctx, hosts, s, st, res, in); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
