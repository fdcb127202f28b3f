package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/lb"
	"github.com/kiln-project/kiln/deploy/view"
	"github.com/kiln-project/kiln/internal/guestssh"
)

// A set with loadBalancer placement vm has its HAProxy in NAME-lb, a VM of
// kiln's proxy role on the set's first host (deploy.BalancerVM). The
// controller makes it, logs in over SSH with a key kept in the set's
// balancer directory, and drives it as it drives a host balancer (package
// lb, through lb.Guest). The instances are reached from the VM at user
// networking's gateway, which is the host's 127.0.0.1: their forwards.

// userNetGateway is the host's loopback as a QEMU user-networking guest
// reaches it.
var userNetGateway = netip.MustParseAddr("10.0.2.2")

// sshWait bounds one attempt to log in to a balancer VM: a booting VM is
// tried again next tick, not waited for while the set's other work waits.
const sshWait = 5 * time.Second

// vmGuest is the SSH connection to a set's balancer VM: lb.Guest.
type vmGuest struct {
	incarnation string // the VM it reaches (image and spec): another VM, another connection
	ssh         *guestssh.Client
	gone        chan struct{} // closed when the connection ends
}

func (g *vmGuest) DialUnix(ctx context.Context, path string) (net.Conn, error) {
	return g.ssh.DialUnix(ctx, path)
}

func (g *vmGuest) Run(ctx context.Context, cmd string, stdin []byte) (string, int, error) {
	return g.ssh.RunRoot(ctx, cmd, stdin)
}

func (g *vmGuest) User() string { return deploy.BalancerVMUser }

func (g *vmGuest) alive() bool {
	select {
	case <-g.gone:
		return false
	default:
		return true
	}
}

// balanceVM keeps the set's balancer VM made, logged in to and in step
// with the set's instances.
func (c *Controller) balanceVM(ctx context.Context, hosts deploy.Hosts, s *deploy.Set, servers []lb.Server) error {
	if b := c.balancers[s.Name]; b != nil && !b.InGuest() {
		// The fleet file moved it from this host into a VM.
		if err := b.Stop(ctx); err != nil {
			return err
		}
		delete(c.balancers, s.Name)
	}
	vm, err := c.ensureBalancerVM(ctx, hosts, s)
	if err != nil {
		return err
	}
	b, err := c.guestBalancer(ctx, s, vm, servers)
	if err != nil {
		return err
	}
	if err := b.Set(ctx, inGuest(servers)); err != nil {
		if g := c.lbGuests[s.Name]; g != nil && !g.alive() {
			c.dropGuest(s.Name) // the VM went away: log in again next tick
		}
		return err
	}
	return nil
}

// balancerPlan is a set's balancer VM as it should be, with the key kiln
// logs in with: made once per fleet file read (the seed is rendered, the
// image resolved), not at every tick.
type balancerPlan struct {
	key  *guestssh.Key
	want deploy.Desired
}

func (c *Controller) balancerPlan(ctx context.Context, s *deploy.Set) (*balancerPlan, error) {
	if p, ok := c.lbPlans[s.Name]; ok {
		return p, nil
	}
	dir := c.balancerDir(s.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := guestssh.LoadOrMakeKey(filepath.Join(dir, "id_ed25519"), "kiln-deploy")
	if err != nil {
		return nil, err
	}
	res, err := c.opts.Resolve(ctx, s.BalancerImageSet())
	if err != nil {
		return nil, err
	}
	want, err := deploy.BalancerVM(s, res, key.AuthorizedKey)
	if err != nil {
		return nil, err
	}
	p := &balancerPlan{key: key, want: want}
	c.lbPlans[s.Name] = p
	return p, nil
}

// ensureBalancerVM makes, remakes or starts the set's balancer VM and
// returns it as the host reports it.
func (c *Controller) ensureBalancerVM(ctx context.Context, hosts deploy.Hosts, s *deploy.Set) (deploy.Instance, error) {
	plan, err := c.balancerPlan(ctx, s)
	if err != nil {
		return deploy.Instance{}, err
	}
	want := plan.want
	h, ok := hosts[want.Host]
	if !ok {
		return deploy.Instance{}, fmt.Errorf("balancer VM: no host %s", want.Host)
	}
	have, found, err := c.balancerVM(ctx, hosts, s)
	if err != nil {
		return deploy.Instance{}, err
	}
	name := want.Spec.Name
	switch {
	case !found || have.State == deploy.Partial:
		c.event(s.Name, name, view.EventBalancer, fmt.Sprintf("load balancer VM %s created on %s from %s", name, want.Host, s.LoadBalancer.Image.Ref))
		if err := h.Create(ctx, want.Spec); err != nil {
			return deploy.Instance{}, fmt.Errorf("balancer VM %s: %w", name, err)
		}
	case have.Host != want.Host || have.Meta.Image != want.Spec.Meta.Image || have.Meta.Spec != want.Spec.Meta.Spec:
		c.event(s.Name, name, view.EventBalancer, fmt.Sprintf("load balancer VM %s made again: its image, size or listen address changed", name))
		c.dropGuest(s.Name)
		if hh, ok := hosts[have.Host]; ok {
			if err := hh.Delete(ctx, name); err != nil {
				return deploy.Instance{}, fmt.Errorf("balancer VM %s: %w", name, err)
			}
		}
		if err := h.Create(ctx, want.Spec); err != nil {
			return deploy.Instance{}, fmt.Errorf("balancer VM %s: %w", name, err)
		}
	case have.State == deploy.Stopped || have.State == deploy.Crashed:
		c.event(s.Name, name, view.EventBalancer, fmt.Sprintf("load balancer VM %s was %s: started", name, have.State))
		c.dropGuest(s.Name)
		if err := h.Start(ctx, name); err != nil {
			return deploy.Instance{}, fmt.Errorf("balancer VM %s: %w", name, err)
		}
	default:
		return have, nil
	}
	have, found, err = c.balancerVM(ctx, hosts, s)
	if err == nil && !found {
		err = fmt.Errorf("balancer VM %s: created, but its host does not list it", name)
	}
	return have, err
}

// balancerVM finds the set's balancer VM on the hosts.
func (c *Controller) balancerVM(ctx context.Context, hosts deploy.Hosts, s *deploy.Set) (deploy.Instance, bool, error) {
	vms, err := c.observe(ctx, hosts, deploy.BalancerVMSet(s.Name))
	if err != nil || len(vms) == 0 {
		return deploy.Instance{}, false, err
	}
	return vms[0], true, nil
}

// guestBalancer returns the balancer in the VM: this controller's, one a
// previous controller configured (attached), or a new one, once the VM
// lets kiln in.
func (c *Controller) guestBalancer(ctx context.Context, s *deploy.Set, vm deploy.Instance, servers []lb.Server) (*lb.Balancer, error) {
	inc := incarnation(vm)
	g := c.lbGuests[s.Name]
	if g != nil && (g.incarnation != inc || !g.alive()) {
		c.dropGuest(s.Name)
		g = nil
	}
	if b := c.balancers[s.Name]; g != nil && b != nil {
		return b, nil
	}
	if g == nil {
		port, ok := vm.Ports[deploy.BalancerSSHPort]
		if !ok || vm.State != deploy.Running {
			return nil, fmt.Errorf("balancer VM %s is %s, without its ssh forward", vm.Name, vm.State)
		}
		plan, err := c.balancerPlan(ctx, s)
		if err != nil {
			return nil, err
		}
		dctx, cancel := context.WithTimeout(ctx, sshWait)
		client, err := guestssh.Dial(dctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), deploy.BalancerVMUser, plan.key, nil)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("balancer VM %s does not let kiln in yet (booting?): %w", vm.Name, err)
		}
		g = &vmGuest{incarnation: inc, ssh: client, gone: make(chan struct{})}
		go func() { client.Wait(); close(g.gone) }()
		c.lbGuests[s.Name] = g
	}
	dir := c.balancerDir(s.Name)
	b, err := lb.AttachGuest(ctx, dir, g, nil)
	if errors.Is(err, lb.ErrNotRunning) {
		b, err = lb.Start(ctx, lb.Config{Name: s.Name, Listen: netip.AddrPortFrom(netip.IPv4Unspecified(), deploy.BalancerGuestPort).String(),
			Balance: lb.Balance(s.LoadBalancer.Balance), Dir: dir, Guest: g}, inGuest(servers))
		if err == nil {
			c.event(s.Name, vm.Name, view.EventBalancer, fmt.Sprintf("HAProxy in %s balances %s, from %s", vm.Name, s.Name, s.LoadBalancer.Listen))
		}
	}
	if err != nil {
		if !g.alive() {
			c.dropGuest(s.Name)
		}
		return nil, err
	}
	c.balancers[s.Name] = b
	return b, nil
}

// dropGuest forgets the set's connection to its balancer VM (and the
// balancer reached through it).
func (c *Controller) dropGuest(set string) {
	if g := c.lbGuests[set]; g != nil {
		g.ssh.Close()
		delete(c.lbGuests, set)
		if b := c.balancers[set]; b != nil && b.InGuest() {
			delete(c.balancers, set)
		}
	}
}

// removeBalancerVM deletes the set's balancer VM, if it has one: its load
// balancer is off, or back on the host.
func (c *Controller) removeBalancerVM(ctx context.Context, hosts deploy.Hosts, s *deploy.Set) error {
	if b := c.balancers[s.Name]; b != nil && b.InGuest() {
		delete(c.balancers, s.Name)
	}
	c.dropGuest(s.Name)
	vm, found, err := c.balancerVM(ctx, hosts, s)
	if err != nil || !found {
		return err
	}
	h, ok := hosts[vm.Host]
	if !ok {
		return fmt.Errorf("balancer VM %s is on host %s, which the fleet file no longer lists; add it back to remove the VM", vm.Name, vm.Host)
	}
	c.event(s.Name, vm.Name, view.EventBalancer, fmt.Sprintf("load balancer VM %s deleted: the set's load balancer is no longer in a VM", vm.Name))
	return h.Delete(ctx, vm.Name)
}

// inGuest rewrites the instances' addresses as the balancer VM reaches
// them: a forward on the host's 127.0.0.1 is at the user-networking
// gateway; an address on a libvirt network stays what it is.
func inGuest(servers []lb.Server) []lb.Server {
	out := make([]lb.Server, len(servers))
	for i, sv := range servers {
		if ap, err := netip.ParseAddrPort(sv.Addr); err == nil && ap.Addr().IsLoopback() {
			sv.Addr = netip.AddrPortFrom(userNetGateway, ap.Port()).String()
		}
		out[i] = sv
	}
	return out
}
