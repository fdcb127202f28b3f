package controller

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/lb"
	"github.com/kiln-project/kiln/manifest"
)

// proxyImage writes an image baked with the proxy role.
func (d *fleetDir) proxyImage(t *testing.T, name string) string {
	t.Helper()
	digest := d.image(t, name)
	path := manifest.PathFor(filepath.Join(d.dir, name+".qcow2"))
	m, err := manifest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	m.Recipe.Name, m.Recipe.Roles = "proxy", []string{"proxy"}
	if err := manifest.Write(path, m); err != nil {
		t.Fatal(err)
	}
	return digest
}

// The balancer VM's life as the controller sees it, on the fake host (no
// guest to log in to: the real one is cmd/kiln's TestDeployCLI): made once
// beside the set, not counted as an instance, remade when its image
// changes, refused when the image is not the proxy role's, and deleted
// when the balancer goes back to the host, which then serves.
func TestBalancerVMPlacement(t *testing.T) {
	needHAProxy(t)
	d := newFleetDir(t)
	d.image(t, "v1")
	p1 := d.proxyImage(t, "proxy1")
	p2 := d.proxyImage(t, "proxy2")
	listen := fmt.Sprintf("127.0.0.1:%d", tcpPort(t))
	fleet := func(lb string) string {
		return d.fleet(t, `apiVersion: kiln/v1
kind: ScaleSet
name: web
image: ./v1.qcow2
recipe: ./web.yaml
capacity: 2
health: {interval: 1s, probes: 2}
loadBalancer: {listen: `+listen+lb+`}
`)
	}
	file := fleet(", placement: vm, image: ./proxy1.qcow2")
	h := newServerHost(t, nil)
	c := newController(t, file, filepath.Join(d.dir, "state"), h)
	defer c.Close()
	defer c.StopBalancers(context.Background())
	ctx := context.Background()
	lbVM := func() (deploy.Instance, bool) {
		insts, _, _ := h.Instances(ctx)
		for _, in := range insts {
			if in.Name == "web-lb" {
				return in, true
			}
		}
		return deploy.Instance{}, false
	}
	for range 3 {
		err := c.Tick(ctx)
		if err == nil || !strings.Contains(err.Error(), "balancer VM web-lb is running, without its ssh forward") {
			t.Fatalf("tick on a host whose VMs have no sshd: %v", err)
		}
	}
	vm, ok := lbVM()
	if !ok || vm.Meta.Set != "web/lb" || vm.Meta.Image != p1 || h.creates["web-lb"] != 1 {
		t.Fatalf("web-lb: %+v (found %v), made %d times", vm, ok, h.creates["web-lb"])
	}
	all, _, _ := h.Instances(ctx)
	if n := len(instancesOf("web", all)); n != 2 {
		t.Errorf("web has %d instances, want 2: the balancer VM is not one", n)
	}
	// A new proxy image: the VM is made again from it.
	write(t, file, strings.Replace(readFile(t, file), "proxy1.qcow2", "proxy2.qcow2", 1))
	c.Tick(ctx)
	if vm, _ := lbVM(); vm.Meta.Image != p2 || h.creates["web-lb"] != 2 || !slices.Contains(h.log, "delete web-lb") {
		t.Errorf("after the image changed: web-lb on %s, made %d times\n%v", vm.Meta.Image, h.creates["web-lb"], h.log)
	}
	// An image of another role is refused, where the file names it.
	write(t, file, strings.Replace(readFile(t, file), "proxy2.qcow2", "v1.qcow2", 1))
	if err := c.Tick(ctx); err == nil || !strings.Contains(err.Error(), "fleet.yaml:8:") || !strings.Contains(err.Error(), "not the proxy role") {
		t.Errorf("a balancer image without the proxy role: %v", err)
	}
	// Back on the host: the VM goes, the host's HAProxy serves.
	fleet("")
	runUntil(t, c, 30*time.Second, "the host's balancer, 2 healthy members", func() bool {
		b := c.balancers["web"]
		if b == nil || b.InGuest() {
			return false
		}
		n := 0
		for _, s := range b.Servers() {
			if s.State == lb.Ready {
				n++
			}
		}
		return n == 2
	})
	if _, ok := lbVM(); ok {
		t.Errorf("web-lb still exists with the balancer on the host: %v", h.log)
	}
	for range 4 {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			t.Fatalf("through the host's balancer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "web-") {
			t.Errorf("through the host's balancer: %d %q", resp.StatusCode, body)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
