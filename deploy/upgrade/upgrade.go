package upgrade

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln/deploy/health"
)

// SchemaVersion is the layout of the Upgrade record this kiln writes.
const SchemaVersion = 1

// DefaultHealthTimeout is how long a batch's instances may take to become
// healthy, from their reimage or creation, unless Options say otherwise.
const DefaultHealthTimeout = 30 * time.Minute

// Instance is one instance of the set as the controller observes it.
type Instance struct {
	Name   string
	Digest string // the image it runs
	// UpdateDomain and FaultDomain are its place (deploy.Placement).
	UpdateDomain, FaultDomain int
	// Health is its health as it runs now: a reimaged or new instance
	// starts over (health.Start), so a Healthy state from before its
	// reimage is never seen with the new Digest.
	Health health.State
	// Protected is protectFromScaleSetActions: upgrades leave it alone.
	Protected bool
	// SurgeOf is the ID of the upgrade that created the instance as a
	// surge instance and has not adopted it yet ("" for any other): the
	// controller writes it into the instance's metadata when it creates
	// the instance, and clears it on FinishBatch.
	SurgeOf string
}

// Status is where an upgrade stands.
type Status string

// The statuses of an upgrade.
const (
	Running Status = "running"
	// Paused is a rolling upgrade between batches, until PausedUntil.
	Paused Status = "paused"
	// Stopped is an upgrade halted by its policy (Reason says which check,
	// and which instances); Resume continues it.
	Stopped Status = "stopped"
	Done    Status = "done"
	// RolledBack is a finished rollback (RollbackOf is set): every
	// instance it could upgrade runs Target, the digest rolled back to.
	RolledBack Status = "rolledBack"
)

// Phase is where the current batch stands.
type Phase string

// The phases of a batch.
const (
	// Reimaging: in place, the members are drained and reimaged, then
	// waited for.
	Reimaging Phase = "reimaging"
	// Surging: new instances are made for the members, then waited for.
	Surging Phase = "surging"
	// Retiring: the new instances passed; the members are drained and
	// deleted.
	Retiring Phase = "retiring"
	// Failing: the new instances breached the policy; they are deleted,
	// then the upgrade stops. The members were never touched.
	Failing Phase = "failing"
)

// Batch is one batch of an upgrade.
type Batch struct {
	Number int `json:"number"` // from 1
	// Instances are its members: the instances it reimages in place, or
	// replaces with surge instances. Once finished, those it upgraded.
	Instances     []string `json:"instances"`
	UpdateDomains []int    `json:"updateDomains"`
	// Surge are the instances that replaced the members (MaxSurge), once
	// the batch has finished.
	Surge []string `json:"surge,omitempty"`
	Phase Phase    `json:"phase,omitempty"` // of the current batch; "" once finished
	// StartedAt is when the batch was chosen; ActedAt when its last
	// reimage or creation was ordered: the health timeout runs from there.
	StartedAt  time.Time `json:"startedAt"`
	ActedAt    time.Time `json:"actedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Unhealthy lists the batch's upgraded instances found unhealthy when
	// it finished or stopped, each "name: reason".
	Unhealthy []string `json:"unhealthy,omitempty"`
	// Reason is the breach of a Failing batch.
	Reason string `json:"reason,omitempty"`
}

// Progress counts the set's instances for an upgrade, as last observed.
type Progress struct {
	Upgraded  int `json:"upgraded"`  // run the target (surge instances not yet adopted aside)
	Pending   int `json:"pending"`   // still to upgrade, the current batch's included
	Unhealthy int `json:"unhealthy"` // of the upgraded, unhealthy now
	Protected int `json:"protected"` // left on another image: protected from scale-set actions
}

// Upgrade is the record of one upgrade of a set: what it aims at, what it
// has done and where it stands. The controller writes it to disk
// atomically after every Record and resumes from it after a crash: load
// it, observe the set, call Next. It is JSON with camelCase keys and
// string durations.
type Upgrade struct {
	SchemaVersion int `json:"schemaVersion"`
	// ID names this upgrade: set, short target digest, start time. Surge
	// instances carry it (Instance.SurgeOf).
	ID     string `json:"id"`
	Set    string `json:"set"`
	Target string `json:"target"` // the digest every instance is brought to
	// Previous is the digest Rollback returns to: Options.Previous, or the
	// one digest the instances ran at the start; "" when unknown.
	Previous string `json:"previous,omitempty"`
	// From are the digests other than Target instances ran at the start.
	From []string `json:"from,omitempty"`
	// RollbackOf is the ID of the upgrade this one rolls back.
	RollbackOf     string `json:"rollbackOf,omitempty"`
	Policy         Policy `json:"policy"` // a snapshot: a fleet edit does not change an upgrade under way
	ByUpdateDomain bool   `json:"byUpdateDomain,omitempty"`
	// Instances restricts the upgrade to these (a Manual upgrade's
	// --instances); empty for every instance.
	Instances     []string      `json:"instances,omitempty"`
	HealthTimeout time.Duration `json:"healthTimeout"`
	StartedAt     time.Time     `json:"startedAt"`
	UpdatedAt     time.Time     `json:"updatedAt"`
	Status        Status        `json:"status"`
	// Reason says how it ended: why it stopped, or what it did.
	Reason      string    `json:"reason,omitempty"`
	PausedUntil time.Time `json:"pausedUntil,omitzero"`
	Batches     []Batch   `json:"batches,omitempty"` // finished, in order
	Current     *Batch    `json:"current,omitempty"`
	Progress    Progress  `json:"progress"`
}

// Options start an upgrade.
type Options struct {
	Set    string
	Target string // the digest to bring the instances to
	// Previous is the digest the set ran before (the fleet's previous
	// image), for Rollback; "" to take the one digest the instances run.
	Previous string
	Policy   Policy // defaulted and valid
	// Instances are the instances to upgrade, by name: required by a
	// Manual policy (`--instances a,b`), optional otherwise.
	Instances []string
	// ByUpdateDomain is set for an availability set: no batch spans two
	// update domains.
	ByUpdateDomain bool
	// HealthTimeout bounds the wait for a batch's instances to become
	// healthy (0: DefaultHealthTimeout). Pass at least the set's health
	// grace period plus its probes, or a slow boot counts as a failure.
	HealthTimeout time.Duration
}

// Start begins an upgrade of the observed set. It refuses an invalid
// policy, a missing target, and instances the set lacks or protects; an
// upgrade with nothing to do is returned already Done, not as an error.
func Start(o Options, set []Instance, now time.Time) (Upgrade, error) {
	var errs []error
	if err := Validate(o.Policy); err != nil {
		errs = append(errs, err)
	}
	if o.Set == "" {
		errs = append(errs, errors.New("upgrade: no set named"))
	}
	if o.Target == "" {
		errs = append(errs, fmt.Errorf("upgrade %s: no target image digest", o.Set))
	}
	if o.HealthTimeout < 0 {
		errs = append(errs, fmt.Errorf("upgrade %s: negative health timeout %s", o.Set, o.HealthTimeout))
	}
	by := map[string]Instance{}
	for _, in := range set {
		by[in.Name] = in
	}
	var names []string
	for _, n := range o.Instances {
		switch in, ok := by[n]; {
		case !ok:
			errs = append(errs, fmt.Errorf("upgrade %s: instance %q is not in the set (it has %s)", o.Set, n, listNames(set)))
		case in.Protected:
			errs = append(errs, fmt.Errorf("upgrade %s: instance %s is protected from scale-set actions: remove its protection to upgrade it", o.Set, n))
		case !slices.Contains(names, n):
			names = append(names, n)
		}
	}
	if o.Policy.Mode == Manual && len(o.Instances) == 0 {
		errs = append(errs, fmt.Errorf("upgrade %s: the Manual upgrade policy upgrades the instances named, and none is (pass --instances, or set upgradePolicy.mode to Rolling or Automatic)", o.Set))
	}
	if err := errors.Join(errs...); err != nil {
		return Upgrade{}, err
	}
	slices.SortFunc(names, compareNames)

	u := Upgrade{
		SchemaVersion:  SchemaVersion,
		ID:             fmt.Sprintf("%s-%s-%s", o.Set, hexOf(o.Target, 8), now.UTC().Format("20060102T150405Z")),
		Set:            o.Set,
		Target:         o.Target,
		Previous:       o.Previous,
		Policy:         o.Policy,
		ByUpdateDomain: o.ByUpdateDomain,
		Instances:      names,
		HealthTimeout:  o.HealthTimeout,
		StartedAt:      now,
		UpdatedAt:      now,
		Status:         Running,
	}
	if u.HealthTimeout == 0 {
		u.HealthTimeout = DefaultHealthTimeout
	}
	for _, in := range set {
		if in.Digest != o.Target && in.Digest != "" && !slices.Contains(u.From, in.Digest) {
			u.From = append(u.From, in.Digest)
		}
	}
	slices.Sort(u.From)
	if u.Previous == "" && len(u.From) == 1 {
		u.Previous = u.From[0]
	}
	if u.Previous == u.Target {
		u.Previous = ""
	}
	if s := Next(u, set, len(set), now); s.Action == Complete {
		u = u.Record(s, now)
	}
	return u, nil
}

// Resume continues a stopped upgrade: the checks that stopped it are made
// again by the next Next, and stop it again if they still fail. A running
// or paused upgrade is returned as it is (re-running after a crash is just
// Next); a finished one is an error.
func Resume(u Upgrade, now time.Time) (Upgrade, error) {
	switch u.Status {
	case Running, Paused:
		return u, nil
	case Done, RolledBack:
		return u, fmt.Errorf("upgrade %s of %s has finished (%s): start a new one", u.ID, u.Set, u.Reason)
	}
	u = u.clone()
	u.Status, u.Reason, u.UpdatedAt = Running, "", now
	if u.Current != nil && u.Current.Phase == Failing {
		u.Current = nil // its surge instances are gone: the batch never happened
	}
	return u, nil
}

// Rollback is a new upgrade of u's set back to u.Previous, with u's policy
// and instances, that replaces the instances running u's target first. It
// supersedes u, whatever u's status: surge instances u has not adopted are
// deleted by its first steps. It fails when there is nothing to return to.
func Rollback(u Upgrade, now time.Time) (Upgrade, error) {
	switch {
	case u.Previous == "" && len(u.From) > 1:
		return Upgrade{}, fmt.Errorf("upgrade %s: nothing to roll back to: the instances ran %d images when it started (%s); upgrade to the one you want with --image", u.ID, len(u.From), strings.Join(shortAll(u.From), ", "))
	case u.Previous == "":
		return Upgrade{}, fmt.Errorf("upgrade %s: nothing to roll back to: no previous image is known (every instance ran %s already)", u.ID, short(u.Target))
	case u.Previous == u.Target:
		return Upgrade{}, fmt.Errorf("upgrade %s: nothing to roll back to: the previous image is the target, %s", u.ID, short(u.Target))
	}
	r := Upgrade{
		SchemaVersion:  SchemaVersion,
		ID:             fmt.Sprintf("%s-%s-%s", u.Set, hexOf(u.Previous, 8), now.UTC().Format("20060102T150405Z")),
		Set:            u.Set,
		Target:         u.Previous,
		Previous:       u.Target,
		From:           []string{u.Target},
		RollbackOf:     u.ID,
		Policy:         u.Policy,
		ByUpdateDomain: u.ByUpdateDomain,
		Instances:      slices.Clone(u.Instances),
		HealthTimeout:  u.HealthTimeout,
		StartedAt:      now,
		UpdatedAt:      now,
		Status:         Running,
	}
	if r.ID == u.ID { // rolled back within the second it started, to the same digest
		r.ID += "-rollback"
	}
	return r, nil
}

// Record is u after the controller took step s, which Next returned for u:
// the batch it started or advanced, finished or stopped. The controller
// calls it (and writes the result to disk) before it acts, so a crash
// mid-action resumes the same step; Next finds what the action already did
// in the observed set. Recording a step twice changes nothing more.
func (u Upgrade) Record(s Step, now time.Time) Upgrade {
	u = u.clone()
	u.Progress = s.Progress
	switch s.Action {
	case Reimage, CreateSurge, Delete:
		if s.Batch == nil {
			break // outside a batch: strays of another upgrade
		}
		b := s.Batch.clone()
		if b.StartedAt.IsZero() {
			b.StartedAt = now
		}
		if s.Action != Delete {
			b.ActedAt = now
		}
		u.Current = &b
		u.Status, u.PausedUntil = Running, time.Time{}
	case FinishBatch:
		if s.Batch == nil || u.finished(s.Batch.Number) {
			break
		}
		b := s.Batch.clone()
		b.Phase, b.FinishedAt = "", now
		u.Batches = append(u.Batches, b)
		u.Current = nil
		if u.Policy.Mode == Rolling && u.Policy.PauseTimeBetweenBatches > 0 {
			u.Status, u.PausedUntil = Paused, now.Add(u.Policy.PauseTimeBetweenBatches)
		}
	case Stop:
		if u.Status == Stopped {
			return u
		}
		u.Status, u.Reason = Stopped, s.Reason
		if s.Batch != nil {
			b := s.Batch.clone()
			u.Current = &b
		}
	case Complete:
		if u.Status == Done || u.Status == RolledBack {
			return u
		}
		u.Status, u.Reason, u.Current, u.PausedUntil = Done, s.Reason, nil, time.Time{}
		if u.RollbackOf != "" {
			u.Status = RolledBack
		}
	case Wait, Adopt:
		// Nothing is decided while waiting, nor by clearing marks.
	}
	u.UpdatedAt = now
	return u
}

func (u Upgrade) finished(number int) bool {
	for _, b := range u.Batches {
		if b.Number == number {
			return true
		}
	}
	return false
}

// clone copies u deeply: Record returns a new value and never changes the
// one it was given.
func (u Upgrade) clone() Upgrade {
	u.From = slices.Clone(u.From)
	u.Instances = slices.Clone(u.Instances)
	bs := make([]Batch, len(u.Batches))
	for i, b := range u.Batches {
		bs[i] = b.clone()
	}
	if u.Batches != nil {
		u.Batches = bs
	}
	if u.Current != nil {
		c := u.Current.clone()
		u.Current = &c
	}
	return u
}

func (b Batch) clone() Batch {
	b.Instances = slices.Clone(b.Instances)
	b.UpdateDomains = slices.Clone(b.UpdateDomains)
	b.Surge = slices.Clone(b.Surge)
	b.Unhealthy = slices.Clone(b.Unhealthy)
	return b
}

// MarshalJSON writes the record with the health timeout as a duration
// string.
func (u Upgrade) MarshalJSON() ([]byte, error) {
	type plain Upgrade
	return json.Marshal(struct {
		plain
		HealthTimeout string `json:"healthTimeout"`
	}{plain(u), formatDuration(u.HealthTimeout)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (u *Upgrade) UnmarshalJSON(b []byte) error {
	type plain Upgrade
	var w struct {
		plain
		HealthTimeout string `json:"healthTimeout"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	d, err := parseDuration(w.HealthTimeout)
	if err != nil {
		return fmt.Errorf("healthTimeout: %w", err)
	}
	*u = Upgrade(w.plain)
	u.HealthTimeout = d
	return nil
}

// Parse reads an Upgrade record the controller wrote. It refuses a newer
// layout and a record that is not one.
func Parse(data []byte) (Upgrade, error) {
	var u Upgrade
	if err := json.Unmarshal(data, &u); err != nil {
		return Upgrade{}, fmt.Errorf("upgrade record: %w", err)
	}
	switch {
	case u.SchemaVersion > SchemaVersion:
		return Upgrade{}, fmt.Errorf("upgrade record: schemaVersion %d is newer than this kiln reads (%d): use a newer kiln", u.SchemaVersion, SchemaVersion)
	case u.SchemaVersion < 1:
		return Upgrade{}, fmt.Errorf("upgrade record: no schemaVersion")
	case u.ID == "" || u.Set == "" || u.Target == "":
		return Upgrade{}, fmt.Errorf("upgrade record: id, set and target are required")
	}
	switch u.Status {
	case Running, Paused, Stopped, Done, RolledBack:
	default:
		return Upgrade{}, fmt.Errorf("upgrade record: unknown status %q", u.Status)
	}
	return u, nil
}

// short is a digest as people read it: "sha256:3f2a9c1b0d4e".
func short(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return hexOf(d, 12)
	}
	return algo + ":" + hexOf(hex, 12)
}

func shortAll(ds []string) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = short(d)
	}
	return out
}

// hexOf is the first n characters of a digest's hex part.
func hexOf(d string, n int) string {
	if _, h, ok := strings.Cut(d, ":"); ok {
		d = h
	}
	if len(d) > n {
		return d[:n]
	}
	return d
}

// listNames lists the set's names for a message, at most eight.
func listNames(set []Instance) string {
	names := make([]string, 0, len(set))
	for _, in := range set {
		names = append(names, in.Name)
	}
	slices.SortFunc(names, compareNames)
	if len(names) == 0 {
		return "no instances"
	}
	if len(names) > 8 {
		return strings.Join(names[:8], ", ") + fmt.Sprintf(" and %d more", len(names)-8)
	}
	return strings.Join(names, ", ")
}

// compareNames orders instance names by prefix, then by their number:
// web-2 before web-10.
func compareNames(a, b string) int {
	pa, na, oka := splitOrdinal(a)
	pb, nb, okb := splitOrdinal(b)
	if oka && okb && pa == pb {
		if c := na - nb; c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

func splitOrdinal(s string) (string, int, bool) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) || len(s)-i > 9 {
		return s, 0, false
	}
	n := 0
	for _, c := range s[i:] {
		n = n*10 + int(c-'0')
	}
	return s[:i], n, true
}
