package deploy

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/progress"
)

// Hosts are the hypervisors a fleet uses, by URI.
type Hosts map[string]Hypervisor

// Observe lists the kiln-owned instances of every host.
func (hs Hosts) Observe(ctx context.Context) ([]Instance, error) {
	var all []Instance
	uris := make([]string, 0, len(hs))
	for u := range hs {
		uris = append(uris, u)
	}
	sort.Strings(uris)
	for _, u := range uris {
		owned, _, err := hs[u].Instances(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		for i := range owned {
			owned[i].Host = u
		}
		all = append(all, owned...)
	}
	return all, nil
}

// ApplyOptions configure Apply.
type ApplyOptions struct {
	// LockDir holds one lock file per set: two applies of the same set
	// never run at once on this machine.
	LockDir string
	Prune   bool
	// Progress receives one event per change.
	Progress progress.Sink
	// Parallel is how many instances are created at once; default 4.
	Parallel int
}

// Apply makes the hosts hold what desired says for sets: it observes,
// diffs and carries out the plan. Every step is idempotent, so an apply
// killed half-way is finished by the next one.
func Apply(ctx context.Context, hosts Hosts, sets []string, desired []Desired, opts ApplyOptions) (Plan, error) {
	if opts.LockDir != "" {
		// A balancer VM's set ("web/lb") is under its owner's lock.
		var sorted []string
		for _, s := range sets {
			if owner, ok := OwnerOfBalancerVM(s); ok {
				s = owner
			}
			if !slices.Contains(sorted, s) {
				sorted = append(sorted, s)
			}
		}
		sort.Strings(sorted) // one order, so two applies cannot deadlock
		for _, s := range sorted {
			unlock, err := flock.Lock(ctx, filepath.Join(opts.LockDir, s+".lock"))
			if err != nil {
				return Plan{}, fmt.Errorf("set %s: lock: %w", s, err)
			}
			defer unlock()
		}
	}
	actual, err := hosts.Observe(ctx)
	if err != nil {
		return Plan{}, err
	}
	plan := Diff(sets, desired, actual, opts.Prune)
	specs := map[string]InstanceSpec{}
	for _, d := range desired {
		specs[d.Spec.Name] = d.Spec
	}
	st := progress.Begin(opts.Progress, "apply", int64(len(plan.Changes)), "")
	// Deletions first, one by one; then creations, several at a time (each
	// is mostly QEMU starting); then starts.
	var done atomic.Int64
	run := func(c Change) error {
		h, ok := hosts[c.Host]
		if !ok {
			return fmt.Errorf("%s: instance %s is on host %s, which the fleet file no longer lists; add it back to remove the instance", c.Set, c.Instance, c.Host)
		}
		st.Note(fmt.Sprintf("%s %s on %s (%s)", c.Op, c.Instance, c.Host, c.Reason))
		var err error
		switch c.Op {
		case OpCreate:
			err = h.Create(ctx, specs[c.Instance])
		case OpStart:
			err = h.Start(ctx, c.Instance)
		case OpDelete, OpForeign:
			err = h.Delete(ctx, c.Instance)
		case OpReplace:
			if err = h.Delete(ctx, c.Instance); err == nil {
				err = h.Create(ctx, specs[c.Instance])
			}
		}
		if err != nil {
			if strings.Contains(err.Error(), c.Host) { // the backend named it already
				return fmt.Errorf("%s %s: %w", c.Op, c.Instance, err)
			}
			return fmt.Errorf("%s %s on %s: %w", c.Op, c.Instance, c.Host, err)
		}
		st.Advance(done.Add(1), int64(len(plan.Changes)))
		return nil
	}
	var creates []Change
	for _, c := range plan.Changes {
		if !c.Act {
			continue
		}
		if c.Op == OpCreate || c.Op == OpReplace {
			creates = append(creates, c)
			continue
		}
		if len(creates) > 0 {
			if err := runParallel(creates, opts.Parallel, run); err != nil {
				return plan, err
			}
			creates = nil
		}
		if err := run(c); err != nil {
			return plan, err
		}
	}
	if err := runParallel(creates, opts.Parallel, run); err != nil {
		return plan, err
	}
	st.End(fmt.Sprintf("%d changes, %d unchanged", len(plan.Changes), plan.Unchanged))
	return plan, nil
}

// runParallel runs f on the changes, at most n at a time (default 4); after
// a failure it starts no more, and returns the first error once the
// running ones have finished (the next apply does what was left).
func runParallel(cs []Change, n int, f func(Change) error) error {
	if n <= 0 {
		n = 4
	}
	sem := make(chan struct{}, n)
	errs := make(chan error, len(cs))
	var failed atomic.Bool
	var wg sync.WaitGroup
	for _, c := range cs {
		sem <- struct{}{}
		if failed.Load() {
			<-sem
			break
		}
		wg.Add(1)
		go func(c Change) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(c); err != nil {
				failed.Store(true)
				errs <- err
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
