package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/guestssh"
	"github.com/kiln-project/kiln/internal/probe"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/lint"
	"github.com/kiln-project/kiln/recipes"
)

// TestOptions configure Test.
type TestOptions struct {
	// Firmware lists what to boot under; default: the image's firmware list.
	Firmware []string
	// Accel overrides accelerator detection ("kvm" or "tcg").
	Accel string
	// MemoryMiB is the guest's memory; default 512.
	MemoryMiB int
	// BootTimeout bounds the wait for the guest to come up; default 5m.
	BootTimeout time.Duration
	// Resolver resolves the recipe's secrets for the test seed; default:
	// the environment and files beside the recipe.
	Resolver recipes.Resolver
	// WorkDir keeps the VM's files (overlay, seed, console log) there
	// instead of a temporary directory that is removed.
	WorkDir string
	// DataDisks are blank disks of these sizes attached after the system
	// disk (/dev/vdb, /dev/vdc, ...); the seed comes after them.
	DataDisks []int64
	// NICs are extra network interfaces (eth1, ...) on their own QEMU user
	// networks, with forwards from 127.0.0.1.
	NICs []TestNIC
	// Inspect, when set, runs after the checks pass and before the guest is
	// powered off: for tests that look deeper than the recipe's checks.
	Inspect func(ctx context.Context, g *Guest) error
}

// TestNIC is an extra interface on its own user-mode network.
type TestNIC struct {
	Net      string // e.g. "10.10.0.0/24"
	Forwards []TestForward
}

// TestForward forwards a free 127.0.0.1 port to GuestAddr:GuestPort.
type TestForward struct {
	Proto     string // tcp or udp
	GuestAddr string // empty: the address QEMU's DHCP hands out
	GuestPort int
}

// Guest is a running test VM, for TestOptions.Inspect.
type Guest struct {
	// Exec runs a shell command as root in the guest.
	Exec func(ctx context.Context, shell string) (output string, exitCode int, err error)
	// Console returns the serial console so far.
	Console func() string
	addrs   map[string]string
}

// Addr is the host address forwarded to a TCP port of the guest's first
// interface (the ports of the recipe's checks, and 22).
func (g *Guest) Addr(guestPort int) (string, error) { return g.AddrOn(0, "tcp", guestPort) }

// AddrOn is the host address forwarded to a port on interface nic.
func (g *Guest) AddrOn(nic int, proto string, guestPort int) (string, error) {
	if a, ok := g.addrs[fwdKey(nic, proto, guestPort)]; ok {
		return a, nil
	}
	return "", fmt.Errorf("%s port %d on interface %d is not forwarded", proto, guestPort, nic)
}

func fwdKey(nic int, proto string, port int) string { return fmt.Sprintf("%d/%s/%d", nic, proto, port) }

// TestReport is the outcome of booting an image once.
type TestReport struct {
	Image        string         `json:"image"`
	Firmware     string         `json:"firmware"`
	Accel        string         `json:"accel"`
	OK           bool           `json:"ok"`
	Error        string         `json:"error,omitempty"`
	BootSeconds  float64        `json:"bootSeconds"`  // start to cloud-init done
	ReadySeconds float64        `json:"readySeconds"` // start to every check passing
	CloudInit    CloudInitState `json:"cloudInit"`
	Hostname     string         `json:"hostname"`
	Checks       []probe.Result `json:"checks"`
	ConsoleTail  string         `json:"consoleTail,omitempty"`
	// Diagnostics is what the guest says is wrong when checks fail: failed
	// units and recent warnings from the journal.
	Diagnostics string `json:"diagnostics,omitempty"`
	// Job is the result of a job that powers the VM off when done.
	Job *JobResult `json:"job,omitempty"`
}

// JobResult is what a job-runner instance reported before powering off.
type JobResult struct {
	OK         bool   `json:"ok"`
	Result     string `json:"result"`     // systemd's: success, exit-code, timeout, ...
	ExitStatus string `json:"exitStatus"` // the job's exit status (or signal)
	Recorded   string `json:"recorded"`   // /var/lib/kiln/job/result.json, read from the stopped disk
}

// CloudInitState is what cloud-init reported in the guest.
type CloudInitState struct {
	Status   string   `json:"status"`   // done, error, ...
	ExitCode int      `json:"exitCode"` // of cloud-init status: 0 ok, 1 error, 2 recoverable error
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

const testUser = "kiln-test"

// Test boots an image with an instance seed under each firmware, waits for
// cloud-init, and runs the checks: those of the plan (the recipe and its
// roles), or those recorded in the image's manifest when plan is nil.
func (b *Builder) Test(ctx context.Context, image string, plan *recipes.Plan, opts TestOptions) ([]TestReport, error) {
	if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	info, err := b.opts.QemuImg.Info(ctx, image)
	if err != nil {
		return nil, err
	}
	if info.Format != "qcow2" && info.Format != "raw" {
		return nil, fmt.Errorf("test: %s is a %s image; kiln boots qcow2 and raw images", image, info.Format)
	}
	var checks []recipes.Check
	firmware := opts.Firmware
	if plan == nil {
		m, err := ReadManifest(ManifestPath(image))
		if err == nil {
			checks = m.Checks
			if len(firmware) == 0 {
				firmware = m.Disk.Firmware
			}
		}
		if plan, err = genericPlan(); err != nil {
			return nil, err
		}
	} else {
		checks = plan.Checks
		if len(firmware) == 0 {
			firmware = plan.Recipe.Disk.Firmware
		}
	}
	if len(firmware) == 0 {
		firmware = []string{"bios"}
	}
	accel := qemu.Accel(opts.Accel)
	if accel == "" {
		var why string
		accel, why = qemu.DetectAccel()
		b.note("test", "accelerator %s: %s", accel, why)
	}
	var reports []TestReport
	for _, fw := range firmware {
		r := b.testOnce(ctx, image, info.Format, plan, checks, qemu.Firmware(fw), accel, opts)
		reports = append(reports, r)
		if ctx.Err() != nil {
			return reports, ctx.Err()
		}
	}
	return reports, nil
}

// genericPlan is the plan of an image tested without its recipe: a bare
// instance, checked for a clean cloud-init run only.
func genericPlan() (*recipes.Plan, error) {
	r := &recipes.Recipe{APIVersion: recipes.APIVersion, Name: "kiln-test"}
	recipes.Default(r)
	return recipes.Compile(r)
}

func (b *Builder) testOnce(ctx context.Context, image, format string, plan *recipes.Plan, checks []recipes.Check,
	fw qemu.Firmware, accel qemu.Accel, opts TestOptions) (rep TestReport) {
	rep = TestReport{Image: image, Firmware: string(fw), Accel: string(accel)}
	step := progress.Begin(b.sink, "test-"+string(fw), 0, fmt.Sprintf("booting %s under %s (%s)", filepath.Base(image), fw, accel))
	defer func() {
		if rep.OK {
			step.End(fmt.Sprintf("ok: cloud-init %s after %.0fs, %d checks passed", rep.CloudInit.Status, rep.BootSeconds, len(rep.Checks)))
		} else {
			step.End("FAILED: " + firstLine(rep.Error))
		}
	}()
	fail := func(err error, m *qemu.Machine) TestReport {
		rep.Error = err.Error()
		if m != nil {
			rep.ConsoleTail = m.ConsoleTail(25)
		}
		return rep
	}
	work := opts.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "kiln-test-"); err != nil {
			return fail(err, nil)
		}
		defer os.RemoveAll(work)
	} else {
		work = filepath.Join(work, string(fw))
		if err := os.MkdirAll(work, 0o755); err != nil {
			return fail(err, nil)
		}
	}
	// The VM writes to an overlay; the image under test is never modified.
	overlay := filepath.Join(work, "overlay.qcow2")
	abs, _ := filepath.Abs(image)
	if err := b.opts.QemuImg.CreateOverlay(ctx, abs, format, overlay, 0); err != nil {
		return fail(err, nil)
	}
	key, err := guestssh.NewKey()
	if err != nil {
		return fail(err, nil)
	}
	resolver := opts.Resolver
	if resolver == nil {
		resolver = plan.Recipe.EnvResolver()
	}
	seed, err := plan.Seed(recipes.Instance{Name: "kiln-test-" + string(fw), ExtraUsers: []recipes.User{
		{Name: testUser, Sudo: true, SSHAuthorizedKeys: []string{key.AuthorizedKey}},
	}}, recipes.StageBoot, resolver)
	if err != nil {
		return fail(err, nil)
	}
	seedPath := filepath.Join(work, "seed.iso")
	if _, err := WriteSeed(seedPath, SeedISO, seed, b.epoch); err != nil {
		return fail(err, nil)
	}

	ports := map[int]int{22: 0}
	for _, c := range checks {
		switch {
		case c.HTTP != nil:
			ports[c.HTTP.Port] = 0
		case c.TCP != nil:
			ports[c.TCP.Port] = 0
		}
	}
	guest := &Guest{addrs: map[string]string{}}
	var fwds []qemu.Forward
	for gp := range ports {
		host, err := qemu.FreePort("tcp")
		if err != nil {
			return fail(err, nil)
		}
		ports[gp] = host
		guest.addrs[fwdKey(0, "tcp", gp)] = fmt.Sprintf("127.0.0.1:%d", host)
		fwds = append(fwds, qemu.Forward{HostPort: host, GuestPort: gp})
	}
	nics := []qemu.NIC{{Forwards: fwds}}
	for i, n := range opts.NICs {
		nic := qemu.NIC{Net: n.Net}
		for _, f := range n.Forwards {
			host, err := qemu.FreePort(f.Proto)
			if err != nil {
				return fail(err, nil)
			}
			guest.addrs[fwdKey(i+1, f.Proto, f.GuestPort)] = fmt.Sprintf("127.0.0.1:%d", host)
			nic.Forwards = append(nic.Forwards, qemu.Forward{Proto: f.Proto, HostPort: host, GuestAddr: f.GuestAddr, GuestPort: f.GuestPort})
		}
		nics = append(nics, nic)
	}
	drives := []qemu.Drive{{Path: overlay, Format: "qcow2"}}
	for i, size := range opts.DataDisks {
		p := filepath.Join(work, fmt.Sprintf("data%d.qcow2", i))
		if err := b.opts.QemuImg.CreateBlank(ctx, p, size); err != nil {
			return fail(err, nil)
		}
		drives = append(drives, qemu.Drive{Path: p, Format: "qcow2"})
	}
	// The seed comes last, so data disks get the names a recipe expects
	// (/dev/vdb, /dev/vdc, ...). It is a virtio disk, not a CD-ROM: cloud
	// kernels carry virtio drivers but not always SATA/ATAPI ones.
	drives = append(drives, qemu.Drive{Path: seedPath, Format: "raw", ReadOnly: true})
	cfg := qemu.Config{Accel: accel, Firmware: fw, MemoryMiB: opts.MemoryMiB, Drives: drives, NICs: nics}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 512
	}
	if fw == qemu.UEFI {
		if cfg.FirmwareCode, cfg.FirmwareVars, err = qemu.FindFirmware(fw); err != nil {
			return fail(err, nil)
		}
	}
	start := time.Now()
	m, err := qemu.Start(ctx, cfg, work)
	if err != nil {
		return fail(err, nil)
	}
	defer m.Kill()

	bootTimeout := opts.BootTimeout
	if bootTimeout == 0 {
		bootTimeout = 5 * time.Minute
	}
	bootCtx, cancel := context.WithTimeoutCause(ctx, bootTimeout, errBootTimeout)
	defer cancel()
	// A guest that can never come up says so on its console: stop waiting.
	fatal := make(chan string, 1)
	go watchFatal(bootCtx, m, fatal, cancel)
	step.Note("waiting for the guest (serial console: " + m.SerialLog() + ")")
	if jobTimeout, ok := plan.PowerOffJob(); ok {
		return b.waitForJob(ctx, m, overlay, bootTimeout+jobTimeout, step, rep)
	}
	alive := func() error {
		select {
		case <-m.Done():
			return fmt.Errorf("the VM stopped before it could be reached: %v", m.Wait(ctx))
		default:
			return nil
		}
	}
	client, err := loginWhenReady(bootCtx, fmt.Sprintf("127.0.0.1:%d", ports[22]), key, alive)
	if err != nil {
		select {
		case msg := <-fatal:
			err = fmt.Errorf("the guest cannot boot: its console says %q", msg)
		default:
			if context.Cause(bootCtx) == errBootTimeout && ctx.Err() == nil {
				err = fmt.Errorf("the guest did not come up within %s (no working SSH login as %s): %v", bootTimeout, testUser, err)
			}
		}
		return fail(err, m)
	}
	defer client.Close()
	exec := func(ctx context.Context, shell string) (string, int, error) {
		return client.Run(ctx, "sudo -n sh -c "+shellQuote(shell))
	}
	step.Note("logged in; waiting for cloud-init to finish")
	rep.CloudInit, err = cloudInitStatus(bootCtx, exec)
	if err != nil {
		return fail(err, m)
	}
	rep.BootSeconds = time.Since(start).Seconds()
	if rep.CloudInit.ExitCode == 2 {
		step.Warn("cloud-init reported recoverable errors: " + strings.Join(rep.CloudInit.Warnings, "; "))
	}
	if rep.CloudInit.Status != "done" || rep.CloudInit.ExitCode == 1 {
		return fail(fmt.Errorf("cloud-init did not finish cleanly: status %q: %s", rep.CloudInit.Status, strings.Join(rep.CloudInit.Errors, "; ")), m)
	}
	out, _, _ := exec(ctx, "hostname")
	rep.Hostname = strings.TrimSpace(out)
	if rep.Hostname != seed.Hostname {
		return fail(fmt.Errorf("hostname is %q, the seed says %q", rep.Hostname, seed.Hostname), m)
	}
	for _, u := range plan.Boot.Users {
		if _, code, _ := exec(ctx, "id -u "+shellQuote(u.Name)); code != 0 {
			return fail(fmt.Errorf("user %s from the seed does not exist in the guest", u.Name), m)
		}
	}
	target := probe.Target{
		Addr: func(guestPort int) (string, error) {
			if h, ok := ports[guestPort]; ok {
				return fmt.Sprintf("127.0.0.1:%d", h), nil
			}
			return "", fmt.Errorf("guest port %d is not forwarded", guestPort)
		},
		Exec: exec,
	}
	failed := 0
	for _, c := range checks {
		res := probe.Run(ctx, toProbe(c), target)
		rep.Checks = append(rep.Checks, res)
		if res.OK {
			step.Note("check " + c.Name + ": ok")
		} else {
			failed++
			step.Warn("check " + c.Name + ": " + res.Detail)
		}
	}
	if failed > 0 {
		rep.Diagnostics, _, _ = exec(ctx, "systemctl --no-pager --no-legend --failed; journalctl --no-pager -b -p warning -o short-monotonic | tail -n 25")
		return fail(fmt.Errorf("%d of %d checks failed", failed, len(checks)), m)
	}
	rep.ReadySeconds = time.Since(start).Seconds()
	if opts.Inspect != nil {
		guest.Exec = exec
		guest.Console = func() string { b, _ := os.ReadFile(m.SerialLog()); return string(b) }
		if err := opts.Inspect(ctx, guest); err != nil {
			return fail(fmt.Errorf("inspection: %w", err), m)
		}
	}
	// A clean shutdown is part of working: the guest must power off.
	client.Run(ctx, "sudo -n systemctl poweroff --no-block")
	stopCtx, cancelStop := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelStop()
	if err := m.Wait(stopCtx); err != nil {
		return fail(fmt.Errorf("the guest did not power off: %w", err), m)
	}
	rep.OK = true
	return rep
}

var errBootTimeout = errors.New("boot timeout")

var jobResultRE = regexp.MustCompile(`KILN-JOB-RESULT ok=(\S+) result=(\S*) exit-code=(\S*) exit-status=(\S*)`)

// waitForJob tests an instance whose job powers it off: it must run
// cloud-init to the end, run the job, report the result on the console,
// record it on disk and stop by itself.
func (b *Builder) waitForJob(ctx context.Context, m *qemu.Machine, overlay string, timeout time.Duration, step *progress.Step, rep TestReport) TestReport {
	step.Note(fmt.Sprintf("the job powers the VM off when done: waiting up to %s for it to stop", timeout))
	start := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fatal := make(chan string, 1)
	go watchFatal(waitCtx, m, fatal, cancel)
	werr := m.Wait(waitCtx)
	console, _ := os.ReadFile(m.SerialLog())
	fail := func(err error) TestReport {
		rep.Error = err.Error()
		rep.ConsoleTail = m.ConsoleTail(25)
		return rep
	}
	select {
	case msg := <-fatal:
		return fail(fmt.Errorf("the guest cannot do its job: its console says %q", msg))
	default:
	}
	if waitCtx.Err() != nil {
		return fail(fmt.Errorf("the VM did not power itself off within %s", timeout))
	}
	if werr != nil {
		return fail(fmt.Errorf("QEMU: %w", werr))
	}
	rep.BootSeconds = time.Since(start).Seconds()
	if strings.Contains(string(console), "Cloud-init v.") && strings.Contains(string(console), " finished at ") {
		rep.CloudInit.Status = "done"
	}
	match := jobResultRE.FindAllStringSubmatch(string(console), -1)
	if len(match) == 0 {
		return fail(errors.New("the VM stopped without reporting a job result (no KILN-JOB-RESULT line on the console)"))
	}
	last := match[len(match)-1]
	rep.Job = &JobResult{OK: last[1] == "true", Result: last[2], ExitStatus: last[4]}
	// The record on the stopped disk, read offline.
	if fsys, closer, err := lint.OpenRoot(overlay); err == nil {
		if b, err := fs.ReadFile(fsys, "var/lib/kiln/job/result.json"); err == nil {
			rep.Job.Recorded = strings.TrimSpace(string(b))
		}
		closer.Close()
	}
	if rep.Job.Recorded == "" {
		return fail(errors.New("the job reported on the console but left no /var/lib/kiln/job/result.json"))
	}
	if rep.CloudInit.Status != "done" {
		return fail(errors.New("cloud-init never reported finishing on the console"))
	}
	if !rep.Job.OK {
		return fail(fmt.Errorf("the job failed: %s, exit status %s", rep.Job.Result, rep.Job.ExitStatus))
	}
	rep.OK = true
	return rep
}

// fatalConsole are console lines after which a guest never comes up.
var fatalConsole = []string{
	"Kernel panic",
	"Gave up waiting for root file system device",
	"Dropping to a shell!",
	"You are in emergency mode",
	"error: file '/vmlinuz' not found",
	"error: file '/initrd.img' not found",
	"error: no such device",
	"you need to load the kernel first",
	"No bootable device",
	"Boot failed: not a bootable disk",
	// cloud-init's final message names its datasource: None means the seed
	// was never found, so the test user will never exist.
	"Datasource DataSourceNone",
	// A unit skipped to break a cycle never runs: a role's service is broken.
	"Ordering cycle found, skipping",
}

// watchFatal follows the console for a fatal line; when one shows up it is
// sent on found and the boot wait is cancelled.
func watchFatal(ctx context.Context, m *qemu.Machine, found chan<- string, cancel context.CancelFunc) {
	m.FollowConsole(ctx, func(line string) bool {
		for _, f := range fatalConsole {
			if i := strings.Index(line, f); i >= 0 {
				found <- strings.TrimSpace(line[i:])
				cancel()
				return false
			}
		}
		return true
	})
}

// loginWhenReady logs in and waits until a command really runs: early in
// boot sshd may accept a login whose commands produce nothing (logins not
// yet permitted, sshd restarted by cloud-init with new host keys).
func loginWhenReady(ctx context.Context, addr string, key *guestssh.Key, alive func() error) (*guestssh.Client, error) {
	for {
		client, err := guestssh.Dial(ctx, addr, testUser, key, alive)
		if err != nil {
			return nil, err
		}
		out, _, err := client.Run(ctx, "echo kiln-ready")
		if err == nil && strings.Contains(out, "kiln-ready") {
			return client, nil
		}
		client.Close()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("logged in, but commands did not run: %v", err)
		case <-time.After(2 * time.Second):
		}
	}
}

// cloudInitStatus waits for cloud-init in the guest to finish and reads its
// verdict from result.json, which cloud-init writes when its last stage is
// done. A shell loop waits for it: `cloud-init status --wait` would start a
// Python process that competes with cloud-init's own stages for a small
// VM's CPU while it boots. Status and exit code mean what `cloud-init
// status` reports: done (0), done with recoverable errors (2), error (1).
func cloudInitStatus(ctx context.Context, exec func(context.Context, string) (string, int, error)) (CloudInitState, error) {
	const wait = `while [ ! -s /run/cloud-init/result.json ]; do
	if [ -e /etc/cloud/cloud-init.disabled ] || [ -e /run/cloud-init/disabled ]; then exit 3; fi
	sleep 0.5
done
cat /run/cloud-init/result.json`
	out, code, err := exec(ctx, wait)
	if err != nil || code == 3 {
		// Say where cloud-init is, in cloud-init's own words.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		status, _, _ := exec(sctx, "cloud-init status --long 2>&1 | head -n 12")
		if code == 3 && err == nil {
			return CloudInitState{Status: "disabled", ExitCode: 1}, fmt.Errorf("cloud-init is disabled in the guest: %s", strings.TrimSpace(status))
		}
		return CloudInitState{}, fmt.Errorf("waiting for cloud-init to finish: %w; cloud-init status says:\n%s", err, strings.TrimSpace(status))
	}
	res, err := parseCloudInitResult([]byte(out))
	if err != nil {
		return CloudInitState{}, fmt.Errorf("%v: %q", err, truncate(out, 200))
	}
	st := CloudInitState{Status: "done", Errors: res.Errors, Warnings: res.Warnings}
	switch {
	case len(st.Errors) > 0:
		st.Status, st.ExitCode = "error", 1
	case len(st.Warnings) > 0:
		st.ExitCode = 2
	}
	return st, nil
}

// cloudInitResult is cloud-init's verdict on a boot, from result.json.
type cloudInitResult struct {
	Errors   []string
	Warnings []string // recoverable errors, "LEVEL: message", sorted by level
}

func parseCloudInitResult(b []byte) (cloudInitResult, error) {
	var r struct {
		V1 struct {
			Errors            []string            `json:"errors"`
			RecoverableErrors map[string][]string `json:"recoverable_errors"`
		} `json:"v1"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return cloudInitResult{}, fmt.Errorf("cloud-init's result.json is not readable: %v", err)
	}
	res := cloudInitResult{Errors: r.V1.Errors}
	for _, level := range slices.Sorted(maps.Keys(r.V1.RecoverableErrors)) {
		for _, m := range r.V1.RecoverableErrors[level] {
			res.Warnings = append(res.Warnings, level+": "+m)
		}
	}
	return res, nil
}

func toProbe(c recipes.Check) probe.Check {
	p := probe.Check{Name: c.Name, Timeout: c.Timeout.D()}
	switch {
	case c.HTTP != nil:
		p.HTTP = &probe.HTTP{Port: c.HTTP.Port, Path: c.HTTP.Path, Status: c.HTTP.Status, Contains: c.HTTP.Contains}
	case c.TCP != nil:
		p.TCP = &probe.TCP{Port: c.TCP.Port}
	case c.Command != nil:
		p.Command = &probe.Command{Shell: c.Command.Run.String(), ExitCode: c.Command.ExitCode, Contains: c.Command.Contains}
	}
	return p
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
