package view

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/health"
)

// fakeSource is a controller whose snapshot the test changes.
type fakeSource struct {
	mu    sync.Mutex
	snap  Snapshot
	err   error
	calls int
}

func newFakeSource(s Snapshot) *fakeSource { return &fakeSource{snap: s} }

// Snapshot returns a deep copy, as a controller returns what it holds
// while it goes on changing it.
func (f *fakeSource) Snapshot(ctx context.Context) (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return Snapshot{}, f.err
	}
	return deepCopy(f.snap), nil
}

func (f *fakeSource) change(fn func(s *Snapshot)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.snap)
}

func (f *fakeSource) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func deepCopy(s Snapshot) Snapshot {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var c Snapshot
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

const (
	oldDigest = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	newDigest = "sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
	edgeImage = "sha256:fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13"
)

// hostileReason is a health reason that would run script, were it ever
// taken as markup.
const hostileReason = `GET /healthz: status 503, want 200 (body "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">")`

// sample is a fleet in the middle of a rolling upgrade: web (a scale set
// behind a load balancer, one instance unhealthy) and edge (an
// availability set).
func sample() Snapshot {
	web := SetView{Name: "web", Kind: deploy.ScaleSet, Capacity: 3, FaultDomains: 3, UpdateDomains: 3,
		Image:        ImageView{Ref: "oci://registry.example.com/team/web:1.3", Digest: newDigest},
		LoadBalancer: &LoadBalancerView{Listen: "127.0.0.1:8080"},
		Upgrade:      &UpgradeView{From: oldDigest, To: newDigest, Status: UpgradeWaiting, Batch: 2, Batches: 3},
		Autoscale:    "2–6 instances; out when cpu average > 70% over 5m, in when < 25% over 10m; last: no change (cpu 41%)",
	}
	for i, in := range []struct {
		health  health.Status
		reason  string
		digest  string
		lb      Membership
		protect bool
	}{
		{health.Healthy, "2 probes in a row passed", newDigest, InLoadBalancer, false},
		{health.Healthy, "2 probes in a row passed", newDigest, InLoadBalancer, false},
		{health.Unhealthy, hostileReason, oldDigest, OutLoadBalancer, true},
	} {
		web.Instances = append(web.Instances, InstanceView{
			Name: "web-" + string(rune('0'+i)), Host: "qemu:///system", State: deploy.Running,
			Health: in.health, HealthReason: in.reason, FaultDomain: i % 3, UpdateDomain: i % 3, Digest: in.digest,
			Forwards:     []Forward{{GuestPort: 8080, HostPort: 40001 + i}},
			LoadBalancer: in.lb, ProtectFromScaleIn: in.protect,
		})
	}
	edge := SetView{Name: "edge", Kind: deploy.AvailabilitySet, Capacity: 2, FaultDomains: 2, UpdateDomains: 2,
		Image: ImageView{Ref: "oci://registry.example.com/team/proxy:1.0", Digest: edgeImage}}
	for i := range 2 {
		edge.Instances = append(edge.Instances, InstanceView{
			Name: "edge-" + string(rune('0'+i)), Host: "qemu:///system", State: deploy.Running,
			Health: health.Healthy, HealthReason: "2 probes in a row passed", FaultDomain: i, UpdateDomain: i,
			Digest: edgeImage, Address: "198.51.100." + string(rune('2'+i)),
		})
	}
	return Snapshot{Fleet: "fleet.yaml", At: t0, Sets: []SetView{web, edge}, Events: []Event{
		{At: t0.Add(-9 * time.Minute), Set: "web", Kind: EventScaled, Message: "capacity 2 → 3 (kiln deploy scale)"},
		{At: t0.Add(-5 * time.Minute), Set: "web", Kind: EventUpgradeStarted, Message: "upgrade to " + newDigest[:19] + ": 3 batches of 1"},
		{At: t0.Add(-4 * time.Minute), Set: "web", Instance: "web-0", Kind: EventUpgradeBatch, Message: "batch 1 of 3: web-0 replaced, healthy"},
		{At: t0.Add(-2 * time.Minute), Set: "web", Instance: "web-1", Kind: EventUpgradeBatch, Message: "batch 2 of 3: web-1 replaced, healthy"},
		{At: t0.Add(-1 * time.Minute), Set: "web", Instance: "web-2", Kind: EventHealth, Message: "unhealthy: " + hostileReason},
	}}
}
