package deploy

import (
	"fmt"
	"sort"
)

// Desired is one instance the fleet file asks for, placed on its host.
type Desired struct {
	Host string
	Spec InstanceSpec
}

// Op is one kind of change a plan makes.
type Op string

const (
	OpCreate Op = "create" // make overlay, seed and domain, start it
	OpStart  Op = "start"  // a stopped or crashed instance
	OpDelete Op = "delete" // scale-in, or moved to another host
	// OpOutdated is an instance whose image or spec differs from the
	// fleet file: reported, left as it is (replacing instances is a
	// deliberate step: apply --prune, or a rolling upgrade).
	OpOutdated Op = "outdated"
	// OpReplace is an outdated instance apply --prune deletes and makes
	// again from the fleet file.
	OpReplace Op = "replace"
	// OpForeign is a kiln domain of a set this fleet file does not have:
	// reported, and deleted only with prune.
	OpForeign Op = "foreign"
)

// Change is one line of a plan.
type Change struct {
	Op       Op     `json:"op"`
	Instance string `json:"instance"`
	Host     string `json:"host"`
	Set      string `json:"set"`
	Reason   string `json:"reason"`
	// Act says whether apply carries it out (outdated and foreign
	// instances are only reported, unless pruning).
	Act bool `json:"act"`
}

// Plan is the difference between the fleet file and what the hosts hold.
type Plan struct {
	Changes   []Change `json:"changes"`
	Unchanged int      `json:"unchanged"`
}

// Pending reports whether apply would change anything.
func (p Plan) Pending() bool {
	for _, c := range p.Changes {
		if c.Act {
			return true
		}
	}
	return false
}

// Diff compares what the fleet file wants (desired, for the sets named in
// sets) with the kiln-owned instances the hosts report (actual). It is a
// pure function: apply carries out its result, and re-running it after a
// crash gives what is left to do. Deletions come first (highest ordinal
// first), then creations (lowest first), then starts.
func Diff(sets []string, desired []Desired, actual []Instance, prune bool) Plan {
	inFile := map[string]bool{}
	for _, s := range sets {
		inFile[s] = true
	}
	have := map[string]Instance{}
	for _, a := range actual {
		have[a.Name] = a
	}
	want := map[string]bool{}
	var plan Plan
	var deletes, creates, starts, reports []Change
	for _, d := range desired {
		want[d.Spec.Name] = true
		m := d.Spec.Meta
		a, ok := have[d.Spec.Name]
		switch {
		case !ok:
			creates = append(creates, Change{Op: OpCreate, Instance: d.Spec.Name, Host: d.Host, Set: m.Set, Act: true,
				Reason: fmt.Sprintf("fault domain %d, update domain %d", m.FaultDomain, m.UpdateDomain)})
		case a.State == Partial && a.Host == d.Host:
			creates = append(creates, Change{Op: OpCreate, Instance: d.Spec.Name, Host: d.Host, Set: m.Set, Act: true,
				Reason: "its domain is missing (deleted by hand, or a crash half-way): made again"})
		case a.Host != d.Host:
			deletes = append(deletes, Change{Op: OpDelete, Instance: a.Name, Host: a.Host, Set: m.Set, Act: true, Reason: "placed on " + d.Host + " now"})
			creates = append(creates, Change{Op: OpCreate, Instance: d.Spec.Name, Host: d.Host, Set: m.Set, Act: true, Reason: "moved from " + a.Host})
		case a.Meta.Image != m.Image:
			reports = append(reports, outdated(a, m.Set, prune, fmt.Sprintf("runs image %s, the fleet file wants %s", short(a.Meta.Image), short(m.Image))))
		case a.Meta.Spec != m.Spec || a.Meta.FaultDomain != m.FaultDomain || a.Meta.UpdateDomain != m.UpdateDomain:
			reports = append(reports, outdated(a, m.Set, prune, "made from another spec (size, firmware, network, seed or domains changed)"))
		case a.State == Stopped || a.State == Crashed:
			starts = append(starts, Change{Op: OpStart, Instance: a.Name, Host: a.Host, Set: m.Set, Act: true, Reason: string(a.State)})
		default:
			plan.Unchanged++
		}
	}
	for _, a := range actual {
		if want[a.Name] {
			continue
		}
		if a.State == Partial {
			deletes = append(deletes, Change{Op: OpDelete, Instance: a.Name, Host: a.Host, Set: a.Meta.Set, Act: true, Reason: "left half-made by a crash"})
			continue
		}
		if inFile[a.Meta.Set] {
			reason := "beyond the set's capacity"
			if owner, ok := OwnerOfBalancerVM(a.Meta.Set); ok {
				reason = "the load balancer of set " + owner
			}
			deletes = append(deletes, Change{Op: OpDelete, Instance: a.Name, Host: a.Host, Set: a.Meta.Set, Act: true, Reason: reason})
			continue
		}
		if owner, ok := OwnerOfBalancerVM(a.Meta.Set); ok && inFile[owner] {
			continue // kiln deploy run's to make and remove
		}
		reports = append(reports, Change{Op: OpForeign, Instance: a.Name, Host: a.Host, Set: a.Meta.Set, Act: prune,
			Reason: fmt.Sprintf("set %q is not in this fleet file; kept (--prune removes it)", a.Meta.Set)})
	}
	byOrdinal := func(cs []Change, highFirst bool, meta func(Change) int) {
		sort.SliceStable(cs, func(i, j int) bool {
			if cs[i].Set != cs[j].Set {
				return cs[i].Set < cs[j].Set
			}
			if highFirst {
				return meta(cs[i]) > meta(cs[j])
			}
			return meta(cs[i]) < meta(cs[j])
		})
	}
	ord := map[string]int{}
	for _, d := range desired {
		ord[d.Spec.Name] = d.Spec.Meta.Ordinal
	}
	for _, a := range actual {
		ord[a.Name] = a.Meta.Ordinal
	}
	get := func(c Change) int { return ord[c.Instance] }
	byOrdinal(deletes, true, get)
	byOrdinal(creates, false, get)
	byOrdinal(starts, false, get)
	byOrdinal(reports, false, get)
	plan.Changes = append(append(append(append(plan.Changes, deletes...), creates...), starts...), reports...)
	if plan.Changes == nil {
		plan.Changes = []Change{}
	}
	return plan
}

// outdated reports an instance that differs from the fleet file: kept, or
// replaced when pruning.
func outdated(a Instance, set string, prune bool, why string) Change {
	if prune {
		return Change{Op: OpReplace, Instance: a.Name, Host: a.Host, Set: set, Act: true, Reason: why}
	}
	return Change{Op: OpOutdated, Instance: a.Name, Host: a.Host, Set: set, Reason: why + "; kept (--prune replaces it)"}
}

// short is a digest cut to its first 12 hex digits, for messages.
func short(d string) string {
	const prefix = len("sha256:")
	if len(d) > prefix+12 {
		return d[:prefix+12]
	}
	return d
}
