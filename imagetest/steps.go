package imagetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/boot"
	"github.com/kiln-project/kiln/disk"
	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/guestssh"
	"github.com/kiln-project/kiln/internal/lazyre"
	"github.com/kiln-project/kiln/internal/probe"
	"github.com/kiln-project/kiln/manifest"
	"github.com/kiln-project/kiln/recipes"
	"github.com/kiln-project/kiln/seed"
)

// testUser is the ephemeral user kiln logs in as; it exists only in the
// test seed, with a key that lives only in this process.
const testUser = "kiln-test"

// defaultDataDisk is the size of each blank disk attached for a recipe
// whose roles expect data disks, when the caller names none.
const defaultDataDisk = 1 << 30

// bareRecipe is the plan of an image tested without its recipe: a bare
// instance, checked for a clean cloud-init run and the test login only.
func bareRecipe() (*recipes.Plan, error) {
	r := &recipes.Recipe{APIVersion: recipes.APIVersion, Name: "kiln-test"}
	recipes.Default(r)
	return recipes.Compile(r)
}

// stepSeed writes the instance seed: the recipe's boot section (secrets
// resolved now, for this seed only) plus the test user.
func (r *run) stepSeed(ctx context.Context) error {
	r.plan = r.t.Plan
	if r.plan == nil {
		var err error
		if r.plan, err = bareRecipe(); err != nil {
			return err
		}
	}
	key, err := guestssh.NewKey()
	if err != nil {
		return err
	}
	r.key = key
	resolve := r.opts.Resolver
	if resolve == nil {
		resolve = r.plan.Recipe.EnvResolver()
	}
	s, err := r.plan.Seed(recipes.Instance{Name: "kiln-test-" + string(r.fw), ExtraUsers: []recipes.User{
		{Name: testUser, Sudo: true, SSHAuthorizedKeys: []string{key.AuthorizedKey}},
	}}, recipes.StageBoot, resolve)
	if err != nil {
		return err
	}
	r.hostname = s.Hostname
	for _, u := range r.plan.Boot.Users {
		r.users = append(r.users, u.Name)
	}
	r.seedPath = filepath.Join(r.work, "seed.iso")
	_, err = seed.Write(r.seedPath, s, seed.Options{ModTime: r.opts.Epoch})
	return err
}

// stepStart boots the image: forwards for SSH and for every check that
// probes from outside, the data disks the recipe expects, the seed last.
func (r *run) stepStart(ctx context.Context) error {
	nic0 := boot.NIC{Forwards: []boot.Forward{{GuestPort: 22}}}
	for _, c := range r.t.Checks {
		switch {
		case c.HTTP != nil:
			nic0.Forwards = append(nic0.Forwards, boot.Forward{GuestPort: c.HTTP.Port})
		case c.TCP != nil:
			nic0.Forwards = append(nic0.Forwards, boot.Forward{GuestPort: c.TCP.Port})
		}
	}
	disks := r.opts.DataDisks
	if disks == nil {
		for range r.plan.Boot.DataDisks {
			disks = append(disks, defaultDataDisk)
		}
	}
	vm, err := r.opts.Boot.Start(ctx, boot.Spec{
		Image: r.t.Image, Format: r.format, DataDisks: disks, Seed: r.seedPath,
		Firmware: r.fw, Accel: r.accel, MemoryMiB: r.opts.MemoryMiB,
		NICs: append([]boot.NIC{nic0}, r.opts.NICs...), WorkDir: r.work,
	})
	if err != nil {
		return err
	}
	r.vm = vm
	r.cleanup(func() { vm.Kill() })
	r.start = time.Now()
	bootCtx, cancel := context.WithTimeoutCause(ctx, r.bootTimeout(), errBootTimeout)
	r.cleanup(cancel)
	r.bootCtx = bootCtx
	// A guest that can never come up says so on its console: stop waiting.
	r.fatal = boot.WatchFatal(bootCtx, vm, cancel)
	r.step.Note("waiting for the guest (serial console: " + vm.SerialLog() + ")")
	return nil
}

var errBootTimeout = errors.New("boot timeout")

// bootTimeout bounds the wait for the guest to come up.
func (r *run) bootTimeout() time.Duration {
	if r.opts.BootTimeout > 0 {
		return r.opts.BootTimeout
	}
	return defaultBootTimeout
}

// bootErr explains why a wait for the guest ended.
func (r *run) bootErr(ctx context.Context, err error) error {
	select {
	case msg := <-r.fatal:
		return fmt.Errorf("the guest cannot boot: its console says %q", msg)
	default:
	}
	if context.Cause(r.bootCtx) == errBootTimeout && ctx.Err() == nil {
		return fmt.Errorf("the guest did not come up within %s: %v", r.bootTimeout(), err)
	}
	return err
}

var jobResultRE = lazyre.New(`KILN-JOB-RESULT ok=(\S+) result=(\S*) exit-code=(\S*) exit-status=(\S*)`)

// stepJob tests an instance whose job powers it off: it must run
// cloud-init to the end, run the job, report the result on the console,
// record it on disk and stop by itself. Other instances go on to log in.
func (r *run) stepJob(ctx context.Context) error {
	jobTimeout, ok := r.plan.PowerOffJob()
	if !ok {
		return nil
	}
	timeout := r.bootTimeout() + jobTimeout
	r.step.Note(fmt.Sprintf("the job powers the VM off when done: waiting up to %s for it to stop", timeout))
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fatal := boot.WatchFatal(waitCtx, r.vm, cancel)
	werr := r.vm.Wait(waitCtx)
	select {
	case msg := <-fatal:
		return fmt.Errorf("the guest cannot do its job: its console says %q", msg)
	default:
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if waitCtx.Err() != nil {
		return fmt.Errorf("the VM did not power itself off within %s", timeout)
	}
	if werr != nil {
		return fmt.Errorf("QEMU: %w", werr)
	}
	r.setBoot()
	console, _ := os.ReadFile(r.vm.SerialLog())
	if strings.Contains(string(console), "Cloud-init v.") && strings.Contains(string(console), " finished at ") {
		r.rep.CloudInit.Status = "done"
	}
	match := jobResultRE.FindAllStringSubmatch(string(console), -1)
	if len(match) == 0 {
		return errors.New("the VM stopped without reporting a job result (no KILN-JOB-RESULT line on the console)")
	}
	last := match[len(match)-1]
	job := &JobResult{OK: last[1] == "true", Result: last[2], ExitStatus: last[4]}
	r.rep.Job = job
	// The record on the stopped disk, read offline: the overlay kiln made,
	// on the image it was asked to test.
	abs, _ := filepath.Abs(r.t.Image)
	if fsys, closer, err := disk.OpenRoot(r.vm.Overlay, image.WithBacking(abs), image.WithMaxVirtualSize(r.size)); err == nil {
		if b, err := fs.ReadFile(fsys, "var/lib/kiln/job/result.json"); err == nil {
			job.Recorded = strings.TrimSpace(string(b))
		}
		closer.Close()
	}
	switch {
	case job.Recorded == "":
		return errors.New("the job reported on the console but left no /var/lib/kiln/job/result.json")
	case r.rep.CloudInit.Status != "done":
		return errors.New("cloud-init never reported finishing on the console")
	case !job.OK:
		return fmt.Errorf("the job failed: %s, exit status %s", job.Result, job.ExitStatus)
	}
	return errJobDone
}

func (r *run) setBoot() {
	r.rep.boot = time.Since(r.start)
	r.rep.BootTime = manifest.Duration(r.rep.boot.Round(100 * time.Millisecond)).String()
}

// stepLogin logs in as the test user once commands really run.
func (r *run) stepLogin(ctx context.Context) error {
	client, err := r.vm.Login(r.bootCtx, testUser, r.key)
	if err != nil {
		return r.bootErr(ctx, err)
	}
	r.cleanup(func() { client.Close() })
	r.exec = boot.RootExec(client)
	r.step.Note("logged in; waiting for cloud-init to finish")
	return nil
}

// stepCloudInit waits for cloud-init's verdict: done without errors.
func (r *run) stepCloudInit(ctx context.Context) error {
	st, err := boot.WaitCloudInit(r.bootCtx, r.exec)
	r.rep.CloudInit = st
	if err != nil {
		// Never finished: the error names the stage that held it up; the
		// report keeps what the guest said about it.
		r.rep.Diagnostics = st.Evidence
		return r.bootErr(ctx, err)
	}
	r.setBoot()
	if st.ExitCode == 2 {
		r.step.Warn("cloud-init reported recoverable errors: " + strings.Join(st.Warnings, "; "))
	}
	if st.Status != "done" || st.ExitCode == 1 {
		return fmt.Errorf("cloud-init did not finish cleanly: status %q: %s", st.Status, strings.Join(st.Errors, "; "))
	}
	return nil
}

// stepIdentity: the guest has the host name and users the seed asked for.
func (r *run) stepIdentity(ctx context.Context) error {
	out, _, _ := r.exec(ctx, "hostname")
	r.rep.Hostname = strings.TrimSpace(out)
	if r.rep.Hostname != r.hostname {
		return fmt.Errorf("hostname is %q, the seed says %q", r.rep.Hostname, r.hostname)
	}
	for _, u := range r.users {
		if _, code, _ := r.exec(ctx, "id -u "+boot.ShellQuote(u)); code != 0 {
			return fmt.Errorf("user %s from the seed does not exist in the guest", u)
		}
	}
	return nil
}

// stepChecks runs every check; those that need the recipe's own seed are
// skipped, and say so, when the test has no recipe.
func (r *run) stepChecks(ctx context.Context) error {
	target := probe.Target{Addr: r.vm.Addr, Exec: r.exec}
	failed := 0
	for _, c := range r.t.Checks {
		if c.NeedsBoot && r.t.Plan == nil {
			r.rep.Checks = append(r.rep.Checks, CheckResult{Name: c.Name, Skipped: true, Took: "0s",
				Detail: "needs the recipe's first-boot configuration: test with --recipe"})
			r.step.Warn("check " + c.Name + ": skipped (needs the recipe: --recipe)")
			continue
		}
		res := probe.Run(ctx, toProbe(c), target)
		r.rep.Checks = append(r.rep.Checks, CheckResult{Name: res.Name, OK: res.OK, Attempts: res.Attempts,
			Took: manifest.Duration(res.Took.Round(100 * time.Millisecond)).String(), Detail: res.Detail})
		if res.OK {
			r.step.Note("check " + c.Name + ": ok")
		} else {
			failed++
			r.step.Warn("check " + c.Name + ": " + res.Detail)
		}
	}
	if failed > 0 {
		r.rep.Diagnostics, _, _ = r.exec(ctx, "systemctl --no-pager --no-legend --failed; journalctl --no-pager -b -p warning -o short-monotonic | tail -n 25")
		return fmt.Errorf("%d of %d checks failed", failed, len(r.t.Checks))
	}
	r.rep.ready = time.Since(r.start)
	r.rep.ReadyTime = manifest.Duration(r.rep.ready.Round(100 * time.Millisecond)).String()
	return nil
}

func (r *run) stepInspect(ctx context.Context) error {
	if r.opts.Inspect == nil {
		return nil
	}
	g := &Guest{Exec: r.exec, vm: r.vm, Console: func() string { b, _ := os.ReadFile(r.vm.SerialLog()); return string(b) }}
	if err := r.opts.Inspect(ctx, g); err != nil {
		return fmt.Errorf("inspection: %w", err)
	}
	return nil
}

// stepPowerOff: a clean shutdown is part of working.
func (r *run) stepPowerOff(ctx context.Context) error {
	r.exec(ctx, "systemctl poweroff --no-block")
	stopCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := r.vm.Wait(stopCtx); err != nil {
		return fmt.Errorf("the guest did not power off: %w", err)
	}
	return nil
}

func toProbe(c manifest.Check) probe.Check {
	p := probe.Check{Name: c.Name, Timeout: c.Timeout.D()}
	switch {
	case c.HTTP != nil:
		p.HTTP = &probe.HTTP{Port: c.HTTP.Port, Path: c.HTTP.Path, Status: c.HTTP.Status, Contains: c.HTTP.Contains}
	case c.TCP != nil:
		p.TCP = &probe.TCP{Port: c.TCP.Port}
	case c.Command != nil:
		p.Command = &probe.Command{Shell: c.Command.Run, ExitCode: c.Command.ExitCode, Contains: c.Command.Contains}
	}
	return p
}
