package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/deploy/lb"
	"github.com/kiln-project/kiln/deploy/view"
	"github.com/kiln-project/kiln/internal/flock"
)

// Options configure a Controller.
type Options struct {
	// File is the fleet file; it is read again at every tick, so edits
	// (and kiln deploy scale, upgrade --image) take effect.
	File string
	// StateDir holds state.json, events.jsonl, requests/ and the load
	// balancers' directories. One controller at a time holds it.
	StateDir string
	// Connect opens a host by its libvirt URI.
	Connect func(ctx context.Context, uri string) (deploy.Hypervisor, error)
	// Resolve makes a set's image available and verified (deploy.Resolve
	// with kiln's registry client and cache).
	Resolve func(ctx context.Context, s *deploy.Set) (*deploy.Resolved, error)
	// HAProxy is the haproxy binary; "" finds it.
	HAProxy string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnEvent sees every event as it is logged (the CLI prints them).
	OnEvent func(view.Event)
	// Period is how often Run ticks; default 1s.
	Period time.Duration
	// ProbeTimeout bounds one health probe (and one user metric read);
	// default: the set's probe interval, at most 10s. A small guest under
	// load answers slowly, and a probe is due again only after its
	// interval anyway.
	ProbeTimeout time.Duration
	// DrainTimeout bounds how long an instance leaving the load balancer
	// may finish its connections; default 30s.
	DrainTimeout time.Duration
	// HealthTimeout is how long an upgraded instance may take to become
	// healthy before it counts as unhealthy; default 10m.
	HealthTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Period <= 0 {
		o.Period = time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = 10 * time.Minute
	}
	return o
}

// Controller reconciles a fleet: placement, health, load balancers,
// repairs, upgrades and autoscale (package documentation).
type Controller struct {
	opts   Options
	unlock func()
	events *eventLog

	hosts     map[string]deploy.Hypervisor
	balancers map[string]*lb.Balancer
	lbGuests  map[string]*vmGuest         // by set: the connection to its balancer VM
	lbPlans   map[string]*balancerPlan    // by set, for the fleet file as last read
	resolved  map[string]*deploy.Resolved // by set, for the fleet file as last read
	fleetSum  string
	fleet     *deploy.Fleet
	nextProbe map[string]time.Time // by instance
	draining  map[string]bool      // instances leaving a load balancer

	mu    sync.Mutex // guards state and snap for Snapshot
	state *State
	snap  view.Snapshot
}

// ErrHeld is returned by New when another controller holds the state
// directory.
var ErrHeld = errors.New("another kiln deploy controller holds this fleet's state")

// New takes the state directory (one controller per fleet) and reads the
// state a previous controller left.
func New(opts Options) (*Controller, error) {
	opts = opts.withDefaults()
	if opts.File == "" || opts.StateDir == "" || opts.Connect == nil || opts.Resolve == nil {
		return nil, errors.New("controller: File, StateDir, Connect and Resolve are required")
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := flock.TryLock(filepath.Join(opts.StateDir, "controller.lock"))
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %v", ErrHeld, opts.StateDir, err)
	}
	st, err := loadState(opts.StateDir)
	if err != nil {
		unlock()
		return nil, err
	}
	return &Controller{
		opts: opts, unlock: unlock, state: st,
		events:    &eventLog{path: filepath.Join(opts.StateDir, EventsFile)},
		hosts:     map[string]deploy.Hypervisor{},
		balancers: map[string]*lb.Balancer{},
		lbGuests:  map[string]*vmGuest{},
		lbPlans:   map[string]*balancerPlan{},
		resolved:  map[string]*deploy.Resolved{},
		nextProbe: map[string]time.Time{},
		draining:  map[string]bool{},
	}, nil
}

// Close releases the state directory. Load balancers keep running, with
// their last membership, so traffic still flows while no controller runs;
// the next controller attaches to them. StopBalancers stops them.
func (c *Controller) Close() error {
	for set := range c.lbGuests {
		c.dropGuest(set)
	}
	c.unlock()
	return nil
}

// StopBalancers stops the load balancers of this controller's sets.
func (c *Controller) StopBalancers(ctx context.Context) error {
	var errs []error
	for name, b := range c.balancers {
		if err := b.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("load balancer of %s: %w", name, err))
		}
		delete(c.balancers, name)
	}
	return errors.Join(errs...)
}

// Run ticks until ctx ends or until done (when not nil) says the work is
// done. A failed tick is an event, not the end: the next tick tries again.
func (c *Controller) Run(ctx context.Context, done func(*Controller) bool) error {
	t := time.NewTicker(c.opts.Period)
	defer t.Stop()
	last := "" // the last failure logged: a failure that lasts is one event, not one a second
	for {
		if err := c.Tick(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err.Error() != last {
				c.event("", "", view.EventError, err.Error())
			}
			last = err.Error()
		} else {
			last = ""
		}
		if done != nil && done(c) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Tick reads the fleet file and the hosts once and does what is due.
func (c *Controller) Tick(ctx context.Context) error {
	if err := c.loadFleet(); err != nil {
		return err
	}
	if err := c.takeRequests(ctx); err != nil {
		c.event("", "", view.EventError, err.Error())
	}
	hosts, err := c.connect(ctx)
	if err != nil {
		return err
	}
	actual, err := hosts.Observe(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range c.fleet.Sets {
		if err := c.tickSet(ctx, hosts, s, actual); err != nil {
			errs = append(errs, fmt.Errorf("set %s: %w", s.Name, err))
		}
	}
	c.mu.Lock()
	err = c.state.save(c.opts.StateDir)
	c.mu.Unlock()
	if err != nil {
		errs = append(errs, err)
	}
	if err := c.refreshSnapshot(ctx, hosts); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loadFleet reads the fleet file again when it changed. A file that no
// longer loads is reported and the last good one kept.
func (c *Controller) loadFleet() error {
	data, err := os.ReadFile(c.opts.File)
	if err != nil {
		if c.fleet != nil {
			return fmt.Errorf("fleet file: %w (keeping the last one read)", err)
		}
		return err
	}
	sum := sha256.Sum256(data)
	s := hex.EncodeToString(sum[:])
	if s == c.fleetSum {
		return nil
	}
	f, err := deploy.LoadFleet(c.opts.File)
	if err != nil {
		if c.fleet != nil {
			return fmt.Errorf("%w\n(keeping the fleet file as last read)", err)
		}
		return err
	}
	c.fleet, c.fleetSum = f, s
	c.resolved = map[string]*deploy.Resolved{}
	c.lbPlans = map[string]*balancerPlan{}
	return nil
}

// connect opens the hosts the fleet names, once each, and returns them
// for one tick (tickHost).
func (c *Controller) connect(ctx context.Context) (deploy.Hosts, error) {
	hosts := deploy.Hosts{}
	for _, s := range c.fleet.Sets {
		for _, uri := range s.Hosts {
			h, ok := c.hosts[uri]
			if !ok {
				var err error
				if h, err = c.opts.Connect(ctx, uri); err != nil {
					return nil, err
				}
				c.hosts[uri] = h
			}
			hosts[uri] = &tickHost{Hypervisor: h}
		}
	}
	return hosts, nil
}

// resolve resolves a set's image once per fleet file read.
func (c *Controller) resolve(ctx context.Context, s *deploy.Set) (*deploy.Resolved, error) {
	if r, ok := c.resolved[s.Name]; ok {
		return r, nil
	}
	r, err := c.opts.Resolve(ctx, s)
	if err != nil {
		return nil, err
	}
	c.resolved[s.Name] = r
	src := r.Pinned
	if src == "" {
		src = r.Path
	}
	c.mu.Lock()
	c.state.set(s.Name).Sources[r.Digest] = src
	c.mu.Unlock()
	return r, nil
}

func (c *Controller) now() time.Time { return c.opts.Now() }

// event logs an event and hands it to OnEvent.
func (c *Controller) event(set, instance string, kind view.EventKind, msg string) {
	e := view.Event{At: c.now().UTC(), Set: set, Instance: instance, Kind: kind, Message: msg}
	if err := c.events.append(e); err != nil && c.opts.OnEvent != nil {
		c.opts.OnEvent(view.Event{At: e.At, Kind: view.EventError, Message: "event log: " + err.Error()})
	}
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(e)
	}
}

// instancesOf are set's instances, by ordinal.
func instancesOf(set string, actual []deploy.Instance) []deploy.Instance {
	var out []deploy.Instance
	for _, a := range actual {
		if a.Meta.Set == set {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Meta.Ordinal < out[j].Meta.Ordinal })
	return out
}

// tickSet does what is due for one set, in the order that keeps it
// serving: health first (everything else decides from it), then the
// upgrade under way, placement, repairs, autoscale, and last the load
// balancer's membership.
func (c *Controller) tickSet(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, actual []deploy.Instance) error {
	c.mu.Lock()
	st := c.state.set(s.Name)
	c.mu.Unlock()
	insts := instancesOf(s.Name, actual)
	c.probeSet(ctx, s, st, insts)
	res, err := c.resolve(ctx, s)
	if err != nil {
		return err
	}
	var errs []error
	if err := c.upgradeSet(ctx, hosts, s, st, res, insts); err != nil {
		errs = append(errs, err)
	}
	if err := c.placeSet(ctx, hosts, s, st, res); err != nil {
		errs = append(errs, err)
	}
	if err := c.repairSet(ctx, hosts, s, st, res); err != nil {
		errs = append(errs, err)
	}
	if err := c.autoscaleSet(ctx, hosts, s, st); err != nil {
		errs = append(errs, err)
	}
	if err := c.balanceSet(ctx, hosts, s, st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// observe reads the set's instances again, after actions changed them.
func (c *Controller) observe(ctx context.Context, hosts deploy.Hosts, set string) ([]deploy.Instance, error) {
	actual, err := hosts.Observe(ctx)
	if err != nil {
		return nil, err
	}
	return instancesOf(set, actual), nil
}

// incarnation is what an instance's health belongs to.
func incarnation(in deploy.Instance) string { return in.Meta.Image + "/" + in.Meta.Spec }

// probeSet probes the set's running instances that are due, in parallel,
// and moves their health. An instance that is not running has no health;
// one made again (another image or spec) starts over.
func (c *Controller) probeSet(ctx context.Context, s *deploy.Set, st *SetState, insts []deploy.Instance) {
	now := c.now()
	live := map[string]bool{}
	type job struct {
		in  deploy.Instance
		res health.Result
	}
	var due []*job
	for _, in := range insts {
		switch in.State {
		case deploy.Running:
		case deploy.Paused, deploy.Crashed, deploy.Unknown:
			// It exists and serves nothing, and placement does not start
			// it: unhealthy, so that repairs see it.
			live[in.Name] = true
			c.mu.Lock()
			before := st.Health[in.Name]
			if before.Status != health.Unhealthy {
				st.Health[in.Name] = health.State{Status: health.Unhealthy, Reason: "the domain is " + string(in.State), Since: now, Booted: before.Booted}
			}
			c.mu.Unlock()
			if before.Status != health.Unhealthy {
				c.event(s.Name, in.Name, view.EventHealth, fmt.Sprintf("%s: %s → unhealthy (the domain is %s)", in.Name, orNone(before.Status), in.State))
			}
			continue
		default:
			continue
		}
		live[in.Name] = true
		if st.Incarnation[in.Name] != incarnation(in) {
			c.mu.Lock()
			st.Health[in.Name] = health.Start(now)
			st.Incarnation[in.Name] = incarnation(in)
			c.mu.Unlock()
			delete(c.nextProbe, in.Name)
		}
		if !s.Health.Enabled() || now.Before(c.nextProbe[in.Name]) {
			continue
		}
		due = append(due, &job{in: in})
	}
	var wg sync.WaitGroup
	for _, j := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.res = probe(ctx, s.Health.Probe, j.in, c.probeTimeout(s))
		}()
	}
	wg.Wait()
	for _, j := range due {
		c.nextProbe[j.in.Name] = now.Add(s.Health.Config.Interval)
		c.mu.Lock()
		before := st.Health[j.in.Name]
		after := s.Health.Config.Next(before, j.res, c.now())
		st.Health[j.in.Name] = after
		c.mu.Unlock()
		if after.Status != before.Status {
			c.event(s.Name, j.in.Name, view.EventHealth, fmt.Sprintf("%s: %s → %s (%s)", j.in.Name, before.Status, after.Status, after.Reason))
		}
	}
	c.mu.Lock()
	for name := range st.Health {
		if !live[name] {
			delete(st.Health, name)
			delete(st.Incarnation, name)
		}
	}
	c.mu.Unlock()
}

// restartHealth makes an instance start over after the controller
// replaced or restarted it.
func (c *Controller) restartHealth(st *SetState, name string) {
	c.mu.Lock()
	st.Health[name] = health.Start(c.now())
	delete(st.Incarnation, name)
	c.mu.Unlock()
	delete(c.nextProbe, name)
}

// placeSet brings the set to its capacity (plus its surge instances) and
// starts what stopped, as apply does, draining what it removes. Instances
// on another image are left to the upgrade policy.
func (c *Controller) placeSet(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, st *SetState, res *deploy.Resolved) error {
	all, err := hosts.Observe(ctx)
	if err != nil {
		return err
	}
	insts := instancesOf(s.Name, all)
	var existing, protected []int
	surge := 0
	for _, in := range insts {
		if in.State != deploy.Partial {
			existing = append(existing, in.Meta.Ordinal)
			if in.Meta.Protection().ScaleIn {
				protected = append(protected, in.Meta.Ordinal)
			}
		}
		if st.SurgeOf[in.Name] != "" {
			surge++
		}
	}
	desired, err := res.DesiredAt(s.Spread().PlaceKeeping(s.Capacity+surge, existing, protected))
	if err != nil {
		return err
	}
	plan := deploy.Diff([]string{s.Name}, desired, all, false)
	specs := map[string]deploy.InstanceSpec{}
	for _, d := range desired {
		specs[d.Spec.Name] = d.Spec
	}
	var errs []error
	for _, ch := range plan.Changes {
		if !ch.Act || ch.Set != s.Name {
			continue
		}
		h, ok := hosts[ch.Host]
		if !ok {
			errs = append(errs, fmt.Errorf("%s is on %s, which the fleet file no longer lists", ch.Instance, ch.Host))
			continue
		}
		var err error
		switch ch.Op {
		case deploy.OpCreate:
			err = h.Create(ctx, specs[ch.Instance])
		case deploy.OpStart:
			err = h.Start(ctx, ch.Instance)
		case deploy.OpDelete:
			c.drain(ctx, s, ch.Instance)
			err = h.Delete(ctx, ch.Instance)
			c.mu.Lock()
			delete(st.SurgeOf, ch.Instance)
			c.mu.Unlock()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", ch.Op, ch.Instance, err))
			continue
		}
		c.event(s.Name, ch.Instance, view.EventScaled, fmt.Sprintf("%s %s: %s", ch.Op, ch.Instance, ch.Reason))
	}
	return errors.Join(errs...)
}

// replace deletes an instance and makes it again from placement p (its
// own, or a surge placement), draining it first.
func (c *Controller) replace(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, st *SetState, res *deploy.Resolved, in deploy.Instance) error {
	h, ok := hosts[in.Host]
	if !ok {
		return fmt.Errorf("%s is on %s, which the fleet file no longer lists", in.Name, in.Host)
	}
	d, err := res.DesiredAt([]deploy.Placement{s.Spread().Place(in.Meta.Ordinal)})
	if err != nil {
		return err
	}
	c.drain(ctx, s, in.Name)
	if err := h.Delete(ctx, in.Name); err != nil {
		return fmt.Errorf("delete %s: %w", in.Name, err)
	}
	c.restartHealth(st, in.Name)
	dh, ok := hosts[d[0].Host]
	if !ok {
		return fmt.Errorf("%s's host %s is not connected", in.Name, d[0].Host)
	}
	if err := dh.Create(ctx, d[0].Spec); err != nil {
		return fmt.Errorf("create %s: %w", in.Name, err)
	}
	return nil
}

func orNone(s health.Status) health.Status {
	if s == "" {
		return "none"
	}
	return s
}

// probeTimeout bounds one probe of the set's instances.
func (c *Controller) probeTimeout(s *deploy.Set) time.Duration {
	if c.opts.ProbeTimeout > 0 {
		return c.opts.ProbeTimeout
	}
	return min(max(s.Health.Config.Interval, time.Second), 10*time.Second)
}
