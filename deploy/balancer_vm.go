package deploy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/kiln-project/kiln/iso"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/seed"
)

// A set whose loadBalancer has placement: vm gets one more domain beside
// its instances, NAME-lb: a VM of kiln's proxy role whose HAProxy the
// controller configures (package lb, over SSH). It is the set's, not one of
// its instances: capacity, upgrades, repairs and apply never count it.

// BalancerVMName is the domain of set's balancer VM.
func BalancerVMName(set string) string { return set + "-lb" }

// BalancerVMSet is what a balancer VM records as its set. No set name has
// a '/', so nothing takes it for one of the set's instances; Diff leaves
// it to the controller, and destroying the set removes it too.
func BalancerVMSet(set string) string { return set + "/lb" }

// OwnerOfBalancerVM is the set a balancer VM's recorded set names, or false.
func OwnerOfBalancerVM(metaSet string) (string, bool) {
	return strings.CutSuffix(metaSet, "/lb")
}

const (
	// BalancerVMUser is the account kiln logs in to a balancer VM as (its
	// key is in the controller's state directory).
	BalancerVMUser = "kiln-lb"
	// BalancerGuestPort is the port HAProxy binds in a balancer VM; the
	// set's listen address is forwarded to it.
	BalancerGuestPort = 80
	// BalancerSSHPort is the VM's sshd, forwarded to a free 127.0.0.1 port.
	BalancerSSHPort = 22
)

// BalancerImageSet is what the set's balancer image is resolved as
// (Resolve): errors about it point at loadBalancer.image.
func (s *Set) BalancerImageSet() *Set {
	return &Set{
		Name:  BalancerVMName(s.Name),
		Image: s.LoadBalancer.Image,
		Hosts: s.Hosts[:min(1, len(s.Hosts))],
		Size:  Size{VCPUs: 1, Memory: recipes.Size(int64(s.LoadBalancer.MemoryMiB) << 20)},
		pos:   recipes.Positions{"": s.pos.Of("loadBalancer"), "image": s.pos.Of("loadBalancer.image")},
	}
}

// BalancerVM is the set's balancer VM as it should be, from its image
// resolved (r, of BalancerImageSet): on the set's first host, one vCPU,
// kiln's account with authorizedKey and sudo, sshd and the listen address
// forwarded.
func BalancerVM(s *Set, r *Resolved, authorizedKey string) (Desired, error) {
	if m := r.Set.Image.Manifest; m != nil && !slices.Contains(m.Recipe.Roles, "proxy") {
		return Desired{}, &recipes.Error{Pos: s.Position("loadBalancer.image"), Path: "loadBalancer.image",
			Msg: fmt.Sprintf("%s was baked from recipe %q with roles %v, not the proxy role: bake one from a recipe with roles: [proxy] (examples/proxy.yaml)", r.Set.Image.Ref, m.Recipe.Name, m.Recipe.Roles)}
	}
	if len(s.Hosts) == 0 {
		return Desired{}, fmt.Errorf("set %s has no host for its balancer VM", s.Name)
	}
	name := BalancerVMName(s.Name)
	rec := &recipes.Recipe{APIVersion: recipes.APIVersion, Name: name}
	recipes.Default(rec)
	plan, err := recipes.Compile(rec)
	if err != nil {
		return Desired{}, err
	}
	sd, err := plan.Seed(recipes.Instance{Name: name, ExtraUsers: []recipes.User{
		{Name: BalancerVMUser, Sudo: true, SSHAuthorizedKeys: []string{authorizedKey}},
	}}, recipes.StageBoot, plan.Recipe.EnvResolver())
	if err != nil {
		return Desired{}, err
	}
	var iso9660 bytes.Buffer
	if err := iso.Write(&iso9660, iso.Options{Format: iso.ISO9660}, seed.Files(sd)); err != nil {
		return Desired{}, err
	}
	spec := InstanceSpec{
		Name:      name,
		Meta:      Metadata{Set: BalancerVMSet(s.Name), Image: r.Digest, Source: r.source()},
		BasePath:  r.Path,
		DiskBytes: int64(r.Set.Size.Disk),
		VCPUs:     1,
		MemoryMiB: s.LoadBalancer.MemoryMiB,
		Firmware:  r.Set.Firmware,
		Seed:      iso9660.Bytes(),
		Network:   "user",
		Ports:     []int{BalancerSSHPort},
		Listen:    map[int]string{BalancerGuestPort: s.LoadBalancer.Listen},
	}
	spec.Meta.Spec = specHash(spec)
	return Desired{Host: s.Hosts[0], Spec: spec}, nil
}
