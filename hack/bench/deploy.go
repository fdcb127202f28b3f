package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testlibvirt"
	"github.com/kiln-project/kiln/registry"
)

// benchDeploy compares, on one libvirtd (the test harness's, in its own
// mount namespace) and the app-host example's image, a scale-out from 0 to
// 8 instances:
//
//	kiln deploy apply            (one base volume, a copy-on-write overlay and a seed per instance)
//	a copy per instance, by hand (qemu-img convert of the image per instance, virsh define + start)
//
// until every domain runs, and the disk each instance costs. Targets: kiln
// at least 3x faster to running, at most 1% of the image's size per
// instance. Then the time until all 8 of kiln's answer their health check
// (HTTP on the first declared port, through its 127.0.0.1 forward): boot-
// bound under TCG on 2 cores, reported with no baseline.
func benchDeploy() ([]string, error) {
	ctx := context.Background()
	kiln, err := filepath.Abs("_output/bin/kiln")
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kiln-bench-deploy")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	img := filepath.Join(work, "app-host.qcow2")
	if err := bakeExample(kiln, "app-host", img); err != nil {
		return nil, err
	}
	st, err := os.Stat(img)
	if err != nil {
		return nil, err
	}
	d, err := testlibvirt.Launch(filepath.Join(work, "libvirt"), testlibvirt.Options{})
	if err != nil {
		return nil, err
	}
	defer d.Stop()
	recipe, _ := filepath.Abs("examples/app-host.yaml")
	fleet := filepath.Join(work, "fleet.yaml")
	os.WriteFile(fleet, []byte(fmt.Sprintf("apiVersion: kiln/v1\nkind: ScaleSet\nname: bench\nimage: ./app-host.qcow2\nrecipe: %s\ncapacity: 8\nsize: {memory: 256MiB}\nhosts: [\"%s\"]\n", recipe, d.URI)), 0o644)
	f, err := deploy.LoadFleet(fleet)
	if err != nil {
		return nil, err
	}
	r, err := deploy.Resolve(ctx, f.Sets[0], registry.New(registry.Options{}), work)
	if err != nil {
		return nil, err
	}
	h, err := deploy.DialLibvirt(d.URI, deploy.LibvirtOptions{Accel: qemu.TCG})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	hosts := deploy.Hosts{d.URI: h}

	start := time.Now()
	desired, err := r.Desired(nil)
	if err != nil {
		return nil, err
	}
	seeds := time.Since(start)
	if _, err := deploy.Apply(ctx, hosts, []string{"bench"}, desired, deploy.ApplyOptions{}); err != nil {
		return nil, err
	}
	kilnTook := time.Since(start)
	pool := filepath.Join(d.Dir, "lib", "images", "kiln")
	perInstance := instanceBytes(pool, 8)
	healthy := waitHealthy(ctx, h, f.Sets[0].Network.Ports, 8, 30*time.Minute)
	healthTook := time.Since(start)
	booted := instanceBytes(pool, 8)
	// The load balancer on real instances (issue 15): a client straight to
	// one guest's forward, against the same client through HAProxy over
	// three guests' forwards.
	var lbLines []string
	if insts, _, err := h.Instances(ctx); err == nil && healthy == 8 {
		var addrs []string
		for _, in := range insts {
			if p := in.Ports[8080]; p > 0 && len(addrs) < 3 {
				addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
			}
		}
		lines, err := lbThroughput(ctx, addrs)
		if err != nil {
			return nil, fmt.Errorf("load balancer: %w", err)
		}
		for _, l := range lines {
			lbLines = append(lbLines, "lb over 3 app-host guests: "+l)
		}
	}
	if _, err := deploy.Apply(ctx, hosts, []string{"bench"}, nil, deploy.ApplyOptions{}); err != nil {
		return nil, err
	}

	// The baseline: a full copy per instance, defined and started by virsh.
	copies := filepath.Join(d.Dir, "lib", "images", "copies")
	os.MkdirAll(copies, 0o755)
	start = time.Now()
	for i := 0; i < 8; i++ {
		disk := filepath.Join(copies, fmt.Sprintf("copy-%d.qcow2", i))
		if out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", img, disk).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("qemu-img convert: %v\n%s", err, out)
		}
		dom := &libvirtxml.Domain{Type: "qemu", Name: fmt.Sprintf("copy-%d", i),
			Memory: &libvirtxml.DomainMemory{Value: 256, Unit: "MiB"},
			OS:     &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "pc", Type: "hvm"}},
			Devices: &libvirtxml.DomainDeviceList{Disks: []libvirtxml.DomainDisk{{Device: "disk",
				Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2"},
				Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: "/var/lib/libvirt/images/copies/" + filepath.Base(disk)}},
				Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"}}}}}
		x, err := dom.Marshal()
		if err != nil {
			return nil, err
		}
		xml := filepath.Join(work, fmt.Sprintf("copy-%d.xml", i))
		os.WriteFile(xml, []byte(x), 0o644)
		for _, args := range [][]string{{"define", xml}, {"start", fmt.Sprintf("copy-%d", i)}} {
			if out, err := exec.Command("virsh", append([]string{"-c", d.URI}, args...)...).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("virsh %v: %v\n%s", args, err, out)
			}
		}
	}
	copyTook := time.Since(start)
	copyPer := allocated(filepath.Join(copies, "copy-0.qcow2"))
	for i := 0; i < 8; i++ {
		exec.Command("virsh", "-c", d.URI, "destroy", fmt.Sprintf("copy-%d", i)).Run()
	}
	ratio := copyTook.Seconds() / kilnTook.Seconds()
	share := float64(perInstance) / float64(st.Size())
	return append([]string{
		fmt.Sprintf("scale-out 0 -> 8 of app-host (%d MB image) until every domain runs", st.Size()/1e6),
		fmt.Sprintf("kiln deploy apply %s, copies by hand %s: kiln %.1fx faster   (target >= 3x: %s)", kilnTook.Round(time.Millisecond), copyTook.Round(time.Millisecond), ratio, okIf(ratio >= 3)),
		fmt.Sprintf("of kiln's time: %s making the 8 seeds (rendered and validated)", seeds.Round(time.Millisecond)),
		healthLine(healthy, healthTook),
		fmt.Sprintf("disk per instance: kiln %d KiB (%.3f%% of the image), a copy %d MiB   (target <= 1%%: %s)", perInstance>>10, 100*share, copyPer>>20, okIf(share <= 0.01)),
		fmt.Sprintf("disk per instance once booted to health: %d MiB (what the guest wrote: grown root, journal, cloud-init)", booted>>20),
	}, lbLines...), nil
}

// waitHealthy polls every instance's first forwarded port until all n
// answer HTTP 200, or wait passes; it returns how many answered.
func waitHealthy(ctx context.Context, h *deploy.Libvirt, ports []int, n int, wait time.Duration) int {
	if len(ports) == 0 {
		return 0
	}
	client := &http.Client{Timeout: 5 * time.Second}
	ok := map[string]bool{}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && len(ok) < n; {
		insts, _, err := h.Instances(ctx)
		if err != nil {
			return len(ok)
		}
		for _, in := range insts {
			if ok[in.Name] || in.Ports[ports[0]] == 0 {
				continue
			}
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", in.Ports[ports[0]]))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok[in.Name] = true
				}
			}
		}
		time.Sleep(2 * time.Second) // polling guests that are still booting
	}
	return len(ok)
}

func healthLine(healthy int, took time.Duration) string {
	if healthy < 8 {
		return fmt.Sprintf("health: only %d of 8 answered within %s (FAILED)", healthy, took.Round(time.Second))
	}
	return fmt.Sprintf("all 8 answer their health check %s after the scale-out began (8 TCG boots on this machine's cores)", took.Round(time.Second))
}

// instanceBytes is the disk the n instances of set bench take on average:
// overlay, seed and console log.
func instanceBytes(pool string, n int) int64 {
	var sum int64
	for i := 0; i < n; i++ {
		for _, f := range []string{"bench-%d.qcow2", "bench-%d-seed.iso", "bench-%d-console.log"} {
			sum += allocated(filepath.Join(pool, fmt.Sprintf(f, i)))
		}
	}
	return sum / int64(n)
}

// allocated is the disk space a file takes (images are sparse).
func allocated(path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}
