package imagetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/boot"
	"github.com/kiln-project/kiln/disk/image"
	"github.com/kiln-project/kiln/internal/guestssh"
	"github.com/kiln-project/kiln/internal/progress"
	"github.com/kiln-project/kiln/internal/qemu"
	"github.com/kiln-project/kiln/recipes"
)

// Options configure Run.
type Options struct {
	// Firmware lists what to boot under; default: the target's list, else bios.
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
	// WorkDir keeps the VM's files (overlay, seed, console log) there,
	// one directory per firmware, instead of a temporary directory that is
	// removed.
	WorkDir string
	// DataDisks are blank disks of these sizes attached after the system
	// disk (/dev/vdb, /dev/vdc, ...); default: the disks the recipe's
	// roles expect.
	DataDisks []int64
	// NICs are extra network interfaces (eth1, ...), each on its own QEMU
	// user network, with forwards from 127.0.0.1.
	NICs []boot.NIC
	// Inspect, when set, runs after the checks pass and before the guest
	// is powered off: for tests that look deeper than the checks.
	Inspect func(ctx context.Context, g *Guest) error
	// Progress receives progress events; default progress.Discard.
	Progress progress.Sink
	// Epoch stamps the test seed (SOURCE_DATE_EPOCH); zero: epoch.Default.
	Epoch time.Time
	// Boot starts guests; the zero value runs the real QEMU.
	Boot boot.Runner
	// MaxSize is the largest virtual size accepted of the image; default
	// image.MaxVirtualSize (1 TiB). The image is checked before anything
	// opens it (image.Check): qcow2 or raw, no backing file.
	MaxSize int64
}

// VetError is an image Run refused to open: not a qcow2 or raw disk kiln
// reads, a backing file, too large (see image.Check).
type VetError struct{ Err error }

func (e *VetError) Error() string { return strings.TrimPrefix(e.Err.Error(), "image: ") }
func (e *VetError) Unwrap() error { return e.Err }

// Guest is a running test VM, for Options.Inspect.
type Guest struct {
	// Exec runs a shell command as root in the guest.
	Exec boot.Exec
	// Console returns the serial console so far.
	Console func() string
	vm      *boot.VM
}

// Addr is the host address forwarded to a TCP port of the guest's first
// interface (the ports of the checks, and 22).
func (g *Guest) Addr(guestPort int) (string, error) { return g.vm.Addr(guestPort) }

// AddrOn is the host address forwarded to a port on interface nic.
func (g *Guest) AddrOn(nic int, proto string, guestPort int) (string, error) {
	return g.vm.AddrOn(nic, proto, guestPort)
}

// Report is the outcome of booting an image once.
type Report struct {
	Image     string              `json:"image"`
	Firmware  string              `json:"firmware"`
	Accel     string              `json:"accel"`
	OK        bool                `json:"ok"`
	Error     string              `json:"error,omitempty"`
	BootTime  string              `json:"bootTime,omitempty"`  // start to cloud-init done
	ReadyTime string              `json:"readyTime,omitempty"` // start to every check passing
	CloudInit boot.CloudInitState `json:"cloudInit"`
	Hostname  string              `json:"hostname,omitempty"`
	Checks    []CheckResult       `json:"checks"`
	Notes     []string            `json:"notes"`
	// ConsoleTail is the end of the serial console, when the test failed.
	ConsoleTail string `json:"consoleTail,omitempty"`
	// Diagnostics is what the guest says is wrong when checks fail
	// (failed units and recent warnings from the journal), or when
	// cloud-init never finishes (cloud-init status, its stage units,
	// systemd's jobs; CloudInit.Diagnosis sums it up in a line).
	Diagnostics string `json:"diagnostics,omitempty"`
	// Job is the result of a job that powers the VM off when done.
	Job *JobResult `json:"job,omitempty"`

	boot, ready time.Duration
}

// Boot is the time from start to cloud-init done.
func (r *Report) Boot() time.Duration { return r.boot }

// Ready is the time from start to every check passing.
func (r *Report) Ready() time.Duration { return r.ready }

// CheckResult is the outcome of one check.
type CheckResult struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Skipped  bool   `json:"skipped,omitempty"`
	Attempts int    `json:"attempts"`
	Took     string `json:"took"`
	Detail   string `json:"detail"`
}

// JobResult is what a job-runner instance reported before powering off.
type JobResult struct {
	OK         bool   `json:"ok"`
	Result     string `json:"result"`     // systemd's: success, exit-code, timeout, ...
	ExitStatus string `json:"exitStatus"` // the job's exit status (or signal)
	Recorded   string `json:"recorded"`   // /var/lib/kiln/job/result.json, read from the stopped disk
}

// Run boots the target once under each firmware and reports each boot.
// An error means the test could not be run at all; a failed boot or check
// is a report that is not OK.
func Run(ctx context.Context, t *Target, opts Options) ([]Report, error) {
	info, err := image.Check(t.Image, image.WithMaxVirtualSize(opts.MaxSize))
	if err != nil {
		return nil, &VetError{Err: err}
	}
	sink := progress.Or(opts.Progress)
	firmware := opts.Firmware
	if len(firmware) == 0 {
		firmware = t.Firmware
	}
	if len(firmware) == 0 {
		firmware = []string{"bios"}
	}
	accel := qemu.Accel(opts.Accel)
	if accel == "" {
		var why string
		accel, why = qemu.DetectAccel()
		sink.Emit(progress.Event{Step: "test", Kind: progress.Note, Msg: fmt.Sprintf("accelerator %s: %s", accel, why), Time: time.Now()})
	}
	for _, n := range t.Notes {
		sink.Emit(progress.Event{Step: "test", Kind: progress.Note, Msg: n, Time: time.Now()})
	}
	var reports []Report
	for _, fw := range firmware {
		r := &run{t: t, opts: opts, format: string(info.Format), size: info.VirtualSize, fw: qemu.Firmware(fw), accel: accel, sink: sink}
		reports = append(reports, r.do(ctx))
		if ctx.Err() != nil {
			return reports, ctx.Err()
		}
	}
	return reports, nil
}

// run is the state the steps of one boot share.
type run struct {
	t      *Target
	opts   Options
	format string
	size   int64 // the image's virtual size
	fw     qemu.Firmware
	accel  qemu.Accel
	sink   progress.Sink
	step   *progress.Step
	rep    Report

	plan     *recipes.Plan
	work     string
	seedPath string
	key      *guestssh.Key
	users    []string // what the seed asks for
	hostname string
	vm       *boot.VM
	exec     boot.Exec
	start    time.Time
	bootCtx  context.Context
	fatal    <-chan string
	cleanups []func()
}

// stepFunc is one step of a test boot.
type stepFunc struct {
	name string
	run  func(r *run, ctx context.Context) error
}

// steps are the steps of a test boot, in order. A job that powers the VM
// off is waited for instead of logged in to (see stepJob).
var steps = []stepFunc{
	{"work dir", (*run).stepWorkDir},
	{"seed", (*run).stepSeed},
	{"start", (*run).stepStart},
	{"job", (*run).stepJob},
	{"login", (*run).stepLogin},
	{"cloud-init", (*run).stepCloudInit},
	{"identity", (*run).stepIdentity},
	{"checks", (*run).stepChecks},
	{"inspect", (*run).stepInspect},
	{"power-off", (*run).stepPowerOff},
}

// errJobDone ends the steps of a job boot early: its report is complete.
var errJobDone = errors.New("job done")

func (r *run) do(ctx context.Context) Report {
	r.rep = Report{Image: r.t.Image, Firmware: string(r.fw), Accel: string(r.accel), Checks: []CheckResult{}, Notes: append([]string{}, r.t.Notes...)}
	r.step = progress.Begin(r.sink, "test-"+string(r.fw), 0, fmt.Sprintf("booting %s under %s (%s)", filepath.Base(r.t.Image), r.fw, r.accel))
	defer func() {
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
	}()
	for _, s := range steps {
		err := s.run(r, ctx)
		if errors.Is(err, errJobDone) {
			break
		}
		if err != nil {
			r.rep.Error = err.Error()
			if r.vm != nil {
				r.rep.ConsoleTail = r.vm.ConsoleTail(25)
			}
			r.step.End("FAILED: " + firstLine(r.rep.Error))
			return r.rep
		}
	}
	r.rep.OK = true
	if r.rep.Job != nil {
		r.step.End(fmt.Sprintf("ok: the job ran (%s) and the VM powered off after %s", r.rep.Job.Result, r.rep.BootTime))
	} else {
		r.step.End(fmt.Sprintf("ok: cloud-init %s after %s, %d checks passed", r.rep.CloudInit.Status, r.rep.BootTime, passed(r.rep.Checks)))
	}
	return r.rep
}

func (r *run) cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func passed(cs []CheckResult) int {
	n := 0
	for _, c := range cs {
		if c.OK {
			n++
		}
	}
	return n
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (r *run) stepWorkDir(ctx context.Context) error {
	if r.opts.WorkDir == "" {
		work, err := os.MkdirTemp("", "kiln-test-")
		if err != nil {
			return err
		}
		r.work = work
		r.cleanup(func() { os.RemoveAll(work) })
		return nil
	}
	r.work = filepath.Join(r.opts.WorkDir, string(r.fw))
	return os.MkdirAll(r.work, 0o755)
}
