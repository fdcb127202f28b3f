package deploy

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/kiln-project/kiln/internal/progress"
)

// RestartByUpdateDomain restarts a set's instances one update domain at a
// time: every instance of the domain restarts, and all of them run again,
// before the next domain starts — so at most one domain is ever down.
// wait bounds how long a domain may take to come back.
func RestartByUpdateDomain(ctx context.Context, hosts Hosts, set string, wait time.Duration, sink progress.Sink) error {
	actual, err := hosts.Observe(ctx)
	if err != nil {
		return err
	}
	byUD := map[int][]Instance{}
	for _, a := range actual {
		if a.Meta.Set == set && a.State != Partial {
			byUD[a.Meta.UpdateDomain] = append(byUD[a.Meta.UpdateDomain], a)
		}
	}
	if len(byUD) == 0 {
		return fmt.Errorf("set %s has no instances on its hosts", set)
	}
	uds := make([]int, 0, len(byUD))
	for ud := range byUD {
		uds = append(uds, ud)
	}
	sort.Ints(uds)
	st := progress.Begin(sink, "restart", int64(len(uds)), fmt.Sprintf("restarting %s by update domain (%d domains)", set, len(uds)))
	for i, ud := range uds {
		for _, in := range byUD[ud] {
			st.Note(fmt.Sprintf("update domain %d: restarting %s on %s", ud, in.Name, in.Host))
			if err := hosts[in.Host].Restart(ctx, in.Name); err != nil {
				return fmt.Errorf("update domain %d: restart %s: %w", ud, in.Name, err)
			}
		}
		if err := waitRunning(ctx, hosts, byUD[ud], wait); err != nil {
			return fmt.Errorf("update domain %d: %w; the next domains were not touched", ud, err)
		}
		st.Advance(int64(i+1), int64(len(uds)))
	}
	st.End(fmt.Sprintf("restarted %s, one update domain at a time", set))
	return nil
}

// waitRunning polls until every instance runs, or wait passes.
func waitRunning(ctx context.Context, hosts Hosts, insts []Instance, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		actual, err := hosts.Observe(ctx)
		if err != nil {
			return err
		}
		state := map[string]State{}
		for _, a := range actual {
			state[a.Name] = a.State
		}
		var down []string
		for _, in := range insts {
			if state[in.Name] != Running {
				down = append(down, fmt.Sprintf("%s (%s)", in.Name, state[in.Name]))
			}
		}
		if len(down) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not running again after %s: %v", wait, down)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond): // polling libvirt's domain state
		}
	}
}
