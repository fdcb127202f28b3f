package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/deploy/view"
	"github.com/kiln-project/kiln/internal/atomicfile"
)

// RequestKind is what an operator asks of the controller.
type RequestKind string

const (
	// RequestUpgrade upgrades the named instances to the fleet file's
	// image (the Manual policy's way), or, without instances, resumes a
	// stopped upgrade.
	RequestUpgrade RequestKind = "upgrade"
	// RequestRollback returns the set to the image before its last
	// upgrade; the fleet file must already name it (the CLI writes it).
	RequestRollback RequestKind = "rollback"
	// RequestResumeRepairs lifts a repair suspension.
	RequestResumeRepairs RequestKind = "resume-repairs"
)

// Request is one operator request, a file in StateDir/requests: the CLI
// writes it whether a controller runs or not, and the controller that holds
// the state directory (the running one, or the one the CLI starts) takes
// it at its next tick.
type Request struct {
	Kind      RequestKind `json:"kind"`
	Set       string      `json:"set"`
	Instances []string    `json:"instances,omitempty"`
	At        time.Time   `json:"at"`
}

// Submit writes a request into a state directory.
func Submit(stateDir string, r Request) error {
	dir := filepath.Join(stateDir, "requests")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if r.At.IsZero() {
		r.At = time.Now().UTC()
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	name := strconv.FormatInt(r.At.UnixNano(), 10) + "-" + string(r.Kind) + ".json"
	return atomicfile.Write(filepath.Join(dir, name), data, 0o600)
}

// takeRequests carries out the waiting requests, oldest first, and removes
// them; a request that cannot be carried out is an event saying why.
func (c *Controller) takeRequests(ctx context.Context) error {
	dir := filepath.Join(c.opts.StateDir, "requests")
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(names) == 0 {
		return err
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r Request
		if err := json.Unmarshal(data, &r); err != nil {
			errs = append(errs, fmt.Errorf("request %s: %w", filepath.Base(name), err))
		} else if err := c.take(ctx, r); err != nil {
			c.event(r.Set, "", view.EventError, fmt.Sprintf("%s request: %v", r.Kind, err))
		}
		if err := os.Remove(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) take(ctx context.Context, r Request) error {
	s := c.fleet.Set(r.Set)
	if s == nil {
		return fmt.Errorf("the fleet file has no set %q", r.Set)
	}
	c.mu.Lock()
	st := c.state.set(s.Name)
	c.mu.Unlock()
	now := c.now()
	switch r.Kind {
	case RequestResumeRepairs:
		c.mu.Lock()
		st.Resumed, st.Repairing = now, ""
		c.mu.Unlock()
		c.event(s.Name, "", view.EventRepaired, "repairs resumed by hand")
		return nil
	case RequestRollback:
		last := st.Upgrade
		if last == nil {
			last = st.Last
		}
		if last == nil {
			return errors.New("no upgrade to roll back")
		}
		u, err := upgrade.Rollback(*last, now)
		if err != nil {
			return err
		}
		c.setUpgrade(st, &u)
		c.event(s.Name, "", view.EventUpgradeStarted, fmt.Sprintf("rollback to %s: %s", short(u.Target), u.Reason))
		return nil
	case RequestUpgrade:
		if len(r.Instances) == 0 {
			if st.Upgrade == nil || st.Upgrade.Status != upgrade.Stopped {
				return errors.New("no stopped upgrade to resume (name --instances to upgrade under the Manual policy)")
			}
			u, err := upgrade.Resume(*st.Upgrade, now)
			if err != nil {
				return err
			}
			c.setUpgrade(st, &u)
			c.event(s.Name, "", view.EventUpgradeStarted, "upgrade resumed: "+u.Reason)
			return nil
		}
		hosts, err := c.connect(ctx)
		if err != nil {
			return err
		}
		res, err := c.resolve(ctx, s)
		if err != nil {
			return err
		}
		insts, err := c.observe(ctx, hosts, s.Name)
		if err != nil {
			return err
		}
		policy := s.Upgrade
		policy.Mode = upgrade.Manual
		u, err := upgrade.Start(upgrade.Options{Set: s.Name, Target: res.Digest, Previous: previousDigest(insts, res.Digest),
			Policy: policy, Instances: r.Instances, ByUpdateDomain: s.Kind == deploy.AvailabilitySet, HealthTimeout: c.opts.HealthTimeout},
			c.upgradeView(st, insts), now)
		if err != nil {
			return err
		}
		c.setUpgrade(st, &u)
		c.event(s.Name, "", view.EventUpgradeStarted, fmt.Sprintf("upgrade of %v to %s: %s", r.Instances, short(res.Digest), u.Reason))
		return nil
	}
	return fmt.Errorf("unknown request %q", r.Kind)
}
