package view

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
)

// SchemaVersion is the version of the JSON the view serves
// (/api/snapshot and /api/events). Adding a field keeps it; renaming or
// removing one, or changing a field's meaning, bumps it.
const SchemaVersion = 1

// Source is what the view shows: the controller's picture of the fleet at
// the moment of the call. Snapshot is called for every page load, every
// drawing, and about once a second for each live page; it should return
// what the controller already holds, without asking the hosts, and must be
// safe for concurrent use. A Snapshot the view is given is never modified.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (Snapshot, error)

// Snapshot calls f.
func (f SourceFunc) Snapshot(ctx context.Context) (Snapshot, error) { return f(ctx) }

// Snapshot is the fleet as the controller sees it at one moment: its sets
// with their instances, and what happened lately.
type Snapshot struct {
	// SchemaVersion is set by the view when it serves a snapshot; a Source
	// leaves it zero.
	SchemaVersion int `json:"schemaVersion"`
	// Fleet names the fleet, usually its file.
	Fleet string `json:"fleet"`
	// At is when the controller last looked. A snapshot that differs from
	// the previous one only in At is no change: live pages are not sent it.
	At   time.Time `json:"at"`
	Sets []SetView `json:"sets"`
	// Events is what happened, oldest first (the view sorts them by At and
	// keeps the newest Options.MaxEvents); the page shows the newest first.
	Events []Event `json:"events"`
}

// SetView is one scale set or availability set.
type SetView struct {
	Name          string      `json:"name"`
	Kind          deploy.Kind `json:"kind"` // ScaleSet or AvailabilitySet
	Capacity      int         `json:"capacity"`
	FaultDomains  int         `json:"faultDomains"`
	UpdateDomains int         `json:"updateDomains"`
	// Image is what the set's instances should run; an instance whose
	// Digest differs is outdated.
	Image ImageView `json:"image"`
	// LoadBalancer is nil for a set without one.
	LoadBalancer *LoadBalancerView `json:"loadBalancer,omitempty"`
	// Upgrade is the rolling upgrade under way or last finished; nil when
	// there is none to tell of.
	Upgrade *UpgradeView `json:"upgrade,omitempty"`
	// Autoscale sums the set's autoscale profile and its last decision up
	// in a line ("2-6 instances, cpu average > 70% over 5m: 3 → 4");
	// empty when the set scales by hand.
	Autoscale string         `json:"autoscale,omitempty"`
	Instances []InstanceView `json:"instances"`
}

// ImageView is an image by reference and digest.
type ImageView struct {
	Ref    string `json:"ref"`              // as the fleet file writes it
	Digest string `json:"digest,omitempty"` // sha256:..., once known
}

// LoadBalancerView is the load balancer in front of a set.
type LoadBalancerView struct {
	Listen string `json:"listen"` // host:port clients connect to
	// Placement is host (an HAProxy on the controller's host) or vm;
	// Instance names the VM then (NAME-lb).
	Placement string `json:"placement,omitempty"`
	Instance  string `json:"instance,omitempty"`
}

// UpgradeStatus is where a rolling upgrade stands.
type UpgradeStatus string

// The states of a rolling upgrade.
const (
	UpgradeRolling     UpgradeStatus = "rolling"      // a batch is being replaced
	UpgradeWaiting     UpgradeStatus = "waiting"      // between batches: the pause, or the health of the last batch
	UpgradeStopped     UpgradeStatus = "stopped"      // stopped by a health limit or by hand; Reason says which
	UpgradeRollingBack UpgradeStatus = "rolling-back" // putting the old image back
	UpgradeRolledBack  UpgradeStatus = "rolled-back"
	UpgradeDone        UpgradeStatus = "done"
)

// UpgradeView is a rolling upgrade of a set from one image digest to
// another, batch by batch.
type UpgradeView struct {
	From   string        `json:"from"` // image digest
	To     string        `json:"to"`
	Status UpgradeStatus `json:"status"`
	// Batch is the batch under way, or the last one done, counted from 1
	// (0 before the first); Batches is how many there are.
	Batch   int `json:"batch"`
	Batches int `json:"batches"`
	// Reason says why the upgrade stopped or rolled back.
	Reason string `json:"reason,omitempty"`
}

// States of an instance beyond a hypervisor's (deploy.State): what the
// controller is doing to it, or knows of it.
const (
	Creating deploy.State = "creating"
	Deleting deploy.State = "deleting"
	// Missing is an instance that was made and that its host no longer
	// has (deleted by hand): the controller makes it again.
	Missing deploy.State = "missing"
)

// Membership is an instance's place in its set's load balancer.
type Membership string

// The places in a load balancer; "" for a set without one.
const (
	InLoadBalancer  Membership = "in"       // gets traffic
	Draining        Membership = "draining" // finishes its connections, gets no new ones
	OutLoadBalancer Membership = "out"      // gets no traffic (not healthy, or taken out)
)

// InstanceView is one instance.
type InstanceView struct {
	Name string `json:"name"`
	Host string `json:"host"` // libvirt URI
	// State is the hypervisor's run state (deploy.State: running,
	// stopped, paused, crashed, partial, unknown), deploy.Planned for one
	// not made yet, or Creating, Deleting or Missing.
	State deploy.State `json:"state"`
	// Health is empty for an instance not probed (no probe, or not
	// running); HealthReason says why it has its health
	// (health.State.Reason: the last failure of an unhealthy one).
	Health       health.Status `json:"health,omitempty"`
	HealthReason string        `json:"healthReason,omitempty"`
	FaultDomain  int           `json:"faultDomain"`
	UpdateDomain int           `json:"updateDomain"`
	Digest       string        `json:"digest,omitempty"` // the image digest its overlay sits on
	// Address is the guest's IP on a libvirt network, when known;
	// Forwards are the ports of user networking on the host's 127.0.0.1.
	Address  string    `json:"address,omitempty"`
	Forwards []Forward `json:"forwards,omitempty"`
	// Protected from being removed by a scale-in, or from any action of
	// the set's (scale-in, upgrade, repair), as Azure's instance
	// protection.
	ProtectFromScaleIn         bool       `json:"protectFromScaleIn,omitempty"`
	ProtectFromScaleSetActions bool       `json:"protectFromScaleSetActions,omitempty"`
	LoadBalancer               Membership `json:"loadBalancer,omitempty"`
}

// Forward is a guest port forwarded to a port on the host's 127.0.0.1.
type Forward struct {
	GuestPort int `json:"guestPort"`
	HostPort  int `json:"hostPort"` // 0 until one is chosen
}

// EventKind is what kind of thing happened.
type EventKind string

// Kinds of event the page marks; a Source may use others.
const (
	EventScaled         EventKind = "scaled"
	EventRepaired       EventKind = "repaired"
	EventHealth         EventKind = "health" // an instance changed health
	EventUpgradeStarted EventKind = "upgrade-started"
	EventUpgradeBatch   EventKind = "upgrade-batch"
	EventUpgradeStopped EventKind = "upgrade-stopped"
	EventUpgradeDone    EventKind = "upgrade-done"
	EventRolledBack     EventKind = "rolled-back"
	EventBalancer       EventKind = "balancer" // a balancer VM made, started, replaced or removed
	EventError          EventKind = "error"
)

// Event is one line of the event log.
type Event struct {
	At       time.Time `json:"at"`
	Set      string    `json:"set,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Kind     EventKind `json:"kind"`
	Message  string    `json:"message"`
}

// normalize is the snapshot as the view serves it: the schema version
// set, no null lists, events sorted by time and cut to the newest keep. s
// is not modified.
func normalize(s Snapshot, keep int) Snapshot {
	s.SchemaVersion = SchemaVersion
	sets := make([]SetView, len(s.Sets))
	for i, set := range s.Sets {
		if set.Instances == nil {
			set.Instances = []InstanceView{}
		}
		sets[i] = set
	}
	s.Sets = sets
	events := slices.Clone(s.Events)
	slices.SortStableFunc(events, func(a, b Event) int { return a.At.Compare(b.At) })
	if len(events) > keep {
		events = events[len(events)-keep:]
	}
	if events == nil {
		events = []Event{}
	}
	s.Events = events
	return s
}

// Topology is the snapshot as deploy draws it (kiln deploy graph): hosts
// in the order instances name them, a running instance's status its health
// once probed.
func (s Snapshot) Topology() deploy.Topology {
	t := deploy.Topology{Title: s.Fleet}
	for _, set := range s.Sets {
		ts := deploy.TopologySet{Name: set.Name, Kind: set.Kind, Image: set.Image.Ref, Digest: set.Image.Digest,
			FaultDomains: set.FaultDomains, UpdateDomains: set.UpdateDomains}
		if set.LoadBalancer != nil {
			ts.LoadBalancer = &deploy.LoadBalancer{Address: set.LoadBalancer.Listen, VM: set.LoadBalancer.Instance}
		}
		for _, in := range set.Instances {
			if !slices.Contains(t.Hosts, in.Host) {
				t.Hosts = append(t.Hosts, in.Host)
			}
			ti := deploy.TopologyInstance{Name: in.Name, FaultDomain: in.FaultDomain, UpdateDomain: in.UpdateDomain,
				Host: in.Host, Status: in.status(), IP: in.Address}
			for _, f := range in.Forwards {
				ti.Ports = append(ti.Ports, deploy.Forward{GuestPort: f.GuestPort, HostPort: f.HostPort})
			}
			slices.SortFunc(ti.Ports, func(a, b deploy.Forward) int { return cmp.Compare(a.GuestPort, b.GuestPort) })
			ts.Instances = append(ts.Instances, ti)
		}
		t.Sets = append(t.Sets, ts)
	}
	return t
}

// status is the word the drawing shows for an instance: its health when
// it runs and was probed, its state otherwise.
func (in InstanceView) status() deploy.Status {
	if in.State == deploy.Running {
		switch in.Health {
		case health.Healthy:
			return deploy.StatusHealthy
		case health.Unhealthy:
			return deploy.StatusUnhealthy
		}
	}
	return deploy.Status(in.State)
}
