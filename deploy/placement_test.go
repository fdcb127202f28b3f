package deploy

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestFaultDomainCount(t *testing.T) {
	for _, c := range []struct {
		kind             Kind
		requested, hosts int
		want             int
	}{
		{AvailabilitySet, 0, 1, 3}, // the default
		{AvailabilitySet, 2, 1, 2},
		{AvailabilitySet, 0, 2, 2}, // a fault domain is a host
		{AvailabilitySet, 3, 2, 2},
		{AvailabilitySet, 0, 4, 3}, // capped: the fourth host is not used
		{AvailabilitySet, 9, 1, 3},
		{ScaleSet, 0, 1, 1},
		{ScaleSet, 4, 1, 4},
		{ScaleSet, 0, 3, 3},
		{ScaleSet, 0, 7, 5},
		{ScaleSet, -1, 1, 1},
		{ScaleSet, 0, 0, 1},
	} {
		if got := FaultDomainCount(c.kind, c.requested, c.hosts); got != c.want {
			t.Errorf("FaultDomainCount(%s, %d, %d hosts) = %d, want %d", c.kind, c.requested, c.hosts, got, c.want)
		}
	}
}

func TestPlace(t *testing.T) {
	hosts := []string{"qemu:///system", "qemu+ssh://b/system", "qemu+ssh://c/system"}
	for _, c := range []struct {
		name     string
		spread   Spread
		capacity int
		want     []Placement
	}{
		{"availability set on one host", Spread{"db", 3, 5, hosts[:1]}, 4, []Placement{
			{"db-0", 0, 0, 0, hosts[0]}, {"db-1", 1, 1, 1, hosts[0]}, {"db-2", 2, 2, 2, hosts[0]}, {"db-3", 3, 0, 3, hosts[0]},
		}},
		{"scale set over two hosts", Spread{"web", 2, 2, hosts[:2]}, 4, []Placement{
			{"web-0", 0, 0, 0, hosts[0]}, {"web-1", 1, 1, 1, hosts[1]}, {"web-2", 2, 0, 0, hosts[0]}, {"web-3", 3, 1, 1, hosts[1]},
		}},
		{"fewer update than fault domains", Spread{"x", 3, 2, hosts}, 3, []Placement{
			{"x-0", 0, 0, 0, hosts[0]}, {"x-1", 1, 1, 1, hosts[1]}, {"x-2", 2, 2, 0, hosts[2]},
		}},
		{"empty", Spread{"x", 1, 5, hosts[:1]}, 0, []Placement{}},
		{"zero domains count as one", Spread{"x", 0, 0, nil}, 2, []Placement{{"x-0", 0, 0, 0, ""}, {"x-1", 1, 0, 0, ""}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.spread.PlaceAll(c.capacity); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestPlacementsOfASet: a loaded set's spread is its fault domains, update
// domains and hosts.
func TestPlacementsOfASet(t *testing.T) {
	s := &Set{Name: "web", Capacity: 3, FaultDomains: 2, UpdateDomains: 5, Hosts: []string{"a", "b"}}
	want := []Placement{{"web-0", 0, 0, 0, "a"}, {"web-1", 1, 1, 1, "b"}, {"web-2", 2, 0, 2, "a"}}
	if got := s.Placements(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

// TestBalanced proves, for every fault domain count (one host, or one host
// per fault domain), update domain count and capacity a set may have, that
// the modulo rule keeps domains balanced: fault domains (and so hosts) and
// update domains each hold within one instance of each other. Scale-in
// removes the highest ordinal, which leaves ordinals 0..n-2: the same rule
// on a smaller n, so balanced after every step.
func TestBalanced(t *testing.T) {
	for fds := 1; fds <= MaxFaultDomains(ScaleSet); fds++ {
		perFD := make([]string, fds)
		for i := range perFD {
			perFD[i] = fmt.Sprintf("qemu+ssh://h%d/system", i)
		}
		for _, hosts := range [][]string{{"qemu:///system"}, perFD} {
			for uds := 1; uds <= MaxUpdateDomains; uds++ {
				sp := Spread{Set: "s", FaultDomains: fds, UpdateDomains: uds, Hosts: hosts}
				fd, ud, onHost := make([]int, fds), make([]int, uds), map[string]int{}
				for n := 0; n <= MaxCapacity; n++ {
					// Ordinals 0..n-1 are placed: check, then place n.
					var hostCounts []int
					for _, h := range hosts {
						hostCounts = append(hostCounts, onHost[h])
					}
					if !within1(fd) || !within1(ud) || !within1(hostCounts) {
						t.Fatalf("%+v with %d instances: fault domains %v, update domains %v, hosts %v", sp, n, fd, ud, hostCounts)
					}
					p := sp.Place(n)
					if len(hosts) > 1 && p.Host != hosts[p.FaultDomain] {
						t.Fatalf("%+v: %s is in fault domain %d but on %s", sp, p.Name, p.FaultDomain, p.Host)
					}
					fd[p.FaultDomain]++
					ud[p.UpdateDomain]++
					onHost[p.Host]++
				}
			}
		}
	}
}

func within1(counts []int) bool { return slices.Max(counts)-slices.Min(counts) <= 1 }

func checkBalanced(t *testing.T, sp Spread, ps []Placement) {
	t.Helper()
	fd := make([]int, sp.FaultDomains)
	ud := make([]int, sp.UpdateDomains)
	for _, p := range ps {
		fd[p.FaultDomain]++
		ud[p.UpdateDomain]++
	}
	if !within1(fd) || !within1(ud) {
		t.Fatalf("%+v with %d instances: fault domains %v, update domains %v", sp, len(ps), fd, ud)
	}
}

// TestScaleInOrder: scaling in goes highest ordinal first, and every step
// leaves the domains balanced; removing any other ordinal would not (here:
// three fault domains, four instances, remove 1, and domain 0 holds two
// while domain 1 holds none).
func TestScaleInOrder(t *testing.T) {
	sp := Spread{Set: "db", FaultDomains: 3, UpdateDomains: 5, Hosts: []string{"qemu:///system"}}
	existing := []int{0, 1, 2, 3, 4, 5, 6}
	plan := PlanScale(existing, 2)
	if !reflect.DeepEqual(plan, ScalePlan{Remove: []int{6, 5, 4, 3, 2}}) {
		t.Fatalf("plan %+v", plan)
	}
	left := slices.Clone(existing)
	for _, o := range plan.Remove {
		left = slices.DeleteFunc(left, func(x int) bool { return x == o })
		var ps []Placement
		for _, o := range left {
			ps = append(ps, sp.Place(o))
		}
		checkBalanced(t, sp, ps)
	}
	fd := make([]int, 3)
	for _, o := range []int{0, 2, 3} {
		fd[sp.Place(o).FaultDomain]++
	}
	if !reflect.DeepEqual(fd, []int{2, 0, 1}) {
		t.Errorf("the counter-example moved: %v", fd)
	}
}

func TestPlanScale(t *testing.T) {
	for _, c := range []struct {
		name     string
		existing []int
		capacity int
		want     ScalePlan
	}{
		{"nothing yet", nil, 3, ScalePlan{Create: []int{0, 1, 2}}},
		{"in shape", []int{2, 0, 1}, 3, ScalePlan{}},
		{"scale out", []int{0, 1}, 4, ScalePlan{Create: []int{2, 3}}},
		{"scale in", []int{0, 1, 2, 3}, 1, ScalePlan{Remove: []int{3, 2, 1}}},
		{"to zero", []int{1, 0}, 0, ScalePlan{Remove: []int{1, 0}}},
		{"holes are refilled lowest first", []int{0, 3, 5}, 6, ScalePlan{Create: []int{1, 2, 4}}},
		{"holes and scale in", []int{1, 4, 7, 2}, 3, ScalePlan{Create: []int{0}, Remove: []int{7, 4}}},
		{"listed twice", []int{0, 0, 4, 4}, 2, ScalePlan{Create: []int{1}, Remove: []int{4}}},
		{"negative ordinals go", []int{-1, 0}, 1, ScalePlan{Remove: []int{-1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := PlanScale(c.existing, c.capacity); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestPlanScaleConverges: whatever exists, doing the plan leaves exactly
// ordinals 0..capacity-1.
func TestPlanScaleConverges(t *testing.T) {
	for mask := 0; mask < 1<<8; mask++ {
		var existing []int
		for o := 0; o < 8; o++ {
			if mask&(1<<o) != 0 {
				existing = append(existing, o)
			}
		}
		for capacity := 0; capacity <= 9; capacity++ {
			plan := PlanScale(existing, capacity)
			after := slices.Clone(existing)
			for _, o := range plan.Remove {
				after = slices.DeleteFunc(after, func(x int) bool { return x == o })
			}
			after = append(after, plan.Create...)
			slices.Sort(after)
			want := make([]int, capacity)
			for i := range want {
				want[i] = i
			}
			if !slices.Equal(after, want) {
				t.Fatalf("existing %v, capacity %d: plan %+v leaves %v", existing, capacity, plan, after)
			}
		}
	}
}

func TestInstanceNames(t *testing.T) {
	for o := 0; o < 200; o++ {
		if got, ok := ParseInstanceName("web", InstanceName("web", o)); !ok || got != o {
			t.Fatalf("round trip of %d: %d, %v", o, got, ok)
		}
	}
	for _, name := range []string{"web", "web-", "web-01", "web-x", "web--1", "web-+1", "webby-1", "web-1-0", "web-1234567890", "db-1"} {
		if o, ok := ParseInstanceName("web", name); ok {
			t.Errorf("%q parsed as instance %d of web", name, o)
		}
	}
	// A set named like another's instance keeps its own instances apart.
	if o, ok := ParseInstanceName("web-1", "web-1-0"); !ok || o != 0 {
		t.Errorf("web-1-0 is instance 0 of web-1: %d, %v", o, ok)
	}
}

func TestPlaceKeeping(t *testing.T) {
	sp := Spread{Set: "web", FaultDomains: 1, UpdateDomains: 5}
	ordinals := func(ps []Placement) []int {
		var out []int
		for _, p := range ps {
			out = append(out, p.Ordinal)
		}
		return out
	}
	for _, c := range []struct {
		name      string
		capacity  int
		existing  []int
		want      []int
		protected []int
	}{
		{"none yet", 3, nil, []int{0, 1, 2}, nil},
		{"no gaps is PlaceAll", 3, []int{2, 0, 1}, []int{0, 1, 2}, nil},
		{"a surge's gap is kept", 4, []int{1, 2, 3, 5}, []int{1, 2, 3, 5}, nil},
		{"scale out fills the lowest free", 5, []int{1, 2, 3, 5}, []int{0, 1, 2, 3, 5}, nil},
		{"scale in drops the highest", 3, []int{1, 2, 3, 5}, []int{1, 2, 3}, nil},
		{"duplicates and negatives", 2, []int{4, 4, -1}, []int{0, 4}, nil},
		{"zero", 0, []int{1, 2}, nil, nil},
		{"scale in keeps the protected", 2, []int{0, 1, 2, 3}, []int{0, 3}, []int{3}},
		{"protected beyond the capacity stay", 1, []int{0, 1, 2}, []int{1, 2}, []int{1, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := sp.PlaceKeeping(c.capacity, c.existing, c.protected)
			if !reflect.DeepEqual(ordinals(got), c.want) {
				t.Errorf("got %v, want %v", ordinals(got), c.want)
			}
			for _, p := range got {
				if p != sp.Place(p.Ordinal) {
					t.Errorf("%s placed %+v, not as Place would", p.Name, p)
				}
			}
		})
	}
}

func TestSurgeOrdinal(t *testing.T) {
	for _, c := range []struct {
		sp                Spread
		ordinal, capacity int
		used              []int
		want              int
	}{
		{Spread{FaultDomains: 1, UpdateDomains: 5}, 0, 4, nil, 5},
		{Spread{FaultDomains: 1, UpdateDomains: 5}, 0, 4, []int{5}, 10},
		{Spread{FaultDomains: 3, UpdateDomains: 2}, 1, 4, nil, 7},
		{Spread{FaultDomains: 2, UpdateDomains: 2}, 1, 6, []int{7}, 9},
	} {
		got := c.sp.SurgeOrdinal(c.ordinal, c.capacity, c.used)
		if got != c.want || got%max(c.sp.FaultDomains, 1) != c.ordinal%max(c.sp.FaultDomains, 1) || got%c.sp.UpdateDomains != c.ordinal%c.sp.UpdateDomains {
			t.Errorf("%+v: surge beside %d = %d, want %d (same domains)", c.sp, c.ordinal, got, c.want)
		}
	}
}

func TestCPUPercent(t *testing.T) {
	s := func(cpu time.Duration, vcpus int) Stats { return Stats{CPUTime: cpu, VCPUs: vcpus} }
	for _, c := range []struct {
		before, after Stats
		wall          time.Duration
		want          float64
		ok            bool
	}{
		{s(0, 1), s(5*time.Second, 1), 10 * time.Second, 50, true},
		{s(time.Second, 2), s(11*time.Second, 2), 10 * time.Second, 50, true},
		{s(0, 1), s(12*time.Second, 1), 10 * time.Second, 100, true},         // clock skew: never above 100
		{s(9*time.Second, 1), s(time.Second, 1), 10 * time.Second, 0, false}, // restarted in between
		{s(0, 1), s(time.Second, 1), 0, 0, false},
	} {
		got, ok := CPUPercent(c.before, c.after, c.wall)
		if got != c.want || ok != c.ok {
			t.Errorf("CPUPercent(%v, %v, %v) = %v %v, want %v %v", c.before, c.after, c.wall, got, ok, c.want, c.ok)
		}
	}
}
