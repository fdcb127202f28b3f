package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/deploy/view"
	"github.com/kiln-project/kiln/internal/atomicfile"
)

// SnapshotFile is the controller's last view of the fleet in its state
// directory: what `kiln deploy status` and `kiln deploy serve` show when
// they run beside a controller.
const SnapshotFile = "snapshot.json"

// maxSnapshotEvents is how many of the newest events a snapshot carries.
const maxSnapshotEvents = 200

// Snapshot is the fleet as of the last tick (view.Source).
func (c *Controller) Snapshot(ctx context.Context) (view.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap, nil
}

// ReadSnapshot reads the snapshot a controller left in a state directory.
func ReadSnapshot(stateDir string) (view.Snapshot, error) {
	var s view.Snapshot
	data, err := os.ReadFile(filepath.Join(stateDir, SnapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("no controller has run for this fleet yet (no %s in %s): start kiln deploy run", SnapshotFile, stateDir)
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s: %w", filepath.Join(stateDir, SnapshotFile), err)
	}
	return s, nil
}

func (c *Controller) refreshSnapshot(ctx context.Context, hosts deploy.Hosts) error {
	actual, err := hosts.Observe(ctx)
	if err != nil {
		return err
	}
	events, err := ReadEvents(c.opts.StateDir, "", maxSnapshotEvents)
	if err != nil {
		return err
	}
	snap := view.Snapshot{SchemaVersion: view.SchemaVersion, Fleet: c.opts.File, At: c.now().UTC(), Events: events}
	c.mu.Lock()
	for _, s := range c.fleet.Sets {
		snap.Sets = append(snap.Sets, c.setView(s, c.state.set(s.Name), instancesOf(s.Name, actual)))
	}
	c.snap = snap
	c.mu.Unlock()
	data, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(c.opts.StateDir, SnapshotFile), append(data, '\n'), 0o600)
}

// setView is one set as the view shows it; c.mu is held.
func (c *Controller) setView(s *deploy.Set, st *SetState, insts []deploy.Instance) view.SetView {
	sv := view.SetView{Name: s.Name, Kind: s.Kind, Capacity: s.Capacity, FaultDomains: s.FaultDomains, UpdateDomains: s.UpdateDomains,
		Image: view.ImageView{Ref: s.Image.Ref}, Autoscale: st.Decision}
	if r := c.resolved[s.Name]; r != nil {
		sv.Image.Digest = r.Digest
	}
	if s.LoadBalancer.Enabled() {
		sv.LoadBalancer = &view.LoadBalancerView{Listen: s.LoadBalancer.Listen, Placement: string(s.LoadBalancer.Placement)}
		if s.LoadBalancer.Placement == deploy.PlaceVM {
			sv.LoadBalancer.Instance = deploy.BalancerVMName(s.Name)
		}
	}
	if u := st.Upgrade; u != nil {
		sv.Upgrade = upgradeView(*u)
	}
	members := map[string]string{}
	if b := c.balancers[s.Name]; b != nil {
		for _, m := range b.Servers() {
			members[m.Name] = string(m.State)
		}
	}
	for _, in := range insts {
		p := in.Meta.Protection()
		iv := view.InstanceView{Name: in.Name, Host: in.Host, State: in.State, FaultDomain: in.Meta.FaultDomain,
			UpdateDomain: in.Meta.UpdateDomain, Digest: in.Meta.Image, Address: in.Address,
			ProtectFromScaleIn: p.ScaleIn, ProtectFromScaleSetActions: p.ScaleSetActions}
		if h, ok := st.Health[in.Name]; ok {
			iv.Health, iv.HealthReason = h.Status, h.Reason
		}
		ports := make([]int, 0, len(in.Ports))
		for gp := range in.Ports {
			ports = append(ports, gp)
		}
		sort.Ints(ports)
		for _, gp := range ports {
			iv.Forwards = append(iv.Forwards, view.Forward{GuestPort: gp, HostPort: in.Ports[gp]})
		}
		if s.LoadBalancer.Enabled() {
			switch members[in.Name] {
			case "ready":
				iv.LoadBalancer = view.InLoadBalancer
			case "drain":
				iv.LoadBalancer = view.Draining
			default:
				iv.LoadBalancer = view.OutLoadBalancer
			}
		}
		sv.Instances = append(sv.Instances, iv)
	}
	return sv
}

func upgradeView(u upgrade.Upgrade) *view.UpgradeView {
	v := &view.UpgradeView{To: u.Target, Reason: u.Reason, Batch: len(u.Batches)}
	if len(u.From) > 0 {
		v.From = u.From[0]
	} else {
		v.From = u.Previous
	}
	if u.Current != nil {
		v.Batch = u.Current.Number
	}
	v.Batches = v.Batch + max(u.Progress.Pending-len(currentInstances(u)), 0)
	switch {
	case u.Status == upgrade.Stopped:
		v.Status = view.UpgradeStopped
	case u.Status == upgrade.Done:
		v.Status = view.UpgradeDone
	case u.Status == upgrade.RolledBack:
		v.Status = view.UpgradeRolledBack
	case u.RollbackOf != "":
		v.Status = view.UpgradeRollingBack
	case u.Current == nil || u.Status == upgrade.Paused:
		v.Status = view.UpgradeWaiting
	default:
		v.Status = view.UpgradeRolling
	}
	return v
}

func currentInstances(u upgrade.Upgrade) []string {
	if u.Current == nil {
		return nil
	}
	return u.Current.Instances
}
