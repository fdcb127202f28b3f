package deploy

import (
	"slices"
	"strconv"
	"strings"
)

// Placement is where one instance of a set goes.
type Placement struct {
	Name         string // <set>-<ordinal>, stable for the instance's life
	Ordinal      int
	FaultDomain  int
	UpdateDomain int
	Host         string // libvirt URI
}

// Spread is how a set spreads its instances: round-robin over fault and
// update domains by ordinal. With several hosts a fault domain is a host.
type Spread struct {
	Set           string
	FaultDomains  int
	UpdateDomains int
	Hosts         []string
}

// Spread returns the set's spread.
func (s *Set) Spread() Spread {
	return Spread{Set: s.Name, FaultDomains: s.FaultDomains, UpdateDomains: s.UpdateDomains, Hosts: s.Hosts}
}

// Placements places the set's instances, ordinals 0 to Capacity-1.
func (s *Set) Placements() []Placement { return s.Spread().PlaceAll(s.Capacity) }

// FaultDomainCount is how many fault domains a set of kind k has: with
// several hosts, one per host (no more than the kind allows: the hosts
// past that are not used); on one host, requested, or the kind's default
// when requested is 0 (3 for an AvailabilitySet, 1 for a ScaleSet), kept
// within 1 and the kind's maximum.
func FaultDomainCount(k Kind, requested, hosts int) int {
	most := MaxFaultDomains(k)
	switch {
	case hosts > 1:
		return min(hosts, most)
	case requested == 0 && k == AvailabilitySet:
		return most
	}
	return min(max(requested, 1), most)
}

// Place returns where instance ordinal goes: update domain ordinal mod
// UpdateDomains, fault domain ordinal mod FaultDomains, and with several
// hosts the host of that fault domain. Ordinals, not arrival order, decide,
// so an instance recreated after a crash lands where it was, and keeping
// ordinals 0..n-1 (scale-in removes the highest first) keeps every domain
// within one instance of every other.
func (sp Spread) Place(ordinal int) Placement {
	fds, uds := max(sp.FaultDomains, 1), max(sp.UpdateDomains, 1)
	p := Placement{
		Name:         InstanceName(sp.Set, ordinal),
		Ordinal:      ordinal,
		FaultDomain:  ordinal % fds,
		UpdateDomain: ordinal % uds,
	}
	switch {
	case len(sp.Hosts) > 1:
		p.Host = sp.Hosts[p.FaultDomain%len(sp.Hosts)]
	case len(sp.Hosts) == 1:
		p.Host = sp.Hosts[0]
	}
	return p
}

// PlaceKeeping places capacity instances keeping the ordinals that exist:
// the lowest capacity of them stay (scale-in removes the highest first),
// and the lowest free ordinals fill what is missing. Without gaps this is
// PlaceAll; a surge upgrade leaves gaps (its new instance has an ordinal
// beyond the capacity, in the domains of the one it replaced), and keeping
// them spares the set a needless replacement.
//
// Ordinals in protected (instances protected from scale-in) always stay,
// even beyond the capacity; the others are removed highest first.
func (sp Spread) PlaceKeeping(capacity int, existing, protected []int) []Placement {
	all := slices.Clone(existing)
	slices.Sort(all)
	all = slices.Compact(all)
	all = slices.DeleteFunc(all, func(o int) bool { return o < 0 })
	var keep []int
	for _, o := range all {
		if slices.Contains(protected, o) {
			keep = append(keep, o)
		}
	}
	for _, o := range all {
		if len(keep) >= capacity {
			break
		}
		if !slices.Contains(keep, o) {
			keep = append(keep, o)
		}
	}
	have := map[int]bool{}
	for _, o := range keep {
		have[o] = true
	}
	for o := 0; len(keep) < capacity; o++ {
		if !have[o] {
			keep = append(keep, o)
		}
	}
	slices.Sort(keep)
	out := make([]Placement, 0, len(keep))
	for _, o := range keep {
		out = append(out, sp.Place(o))
	}
	return out
}

// SurgeOrdinal is the ordinal of an instance made beside ordinal during a
// surge upgrade: the lowest unused one at or above capacity that lands in
// the same fault and update domains.
func (sp Spread) SurgeOrdinal(ordinal, capacity int, used []int) int {
	fds, uds := max(sp.FaultDomains, 1), max(sp.UpdateDomains, 1)
	step := fds * uds / gcd(fds, uds)
	o := ordinal
	for o < capacity || slices.Contains(used, o) {
		o += step
	}
	return o
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// PlaceAll places ordinals 0 to capacity-1.
func (sp Spread) PlaceAll(capacity int) []Placement {
	out := make([]Placement, 0, max(capacity, 0))
	for i := 0; i < capacity; i++ {
		out = append(out, sp.Place(i))
	}
	return out
}

// InstanceName is the name of a set's instance: web, 2 -> web-2.
func InstanceName(set string, ordinal int) string {
	return set + "-" + strconv.Itoa(ordinal)
}

// ParseInstanceName returns the ordinal of an instance of set from its
// name, and false for a name that is not one (web-01, web-x, webby-1).
func ParseInstanceName(set, name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, set+"-")
	if !ok || digits == "" || len(digits) > 9 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// ScalePlan is what brings a set to its capacity: the ordinals to create,
// lowest first, and those to remove, highest first.
type ScalePlan struct {
	Create []int
	Remove []int
}

// PlanScale compares the ordinals that exist (in any order; some may be
// missing after a crash or a hand deletion, some listed twice) with the
// desired capacity: every ordinal below capacity that is missing is
// created, lowest first, and every one at or above capacity is removed,
// highest first. Afterwards exactly 0..capacity-1 exist.
func PlanScale(existing []int, capacity int) ScalePlan {
	have := map[int]bool{}
	var plan ScalePlan
	for _, o := range existing {
		if have[o] {
			continue
		}
		have[o] = true
		if o < 0 || o >= capacity {
			plan.Remove = append(plan.Remove, o)
		}
	}
	for o := 0; o < capacity; o++ {
		if !have[o] {
			plan.Create = append(plan.Create, o)
		}
	}
	slices.Sort(plan.Remove)
	slices.Reverse(plan.Remove)
	return plan
}
