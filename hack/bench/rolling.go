package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-project/kiln/deploy/controller"
	"github.com/kiln-project/kiln/deploy/health"
	"github.com/kiln-project/kiln/internal/digest"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/internal/testlibvirt"
	"github.com/kiln-project/kiln/manifest"
)

const (
	rollingInstances = 4
	rollingBatch     = 2 // maxBatchInstancePercent 50
)

// benchRolling runs a rolling upgrade of a scale set of 4 app-host
// instances (batches of 2, maxSurge) to a new image digest with kiln deploy
// run, on one libvirtd (the test harness's) with the host's HAProxy, and
// compares its total time, from the fleet file's change to every instance
// healthy on the new digest, with the time its instances took to boot:
//
//	ideal = the sum over batches of the batch's longest boot-to-healthy
//
// (the batches must follow each other; the instances of a batch boot side
// by side). Boot-to-healthy is from the instance's first appearance in the
// controller's snapshot to its first healthy one. Target (issue 15): total
// at most 1.2x ideal, the rest being kiln's own work (drain, delete,
// probes, the checks between batches).
//
// Before the upgrade, with the 4 guests healthy, it also measures the load
// balancer on real instances (lbThroughput over three guests' forwards;
// target at least 90% of the direct throughput at the same error rate).
func benchRolling() ([]string, error) {
	kiln, err := filepath.Abs("_output/bin/kiln")
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kr") // HAProxy's socket paths must stay short
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	img := filepath.Join(work, "app-host.qcow2")
	if err := bakeExample(kiln, "app-host", img); err != nil {
		return nil, err
	}
	next, err := recompress(img, filepath.Join(work, "app-host-2.qcow2"))
	if err != nil {
		return nil, err
	}
	d, err := testlibvirt.Launch(filepath.Join(work, "libvirt"), testlibvirt.Options{})
	if err != nil {
		return nil, err
	}
	defer d.Stop()
	recipe, _ := filepath.Abs("examples/app-host.yaml")
	port, err := qemu.FreePort("tcp")
	if err != nil {
		return nil, err
	}
	fleet := filepath.Join(work, "fleet.yaml")
	spec := func(image string) []byte {
		return []byte(fmt.Sprintf(`apiVersion: kiln/v1
kind: ScaleSet
name: roll
image: %s
recipe: %s
capacity: %d
size: {memory: 384MiB}
network: {ports: [8080]}
hosts: ["%s"]
health: {interval: 2s, gracePeriod: 5m}
loadBalancer: {listen: "127.0.0.1:%d"}
upgradePolicy: {mode: Rolling, rollingUpgradePolicy: {maxBatchInstancePercent: %d, maxUnhealthyInstancePercent: 50, maxSurge: true}}
`, image, recipe, rollingInstances, d.URI, port, 100*rollingBatch/rollingInstances))
	}
	if err := os.WriteFile(fleet, spec("./app-host.qcow2"), 0o644); err != nil {
		return nil, err
	}
	state := filepath.Join(work, "state")
	run := exec.Command(kiln, "deploy", "run", fleet, "--state-dir", state, "--stop-balancers")
	run.Env = append(os.Environ(), "KILN_CACHE_DIR="+filepath.Join(work, "cache"))
	logf, err := os.Create(filepath.Join(work, "run.log"))
	if err != nil {
		return nil, err
	}
	run.Stdout, run.Stderr = logf, logf
	if err := run.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { run.Process.Wait(); close(exited) }()
	defer func() {
		run.Process.Signal(os.Interrupt)
		<-exited
		destroy := exec.Command(kiln, "deploy", "destroy", fleet, "roll")
		destroy.Env = run.Env
		destroy.Run()
	}()
	// seen and healthy: when each instance on the new digest first showed,
	// and first showed healthy.
	seen, healthy := map[string]time.Time{}, map[string]time.Time{}
	poll := func(what string, within time.Duration, digest string) error {
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			select {
			case <-exited:
				log, _ := os.ReadFile(filepath.Join(work, "run.log"))
				return fmt.Errorf("%s: kiln deploy run ended\n%s", what, log)
			default:
			}
			snap, err := controller.ReadSnapshot(state)
			if err == nil && len(snap.Sets) == 1 {
				now, good := time.Now(), 0
				for _, in := range snap.Sets[0].Instances {
					if in.Digest != digest {
						continue
					}
					if _, ok := seen[in.Name]; !ok {
						seen[in.Name] = now
					}
					if in.Health == health.Healthy {
						if _, ok := healthy[in.Name]; !ok {
							healthy[in.Name] = now
						}
						good++
					}
				}
				if good == rollingInstances && len(snap.Sets[0].Instances) == rollingInstances {
					return nil
				}
			}
			time.Sleep(500 * time.Millisecond) // the controller writes its snapshot once a tick
		}
		log, _ := os.ReadFile(filepath.Join(work, "run.log"))
		return fmt.Errorf("%s: not within %s\n%s", what, within, log)
	}
	m, err := manifest.Read(manifest.PathFor(img))
	if err != nil {
		return nil, err
	}
	if err := poll("4 healthy instances", 20*time.Minute, m.Artifacts[0].SHA256); err != nil {
		return nil, err
	}
	// The load balancer on real instances: a client straight to one
	// guest's forward, against the same client through a HAProxy of kiln's
	// over three guests' forwards.
	var lbLines []string
	if snap, err := controller.ReadSnapshot(state); err == nil && len(snap.Sets) == 1 {
		var addrs []string
		for _, in := range snap.Sets[0].Instances {
			for _, f := range in.Forwards {
				if f.GuestPort == 8080 && len(addrs) < 3 {
					addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", f.HostPort))
				}
			}
		}
		lines, err := lbThroughput(context.Background(), addrs)
		if err != nil {
			return nil, fmt.Errorf("load balancer: %w", err)
		}
		for _, l := range lines {
			lbLines = append(lbLines, "lb over 3 app-host guests: "+l)
		}
	}
	seen, healthy = map[string]time.Time{}, map[string]time.Time{}
	start := time.Now()
	if err := os.WriteFile(fleet, spec("./app-host-2.qcow2"), 0o644); err != nil {
		return nil, err
	}
	if err := poll("the upgrade", 30*time.Minute, next); err != nil {
		return nil, err
	}
	total := time.Since(start)
	// The batches, in the order their instances appeared.
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return seen[names[i]].Before(seen[names[j]]) })
	var ideal time.Duration
	var boots []string
	for i := 0; i < len(names); i += rollingBatch {
		var longest time.Duration
		for _, n := range names[i:min(i+rollingBatch, len(names))] {
			b := healthy[n].Sub(seen[n])
			longest = max(longest, b)
			boots = append(boots, fmt.Sprintf("%s %s", n, b.Round(time.Second)))
		}
		ideal += longest
	}
	ratio := total.Seconds() / ideal.Seconds()
	return append(lbLines,
		fmt.Sprintf("rolling upgrade of %d app-host instances, batches of %d with maxSurge, through the host's HAProxy", rollingInstances, rollingBatch),
		fmt.Sprintf("boot-to-healthy: %s", strings.Join(boots, ", ")),
		fmt.Sprintf("total %s, ideal (sum of each batch's longest boot) %s: %.2fx   (target <= 1.2x: %s)", total.Round(time.Second), ideal.Round(time.Second), ratio, okIf(ratio <= 1.2)),
	), nil
}

// recompress writes the image src again as dst, compressed another way
// (the same guest, another digest), with its manifest; it returns dst's
// digest.
func recompress(src, dst string) (string, error) {
	if out, err := exec.Command("qemu-img", "convert", "-O", "qcow2", "-c", "-o", "compression_type=zlib", src, dst).CombinedOutput(); err != nil {
		return "", fmt.Errorf("qemu-img convert: %v\n%s", err, out)
	}
	m, err := manifest.Read(manifest.PathFor(src))
	if err != nil {
		return "", err
	}
	sum, err := digest.File(dst)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(dst)
	if err != nil {
		return "", err
	}
	m.Artifacts[0].Name, m.Artifacts[0].SHA256, m.Artifacts[0].Size = filepath.Base(dst), sum.String(), st.Size()
	m.Disk.Compression, m.Disk.FileSize = "zlib", st.Size()
	return sum.String(), manifest.Write(manifest.PathFor(dst), m)
}
