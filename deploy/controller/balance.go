package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/lb"
)

// balancerDir is where a set's HAProxy keeps its files. Unix socket paths
// are short, so a state directory deep in the tree is refused by lb.Start
// with a message that says so.
func (c *Controller) balancerDir(set string) string {
	return filepath.Join(c.opts.StateDir, "lb", set)
}

// balancer returns the set's running load balancer: this controller's, one
// a previous controller left running (attached), or a new one.
func (c *Controller) balancer(ctx context.Context, s *deploy.Set, servers []lb.Server) (*lb.Balancer, error) {
	if b := c.balancers[s.Name]; b != nil {
		if !b.InGuest() && b.Addr() == s.LoadBalancer.Listen {
			return b, nil
		}
		// The fleet file moved it: a new one where it says.
		if err := b.Stop(ctx); err != nil {
			return nil, err
		}
		delete(c.balancers, s.Name)
	}
	dir := c.balancerDir(s.Name)
	b, err := lb.Attach(ctx, dir, nil)
	switch {
	case err == nil && b.Addr() == s.LoadBalancer.Listen:
		c.balancers[s.Name] = b
		return b, nil
	case err == nil:
		if err := b.Stop(ctx); err != nil {
			return nil, err
		}
	case !errors.Is(err, lb.ErrNotRunning):
		return nil, err
	}
	b, err = lb.Start(ctx, lb.Config{Name: s.Name, Listen: s.LoadBalancer.Listen, Balance: lb.Balance(s.LoadBalancer.Balance), Dir: dir, HAProxy: c.opts.HAProxy}, servers)
	if err != nil {
		return nil, err
	}
	c.balancers[s.Name] = b
	return b, nil
}

// members is the set's load-balancer membership: every running instance
// reachable on the balanced port, ready when healthy, drained while
// leaving, in maintenance otherwise (starting, unhealthy).
func (c *Controller) members(s *deploy.Set, st *SetState, insts []deploy.Instance) []lb.Server {
	var out []lb.Server
	for _, in := range insts {
		addr := reach(in, s.LoadBalancer.Port)
		if in.State != deploy.Running || addr == "" {
			continue
		}
		state := lb.Maint
		c.mu.Lock()
		h := st.Health[in.Name]
		c.mu.Unlock()
		switch {
		case c.draining[in.Name]:
			state = lb.Drain
		case h.Status == health.Healthy:
			state = lb.Ready
		}
		out = append(out, lb.Server{Name: in.Name, Addr: addr, State: state})
	}
	return out
}

// balanceSet keeps the set's load balancer in step with its instances.
func (c *Controller) balanceSet(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, st *SetState) error {
	if !s.LoadBalancer.Enabled() {
		var err error
		if b := c.balancers[s.Name]; b != nil && !b.InGuest() {
			delete(c.balancers, s.Name)
			err = b.Stop(ctx)
		}
		return errors.Join(err, c.removeBalancerVM(ctx, hosts, s))
	}
	insts, err := c.observe(ctx, hosts, s.Name)
	if err != nil {
		return err
	}
	servers := c.members(s, st, insts)
	if s.LoadBalancer.Placement == deploy.PlaceVM {
		if err := c.balanceVM(ctx, hosts, s, servers); err != nil {
			return fmt.Errorf("load balancer: %w", err)
		}
		return nil
	}
	if err := c.removeBalancerVM(ctx, hosts, s); err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	b, err := c.balancer(ctx, s, servers)
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	if err := b.Set(ctx, servers); err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	return nil
}

// drain takes an instance out of the set's load balancer and waits (at most
// DrainTimeout) for its connections to finish, before it is stopped,
// replaced or deleted. Without a load balancer there is nothing to wait
// for.
func (c *Controller) drain(ctx context.Context, s *deploy.Set, name string) {
	b := c.balancers[s.Name]
	if b == nil || !s.LoadBalancer.Enabled() {
		return
	}
	c.draining[name] = true
	defer delete(c.draining, name)
	if err := b.Drain(ctx, name); err != nil {
		return // not a member (never healthy, or not reachable): nothing in flight
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.DrainTimeout)
	defer cancel()
	if err := b.WaitDrained(dctx, name); err != nil && ctx.Err() == nil {
		c.event(s.Name, name, "error", fmt.Sprintf("%s still had connections after %s of draining; stopping it anyway", name, c.opts.DrainTimeout))
	}
}
