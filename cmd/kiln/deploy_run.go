package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-project/kiln/deploy"
	"github.com/kiln-project/kiln/deploy/autoscale"
	"github.com/kiln-project/kiln/deploy/controller"
	"github.com/kiln-project/kiln/deploy/upgrade"
	"github.com/kiln-project/kiln/deploy/view"
)

// The controller's commands: run keeps a fleet going; upgrade, repair and
// autoscale ask it for something (or run it until that is done); events,
// serve and status show what it did.
func newDeployRunCommands() []*cobra.Command {
	run := &cobra.Command{
		Use:   "run FILE",
		Short: "Keep the fleet running: health, load balancer, repairs, upgrades, autoscale",
		Long: `Runs the fleet's controller until interrupted. Every second it reads the fleet
file and the hosts and, for each set: probes the instances (health), carries
an upgrade a step further (and starts one when the file names a new image
under an Automatic or Rolling policy), creates, starts and removes instances
to match the capacity, repairs instances unhealthy past the grace period,
evaluates autoscale (writing a new capacity into the file), and keeps the
set's HAProxy load balancer sending only to healthy instances, draining
those that leave. The balancer runs on this host, or (loadBalancer placement:
vm) in NAME-lb, a VM of kiln's proxy role that the controller makes beside
the set and configures over SSH with a key kept in the state directory.

What only the controller knows (health, the upgrade under way, repairs,
metrics) is kept in a state directory, written before each decision is acted
on: a controller killed at any point is started again and resumes. Load
balancers keep serving while no controller runs. Every decision is an event:
printed, kept in the state directory (kiln deploy events), and shown by the
live view (--serve, or kiln deploy serve).

docs/deploy.md has a systemd unit to run it as a service.`,
		Example: `  kiln deploy run fleet.yaml
  kiln deploy run fleet.yaml --serve 127.0.0.1:8090
  kiln deploy run fleet.yaml --output json     # events as JSON lines`,
		Args: exactArgs(1),
		RunE: deployControl,
	}
	run.Flags().String("serve", "", "also serve the live view on this address (127.0.0.1:8090)")
	run.Flags().Bool("stop-balancers", false, "stop the load balancers when the controller stops (default: they keep serving)")
	run.Flags().Duration("health-timeout", 10*time.Minute, "how long an upgraded instance may take to become healthy before it counts as unhealthy")

	upgradeCmd := &cobra.Command{
		Use:   "upgrade FILE SET [--image REF] [--instances A,B] [--resume] [--rollback]",
		Short: "Move a set to a new image by its upgrade policy, resume a stopped upgrade, or roll back",
		Long: `--image writes the new image into the fleet file (comments kept). Under the
Rolling or Automatic policy that is the upgrade: the controller moves the
set by its policy. Under Manual, name the instances to upgrade with
--instances. --resume continues an upgrade a health limit stopped; --rollback
writes the image before the last upgrade back into the file and returns the
set to it, upgraded instances first.

When a kiln deploy run controls the fleet, it carries the request out and
this command returns (follow it with kiln deploy events). Otherwise this
command runs the controller itself until the upgrade is done or stops.`,
		Example: `  kiln deploy upgrade fleet.yaml web --image oci://registry.example.com/team/web:1.3
  kiln deploy upgrade fleet.yaml web --instances web-0,web-1
  kiln deploy upgrade fleet.yaml web --resume
  kiln deploy upgrade fleet.yaml web --rollback`,
		Args: exactArgs(2),
		RunE: deployUpgrade,
	}
	upgradeCmd.Flags().String("image", "", "the new image (written into the fleet file)")
	upgradeCmd.Flags().StringSlice("instances", nil, "upgrade these instances (the Manual policy)")
	upgradeCmd.Flags().Bool("resume", false, "resume an upgrade a health limit stopped")
	upgradeCmd.Flags().Bool("rollback", false, "return to the image before the last upgrade")

	repairCmd := &cobra.Command{
		Use:   "repair FILE SET --resume",
		Short: "Resume automatic repairs a repair storm suspended",
		Long: `Repairs stop when every instance of a set fails the same way, or when
repaired instances keep failing the same way: replacing them again would not
help. Fix the image or recipe, then resume.`,
		Example: `  kiln deploy repair fleet.yaml web --resume`,
		Args:    exactArgs(2),
		RunE:    deployRepair,
	}
	repairCmd.Flags().Bool("resume", false, "lift the suspension")

	autoscaleCmd := &cobra.Command{
		Use:   "autoscale FILE SET --dry-run",
		Short: "Print the autoscale decision from the metrics collected so far, changing nothing",
		Long: `Evaluates the set's autoscale profile against the metric series the
controller has collected (its state directory) and prints the decision: the
rule, its value and threshold, and the capacity. With --metrics FILE it
replays a recorded series instead (JSON: {"cpu": {"Interval": 60000000000,
"Samples": [{"At": "...", "Values": [..]}]}}) and prints the decision at every
evaluation.`,
		Example: `  kiln deploy autoscale fleet.yaml web --dry-run
  kiln deploy autoscale fleet.yaml web --dry-run --metrics series.json`,
		Args: exactArgs(2),
		RunE: deployAutoscale,
	}
	autoscaleCmd.Flags().Bool("dry-run", false, "decide, change nothing (required)")
	autoscaleCmd.Flags().String("metrics", "", "replay these metric series instead")

	events := &cobra.Command{
		Use:   "events FILE [SET]",
		Short: "Print what the controller decided: scaled, repaired, upgraded, stopped, rolled back",
		Example: `  kiln deploy events fleet.yaml web
  kiln deploy events fleet.yaml --output json`,
		Args: rangeArgs(1, 2),
		RunE: deployEvents,
	}
	events.Flags().IntP("last", "n", 50, "the newest N events (0: all)")

	serve := &cobra.Command{
		Use:   "serve FILE",
		Short: "Serve the live view of a fleet its controller keeps",
		Long: `Serves a small web page (nothing from elsewhere; it works offline) with the
fleet's topology drawing, every instance's state, health, fault and update
domain and image, upgrades under way and the event log, updated live as the
controller (kiln deploy run) works; /api/snapshot is the same as JSON.`,
		Example: `  kiln deploy serve fleet.yaml --listen 127.0.0.1:8090`,
		Args:    exactArgs(1),
		RunE:    deployServe,
	}
	serve.Flags().String("listen", "127.0.0.1:8090", "address to serve on")
	protect := &cobra.Command{
		Use:   "protect FILE SET/INSTANCE [--scale-in] [--scale-set-actions]",
		Short: "Protect an instance from scale-in, or from upgrades and repairs",
		Long: `Records an instance's protection in its domain's metadata (no flag: none).
Protected from scale-in, it stays when the capacity falls, by hand or by
autoscale (others go, highest first). Protected from scale-set actions,
upgrades and automatic repairs leave it alone.`,
		Example: `  kiln deploy protect fleet.yaml web/2 --scale-in
  kiln deploy protect fleet.yaml web/web-0 --scale-set-actions
  kiln deploy protect fleet.yaml web/2          # no protection`,
		Args: exactArgs(2),
		RunE: deployProtect,
	}
	protect.Flags().Bool("scale-in", false, "keep it when the capacity falls")
	protect.Flags().Bool("scale-set-actions", false, "keep upgrades and repairs away from it")
	for _, c := range []*cobra.Command{run, upgradeCmd, repairCmd, autoscaleCmd, events, serve} {
		c.Flags().String("state-dir", "", "the controller's state (default: ~/.local/state/kiln/fleets/NAME-HASH of the fleet file)")
	}
	return []*cobra.Command{run, upgradeCmd, repairCmd, autoscaleCmd, events, serve, protect}
}

// stateDir is the fleet's controller state: --state-dir, or one directory
// per fleet file under $XDG_STATE_HOME/kiln/fleets, named after the file
// and a hash of its absolute path (short: HAProxy's socket paths live
// there).
func stateDir(file string) (string, error) {
	if d := cfg.GetString("state-dir"); d != "" {
		return d, nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory for the controller's state: pass --state-dir")
		}
		base = filepath.Join(home, ".local", "state")
	}
	sum := sha256.Sum256([]byte(abs))
	name := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))
	if len(name) > 16 {
		name = name[:16]
	}
	return filepath.Join(base, "kiln", "fleets", name+"-"+hex.EncodeToString(sum[:4])), nil
}

// newController makes the fleet's controller, on libvirt and kiln's
// registry client and cache.
func newController(cmd *cobra.Command, file string) (*controller.Controller, error) {
	dir, err := stateDir(file)
	if err != nil {
		return nil, err
	}
	rc, err := newRegistryClient(cmd)
	if err != nil {
		return nil, err
	}
	cacheDir := cfg.GetString("cache-dir")
	printEvent := eventPrinter(cmd)
	return controller.New(controller.Options{
		File: file, StateDir: dir,
		Connect: func(ctx context.Context, uri string) (deploy.Hypervisor, error) {
			return deploy.DialLibvirt(uri, deploy.LibvirtOptions{})
		},
		Resolve: func(ctx context.Context, s *deploy.Set) (*deploy.Resolved, error) {
			return deploy.Resolve(ctx, s, rc, cacheDir)
		},
		OnEvent:       printEvent,
		HealthTimeout: cfg.GetDuration("health-timeout"),
	})
}

// eventPrinter prints events as they happen: a line each, or JSON lines.
func eventPrinter(cmd *cobra.Command) func(view.Event) {
	if jsonOutput() {
		enc := json.NewEncoder(cmd.OutOrStdout())
		return func(e view.Event) {
			enc.Encode(struct {
				Type string `json:"type"`
				view.Event
			}{"event", e})
		}
	}
	w := cmd.ErrOrStderr()
	return func(e view.Event) { fmt.Fprintln(w, formatEvent(e)) }
}

func formatEvent(e view.Event) string {
	where := e.Set
	if e.Instance != "" {
		where += "/" + e.Instance
	}
	return fmt.Sprintf("%s %-15s %-12s %s", e.At.Local().Format("15:04:05"), e.Kind, orDash(where), e.Message)
}

func deployControl(cmd *cobra.Command, args []string) error {
	if _, err := deploy.LoadFleet(args[0]); err != nil {
		return err
	}
	c, err := newController(cmd, args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	if addr := cfg.GetString("serve"); addr != "" {
		stop, err := serveView(ctx, addr, c, args[0])
		if err != nil {
			return err
		}
		defer stop()
	}
	err = c.Run(ctx, nil)
	if cfg.GetBool("stop-balancers") {
		if serr := c.StopBalancers(context.WithoutCancel(ctx)); serr != nil {
			return serr
		}
	}
	if errors.Is(err, context.Canceled) {
		return nil // interrupted: the way a controller stops
	}
	return err
}

// serveView serves the live view of src on addr until stop is called.
func serveView(ctx context.Context, addr string, src view.Source, file string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("live view: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: view.Handler(src, view.Options{}), BaseContext: func(net.Listener) context.Context { return base }, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Fprintf(os.Stderr, "live view of %s on http://%s/\n", file, ln.Addr())
	return func() {
		cancel() // ends the live streams, which Shutdown would wait for
		sctx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		srv.Shutdown(sctx)
	}, nil
}

func deployServe(cmd *cobra.Command, args []string) error {
	if _, err := deploy.LoadFleet(args[0]); err != nil {
		return err
	}
	dir, err := stateDir(args[0])
	if err != nil {
		return err
	}
	src := view.SourceFunc(func(ctx context.Context) (view.Snapshot, error) { return controller.ReadSnapshot(dir) })
	stop, err := serveView(cmd.Context(), cfg.GetString("listen"), src, args[0])
	if err != nil {
		return err
	}
	<-cmd.Context().Done()
	stop()
	return nil
}

func deployEvents(cmd *cobra.Command, args []string) error {
	f, err := deploy.LoadFleet(args[0])
	if err != nil {
		return err
	}
	set := ""
	if len(args) == 2 {
		if err := hasSet(f, args[1]); err != nil {
			return err
		}
		set = args[1]
	}
	dir, err := stateDir(args[0])
	if err != nil {
		return err
	}
	events, err := controller.ReadEvents(dir, set, cfg.GetInt("last"))
	if err != nil {
		return err
	}
	if jsonOutput() {
		if events == nil {
			events = []view.Event{}
		}
		return printResult(cmd, map[string]any{"events": events})
	}
	for _, e := range events {
		fmt.Fprintln(cmd.OutOrStdout(), formatEvent(e))
	}
	if len(events) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "no events yet in %s (kiln deploy run writes them)\n", dir)
	}
	return nil
}

// submit hands a request to the fleet's controller: the running one, or one
// this command runs until done says the request is carried out.
func submit(cmd *cobra.Command, file string, r controller.Request, done func(*controller.Controller) (bool, error)) error {
	dir, err := stateDir(file)
	if err != nil {
		return err
	}
	if err := controller.Submit(dir, r); err != nil {
		return err
	}
	busy := fmt.Sprintf("kiln deploy run controls this fleet and carries out the %s request; follow it with: kiln deploy events %s %s", r.Kind, file, r.Set)
	return runController(cmd, file, busy, done)
}

// runController runs the fleet's controller until done says the work is
// over (its error is the command's); when a kiln deploy run holds the
// fleet already, it says busy and leaves the work to it.
func runController(cmd *cobra.Command, file, busy string, done func(*controller.Controller) (bool, error)) error {
	c, err := newController(cmd, file)
	if errors.Is(err, controller.ErrHeld) {
		fmt.Fprintln(cmd.ErrOrStderr(), busy)
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	var result error
	err = c.Run(cmd.Context(), func(c *controller.Controller) bool {
		ok, err := done(c)
		result = err
		return ok || err != nil
	})
	if err != nil {
		return err
	}
	return result
}

// upgradeOver reports whether set has no upgrade under way: done, or an
// error with the reason it stopped.
func upgradeOver(set string) func(*controller.Controller) (bool, error) {
	return func(c *controller.Controller) (bool, error) {
		snap, _ := c.Snapshot(context.Background())
		for _, s := range snap.Sets {
			if s.Name != set {
				continue
			}
			switch {
			case s.Upgrade == nil:
				return true, nil
			case s.Upgrade.Status == view.UpgradeStopped:
				return false, fmt.Errorf("upgrade of %s stopped: %s", set, s.Upgrade.Reason)
			}
		}
		return false, nil
	}
}

func deployUpgrade(cmd *cobra.Command, args []string) error {
	file, set := args[0], args[1]
	f, err := deploy.LoadFleet(file)
	if err != nil {
		return err
	}
	if err := hasSet(f, set); err != nil {
		return err
	}
	image, instances := cfg.GetString("image"), cfg.GetStringSlice("instances")
	resume, rollback := cfg.GetBool("resume"), cfg.GetBool("rollback")
	n := 0
	for _, b := range []bool{image != "" || len(instances) > 0, resume, rollback} {
		if b {
			n++
		}
	}
	if n != 1 {
		return usageError{errors.New("give one of --image (and/or --instances), --resume or --rollback")}
	}
	switch {
	case rollback:
		dir, err := stateDir(file)
		if err != nil {
			return err
		}
		ref, err := controller.PreviousImage(dir, set)
		if err != nil {
			return err
		}
		if err := deploy.SetImage(file, set, ref); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: image %s written into %s\n", set, ref, file)
		return submit(cmd, file, controller.Request{Kind: controller.RequestRollback, Set: set}, upgradeOver(set))
	case resume:
		return submit(cmd, file, controller.Request{Kind: controller.RequestUpgrade, Set: set}, upgradeOver(set))
	}
	if image != "" {
		if err := deploy.SetImage(file, set, image); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: image %s written into %s\n", set, image, file)
	}
	if f.Set(set).Upgrade.Mode == upgrade.Manual && len(instances) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s's upgrade policy is Manual: instances keep their image until you name them with --instances\n", set)
		return nil
	}
	var r controller.Request
	if len(instances) > 0 {
		r = controller.Request{Kind: controller.RequestUpgrade, Set: set, Instances: instances}
	}
	if r.Kind == "" {
		// Rolling or Automatic: the new image in the file is the request.
		started := false
		busy := fmt.Sprintf("kiln deploy run controls this fleet and upgrades %s by its policy; follow it with: kiln deploy events %s %s", set, file, set)
		return runController(cmd, file, busy, func(c *controller.Controller) (bool, error) {
			snap, _ := c.Snapshot(context.Background())
			for _, s := range snap.Sets {
				if s.Name == set && s.Upgrade != nil {
					started = true
				}
			}
			if !started {
				return false, nil
			}
			return upgradeOver(set)(c)
		})
	}
	return submit(cmd, file, r, upgradeOver(set))
}

func deployRepair(cmd *cobra.Command, args []string) error {
	if !cfg.GetBool("resume") {
		return usageError{errors.New("kiln deploy repair needs --resume (repairs themselves are automatic: automaticRepairs in the fleet file)")}
	}
	f, err := deploy.LoadFleet(args[0])
	if err != nil {
		return err
	}
	if err := hasSet(f, args[1]); err != nil {
		return err
	}
	return submit(cmd, args[0], controller.Request{Kind: controller.RequestResumeRepairs, Set: args[1]},
		func(*controller.Controller) (bool, error) { return true, nil })
}

func deployAutoscale(cmd *cobra.Command, args []string) error {
	if !cfg.GetBool("dry-run") {
		return usageError{errors.New("kiln deploy autoscale only decides: pass --dry-run (kiln deploy run scales)")}
	}
	f, err := deploy.LoadFleet(args[0])
	if err != nil {
		return err
	}
	if err := hasSet(f, args[1]); err != nil {
		return err
	}
	s := f.Set(args[1])
	if !s.Autoscale.Enabled() {
		return fmt.Errorf("set %s has no autoscale profile (autoscale: in the fleet file)", s.Name)
	}
	var metrics map[string]autoscale.Series
	var last time.Time
	if p := cfg.GetString("metrics"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &metrics); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		var start, end time.Time
		for _, m := range metrics {
			if len(m.Samples) > 0 {
				if start.IsZero() || m.Samples[0].At.Before(start) {
					start = m.Samples[0].At
				}
				if e := m.Samples[len(m.Samples)-1].At; e.After(end) {
					end = e
				}
			}
		}
		ticks := autoscale.Simulate(s.Autoscale.Profile, metrics, autoscale.Run{Start: start, End: end, Every: s.Autoscale.Interval, Capacity: s.Capacity})
		if jsonOutput() {
			return printResult(cmd, map[string]any{"set": s.Name, "ticks": ticks})
		}
		for _, t := range ticks {
			fmt.Fprintf(cmd.OutOrStdout(), "%s  capacity %d  %s: %s\n", t.At.UTC().Format(time.RFC3339), t.Decision.Capacity, t.Decision.Outcome, t.Decision.Reason)
		}
		return nil
	}
	dir, err := stateDir(args[0])
	if err != nil {
		return err
	}
	metrics, last, err = controller.CollectedMetrics(dir, s.Name)
	if err != nil {
		return err
	}
	d := autoscale.Evaluate(s.Autoscale.Profile, autoscale.Input{Now: time.Now(), Capacity: s.Capacity, LastAction: last, Metrics: metrics})
	if jsonOutput() {
		return printResult(cmd, map[string]any{"set": s.Name, "decision": d})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "capacity %d → %d  %s: %s\n", s.Capacity, d.Capacity, d.Outcome, d.Reason)
	return nil
}

func deployProtect(cmd *cobra.Command, args []string) error {
	inst, host, closeHosts, err := instanceHost(cmd, args[0], args[1])
	if err != nil {
		return err
	}
	defer closeHosts()
	p := deploy.Protection{ScaleIn: cfg.GetBool("scale-in"), ScaleSetActions: cfg.GetBool("scale-set-actions")}
	if err := host.Protect(cmd.Context(), inst, p); err != nil {
		return err
	}
	if jsonOutput() {
		return printResult(cmd, map[string]any{"instance": inst, "protection": p})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: protected from %s\n", inst, orDash(p.String()))
	return nil
}
