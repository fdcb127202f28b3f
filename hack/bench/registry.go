package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/testregistry"
	"github.com/kiln-project/kiln/registry"
)

// benchRegistry compares, on one kiln image of at least 150 MB and one
// docker-registry on 127.0.0.1:
//
//	kiln push IMAGE REF            vs  skopeo copy --all oci:LAYOUT docker://REF (the same image)
//	kiln pull REF -o FILE          vs  skopeo copy --all docker://REF oci:DIR
//
// each with a cold client (no blob cache, a fresh skopeo blob-info cache, a
// new repository), and reports what must hold absolutely: an unchanged
// re-push sends 0 blob bytes within 1 s; a pull cut at 50% and resumed moves
// at most 55% more than the blob; a second pull of a digest takes under 1 s.
// Targets: kiln at least as fast as skopeo both ways.
func benchRegistry() ([]string, error) {
	ctx := context.Background()
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		return nil, fmt.Errorf("skopeo not found (make deps): %w", err)
	}
	kiln, err := filepath.Abs("_output/bin/kiln")
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "kiln-bench-registry")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	// The database example: PostgreSQL makes it the largest (about 240 MB).
	img := filepath.Join(work, "database.qcow2")
	if err := bakeExample(kiln, "database", img); err != nil {
		return nil, err
	}
	st, err := os.Stat(img)
	if err != nil {
		return nil, err
	}
	if st.Size() < 150e6 {
		return nil, fmt.Errorf("%s is %d bytes, under the 150 MB the benchmark wants", img, st.Size())
	}
	reg, err := testregistry.Launch(filepath.Join(work, "registry"), testregistry.Options{})
	if err != nil {
		return nil, err
	}
	defer reg.Stop()
	layout := filepath.Join(work, "layout")
	if out, err := exec.Command(kiln, "push", img, "oci:"+layout+":db", "--cache-dir", filepath.Join(work, "c0")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kiln push to layout: %v\n%s", err, out)
	}
	policy := filepath.Join(work, "policy.json")
	os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644)
	run := func(env []string, name string, args ...string) (time.Duration, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start), nil
	}
	// skopeo (containers/image) remembers where it saw blobs, in
	// /var/lib/containers/cache for root, and would mount them instead of
	// uploading: each run gets an empty one, in a mount namespace of its own.
	skopeoRun := func(i int, args ...string) (time.Duration, error) {
		script := `mount -t tmpfs tmpfs /var/lib/containers/cache && exec "$@"`
		os.MkdirAll("/var/lib/containers/cache", 0o700)
		argv := append([]string{"-m", "sh", "-c", script, "sh", skopeo, "--policy", policy, "copy", "--all", "-q"}, args...)
		return run(nil, "unshare", argv...)
	}
	const runs = 3
	var kPush, sPush, kPull, sPull []time.Duration
	for i := 0; i < runs; i++ {
		// Alternate who goes first: the page cache and the registry's
		// disk must not favour one side.
		order := []func() error{
			func() error {
				d, err := run(nil, kiln, "push", img, fmt.Sprintf("%s/kiln/push-%d:1", reg.Host, i), "--cache-dir", filepath.Join(work, fmt.Sprintf("kc-%d", i)))
				kPush = append(kPush, d)
				return err
			},
			func() error {
				d, err := skopeoRun(i, "--dest-tls-verify=false", "oci:"+layout+":db", fmt.Sprintf("docker://%s/skopeo/push-%d:1", reg.Host, i))
				sPush = append(sPush, d)
				return err
			},
		}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, f := range order {
			if err := f(); err != nil {
				return nil, err
			}
		}
		order = []func() error{
			func() error {
				d, err := run(nil, kiln, "pull", fmt.Sprintf("%s/kiln/push-%d:1", reg.Host, i), "-o", filepath.Join(work, fmt.Sprintf("pulled-%d.qcow2", i)), "--cache-dir", filepath.Join(work, fmt.Sprintf("kp-%d", i)))
				kPull = append(kPull, d)
				return err
			},
			func() error {
				d, err := skopeoRun(i, "--src-tls-verify=false", fmt.Sprintf("docker://%s/skopeo/push-%d:1", reg.Host, i), fmt.Sprintf("oci:%s:x", filepath.Join(work, fmt.Sprintf("sk-out-%d", i))))
				sPull = append(sPull, d)
				return err
			},
		}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, f := range order {
			if err := f(); err != nil {
				return nil, err
			}
		}
		os.RemoveAll(filepath.Join(work, fmt.Sprintf("pulled-%d.qcow2", i)))
		os.RemoveAll(filepath.Join(work, fmt.Sprintf("kp-%d", i)))
		os.RemoveAll(filepath.Join(work, fmt.Sprintf("sk-out-%d", i)))
	}
	lines := []string{
		fmt.Sprintf("image %s, %d MB; %d runs each, medians", filepath.Base(img), st.Size()/1e6, runs),
		ratioLine("push", median(kPush), median(sPush), st.Size()),
		ratioLine("pull", median(kPull), median(sPull), st.Size()),
	}

	// Re-push, unchanged, with the blob cache of the first push.
	var res struct {
		Data registry.PushResult `json:"data"`
	}
	start := time.Now()
	out, err := exec.Command(kiln, "push", img, reg.Host+"/kiln/push-0:1", "--cache-dir", filepath.Join(work, "kc-0"), "-O", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("re-push: %v", err)
	}
	took := time.Since(start)
	// Progress events come first, one JSON object each; the result is last.
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		if err := dec.Decode(&res); err != nil {
			return nil, fmt.Errorf("re-push output: %v", err)
		}
	}
	lines = append(lines, fmt.Sprintf("re-push unchanged: %d blob bytes sent in %s   (target 0 bytes, < 1 s: %s)",
		res.Data.BlobBytesSent, took.Round(time.Millisecond), okIf(res.Data.BlobBytesSent == 0 && took < time.Second)))

	// A pull cut at half the blob, then resumed.
	cache := filepath.Join(work, "resume-cache")
	blobSize := st.Size()
	cut, cancel := context.WithCancel(ctx)
	var firstBytes int64
	c := registry.New(registry.Options{CacheDir: cache, Progress: progress.Func(func(e progress.Event) {
		if e.Step == "pull" && e.Kind == progress.Advance && e.Total > 0 && e.Done >= e.Total/2 {
			firstBytes = e.Done
			cancel()
		}
	})})
	ref, _ := registry.ParseRef(reg.Host + "/kiln/push-0:1")
	if _, err := c.Pull(cut, registry.PullRequest{Ref: ref, Out: filepath.Join(work, "resumed.qcow2")}); !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("the cut pull did not stop at 50%%: %v", err)
	}
	partial, _ := os.Stat(filepath.Join(cache, "blobs", "partial", res.Data.DiskDigest[len("sha256:"):]))
	if partial != nil {
		firstBytes = partial.Size()
	}
	c = registry.New(registry.Options{CacheDir: cache})
	r2, err := c.Pull(ctx, registry.PullRequest{Ref: ref, Out: filepath.Join(work, "resumed.qcow2")})
	if err != nil {
		return nil, fmt.Errorf("resumed pull: %v", err)
	}
	total := firstBytes + r2.BytesDownloaded
	extra := float64(total)/float64(blobSize) - 1
	lines = append(lines, fmt.Sprintf("pull cut at 50%% and resumed: %d + %d bytes for a %d-byte blob, %.1f%% more   (target <= 55%%: %s)",
		firstBytes, r2.BytesDownloaded, blobSize, 100*extra, okIf(extra <= 0.55)))

	// The same digest again: from the blob cache.
	var again []time.Duration
	for i := 0; i < runs; i++ {
		d, err := run(nil, kiln, "pull", reg.Host+"/kiln/push-0:1", "-o", filepath.Join(work, fmt.Sprintf("again-%d.qcow2", i)), "--cache-dir", cache)
		if err != nil {
			return nil, fmt.Errorf("second pull: %v", err)
		}
		again = append(again, d)
	}
	took = median(again)
	lines = append(lines, fmt.Sprintf("second pull of the digest: %s (median of %d)   (target < 1 s: %s)", took.Round(time.Millisecond), runs, okIf(took < time.Second)))
	return lines, nil
}

func ratioLine(what string, kiln, ref time.Duration, size int64) string {
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	return fmt.Sprintf("%s: kiln %s (%.0f MB/s), skopeo %s (%.0f MB/s): kiln takes %.2fx skopeo's time   (target <= 1.00: %s)",
		what, kiln.Round(time.Millisecond), mbps(kiln), ref.Round(time.Millisecond), mbps(ref), kiln.Seconds()/ref.Seconds(), okIf(kiln <= ref))
}

func okIf(b bool) string {
	if b {
		return "ok"
	}
	return "MISSED"
}
