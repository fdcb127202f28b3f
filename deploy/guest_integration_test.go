package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/kiln-project/kiln/builder"
	"github.com/kiln-project/kiln/internal/testlibvirt"
	"github.com/kiln-project/kiln/internal/testutil"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/registry"
)

// A real guest: the app-host example's image (baked through the shared
// test cache, so usually a copy), deployed by a fleet file as a set of one
// on a real libvirtd, boots under TCG from its overlay with its own seed,
// and its app answers through the port forwarded on 127.0.0.1.
func TestFleetGuestAnswers(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedGuest(t)
	ctx := context.Background()
	d := testlibvirt.Start(t, testlibvirt.Options{})
	fleet := appHostFleet(t, d, "")
	h, hosts := applyFleet(t, d, fleet)
	insts, _, err := h.Instances(ctx)
	if err != nil || len(insts) != 1 || insts[0].Ports[8080] == 0 {
		t.Fatalf("instances: %+v %v", insts, err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", insts[0].Ports[8080])
	deadline := time.Now().Add(8 * time.Minute)
	var last string
	// While the guest boots, its console is followed as kiln deploy
	// console --follow does: every read returns (a download racing the
	// guest's writes once wedged go-libvirt), and the pieces add up.
	var followed strings.Builder
	var offset int64
	for time.Now().Before(deadline) {
		read := make(chan error, 1)
		go func() {
			var err error
			offset, err = h.Console(ctx, "hello-0", offset, &followed)
			read <- err
		}()
		select {
		case err := <-read:
			if err != nil {
				t.Fatalf("console at offset %d: %v", offset, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("reading the console from offset %d did not return", offset)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), "hello from kiln") {
				t.Logf("the instance answered on %s: %q", url, strings.TrimSpace(string(body)))
				break
			}
			last = fmt.Sprintf("%s: %q", resp.Status, body)
		} else {
			last = err.Error()
		}
		time.Sleep(2 * time.Second) // polling a guest that is still booting
	}
	// The serial log, read over libvirt's protocol as kiln deploy console
	// does, holds the boot.
	var console strings.Builder
	if _, err := h.Console(ctx, "hello-0", 0, &console); err != nil {
		t.Error(err)
	}
	if !time.Now().Before(deadline) {
		t.Fatalf("no answer from %s before the deadline (last: %s); console:\n%s", url, last, tail(console.String(), 3000))
	}
	if !strings.Contains(console.String(), "Linux version") {
		t.Errorf("the console log lacks the kernel's boot:\n%s", tail(console.String(), 3000))
	}
	if f := followed.String(); len(f) == 0 || !strings.HasPrefix(console.String(), f) {
		t.Errorf("followed console (%d bytes) is not the start of the log (%d bytes)", len(f), console.Len())
	}
	// Read on from an offset: only what follows it.
	var rest strings.Builder
	half := int64(console.Len() / 2)
	// (the guest may have written more since: the log only grows)
	if next, err := h.Console(ctx, "hello-0", half, &rest); err != nil || !strings.HasPrefix(rest.String(), console.String()[half:]) || next != half+int64(rest.Len()) {
		t.Errorf("console from offset %d: next %d, err %v", half, next, err)
	}
	if _, err := Apply(ctx, hosts, []string{"hello"}, nil, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// appHostImage bakes the app-host example's image (through the shared test
// cache, so usually a copy) into a temp dir, manifest beside it.
func appHostImage(t *testing.T) string {
	t.Helper()
	plan, err := recipes.LoadPlan("../examples/app-host.yaml")
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "app-host.qcow2")
	b := builder.New(builder.Options{CacheDir: testutil.CacheDir(t)})
	if _, err := b.Bake(context.Background(), plan, img); err != nil {
		t.Fatal(err)
	}
	return img
}

// appHostFleet bakes the app-host example's image (through the shared
// test cache, so usually a copy) and writes a fleet file of one instance of
// it, set hello, on the daemon; network is the set's network: line, if any.
func appHostFleet(t *testing.T, d *testlibvirt.Daemon, network string) string {
	t.Helper()
	img := appHostImage(t)
	dir := filepath.Dir(img)
	recipe, err := filepath.Abs("../examples/app-host.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fleet := filepath.Join(dir, "fleet.yaml")
	os.WriteFile(fleet, []byte(fmt.Sprintf(`apiVersion: kiln/v1
kind: ScaleSet
name: hello
image: ./app-host.qcow2
recipe: %s
capacity: 1
size: {memory: 512MiB}
hosts: ["%s"]
%s
`, recipe, d.URI, network)), 0o644)
	return fleet
}

// On a libvirt network: an isolated network (bridge and dnsmasq inside the
// network namespace the harness made for libvirtd, so its addresses never
// meet the host's), an instance attached to it by name gets a DHCP lease,
// Instances reports that address, and the app answers there.
func TestFleetGuestOnNetwork(t *testing.T) {
	testutil.Integration(t)
	testutil.NeedGuest(t)
	ctx := context.Background()
	d := testlibvirt.Start(t, testlibvirt.Options{NetNS: true})
	// 198.18.0.0/15 is for benchmarks and tests (RFC 2544), and lives only
	// in the namespace.
	netDoc := &libvirtxml.Network{Name: "kiln-test", Bridge: &libvirtxml.NetworkBridge{Name: "kilntest0"},
		IPs: []libvirtxml.NetworkIP{{Address: "198.18.0.1", Prefix: 24,
			DHCP: &libvirtxml.NetworkDHCP{Ranges: []libvirtxml.NetworkDHCPRange{{Start: "198.18.0.10", End: "198.18.0.99"}}}}}}
	x, err := netDoc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	netXML := filepath.Join(t.TempDir(), "net.xml")
	os.WriteFile(netXML, []byte(x), 0o644)
	virsh(t, d.URI, "net-define", netXML)
	virsh(t, d.URI, "net-start", "kiln-test")

	fleet := appHostFleet(t, d, "network: {mode: network, name: kiln-test}")
	h, hosts := applyFleet(t, d, fleet)
	if x := virsh(t, d.URI, "domiflist", "hello-0"); !strings.Contains(x, "kiln-test") {
		t.Errorf("hello-0 is not on network kiln-test:\n%s", x)
	}
	// The guest's address exists only in libvirtd's network namespace:
	// curl runs there.
	get := func(url string) (string, error) {
		out, err := exec.Command(testutil.NeedTool(t, "nsenter"), "--net="+d.NetNS(), testutil.NeedTool(t, "curl"), "-fsS", "--max-time", "5", url).CombinedOutput()
		return string(out), err
	}
	deadline := time.Now().Add(8 * time.Minute)
	var addr, last string
	for ; time.Now().Before(deadline); time.Sleep(2 * time.Second) { // polling a guest that is still booting
		insts, _, err := h.Instances(ctx)
		if err != nil || len(insts) != 1 {
			t.Fatalf("instances: %+v %v", insts, err)
		}
		if addr = insts[0].Address; addr == "" {
			last = "no DHCP lease yet"
			continue
		}
		if !strings.HasPrefix(addr, "198.18.0.") || len(insts[0].Ports) != 0 {
			t.Fatalf("address %q (ports %v): want one of kiln-test's, and no forwards", addr, insts[0].Ports)
		}
		body, err := get("http://" + addr + ":8080/")
		if err == nil && strings.Contains(body, "hello from kiln") {
			t.Logf("the instance answered at %s: %q", addr, strings.TrimSpace(body))
			break
		}
		last = fmt.Sprintf("%v: %s", err, body)
	}
	if !time.Now().Before(deadline) {
		var console strings.Builder
		h.Console(ctx, "hello-0", 0, &console)
		t.Fatalf("no answer on kiln-test before the deadline (address %q, last: %s); console:\n%s", addr, last, tail(console.String(), 3000))
	}
	if _, err := Apply(ctx, hosts, []string{"hello"}, nil, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
}

// applyFleet applies the fleet file (one set, hello) on the daemon and
// returns the host, connected until the test ends.
func applyFleet(t *testing.T, d *testlibvirt.Daemon, fleet string) (*Libvirt, Hosts) {
	t.Helper()
	ctx := context.Background()
	f, err := LoadFleet(fleet)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(ctx, f.Sets[0], registry.New(registry.Options{}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	desired, err := r.Desired(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := libvirtHost(t, d)
	hosts := Hosts{d.URI: h}
	if _, err := Apply(ctx, hosts, []string{"hello"}, desired, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	return h, hosts
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
